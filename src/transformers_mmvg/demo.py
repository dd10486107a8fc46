"""The README's main command: `make demo` (= `python -m transformers_mmvg.demo --out outputs/demo`).

Today it builds the data side end to end: TextShapes train and test splits as mp4 files with
`metadata.jsonl`, read back through the captioned video-folder loader and `MMVGProcessor`, and
a preview of a few test clips with their captions (a PNG grid and a GIF). Training T-VQ and
MMVG and completing held-out clips join it as those stages land.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data.textshapes import DEFAULT_PRESET, PRESETS, follows_caption, get_preset, write_textshapes
from .data.video_folder import load_video_folder
from .visualization import save_gif, save_video_grid

PREVIEW_CLIPS = 6


def generate_splits(out_dir: Path, preset: str, num_train: int, num_test: int, seed: int) -> dict[str, Path]:
    """Write the train and test splits (different seeds, so no clip is shared by accident)."""
    return {
        "train": write_textshapes(out_dir / "train", preset=preset, num_clips=num_train, seed=seed),
        "test": write_textshapes(out_dir / "test", preset=preset, num_clips=num_test, seed=seed + 1),
    }


def write_preview(test_dir: Path, out_dir: Path, preset: str, processor) -> dict[str, Path]:
    """Read test clips back through the loader and processor; write them as a PNG grid and a GIF."""
    config = get_preset(preset)
    dataset = load_video_folder(test_dir, num_frames=config.num_frames, resolution=config.resolution)
    rows = dataset[:PREVIEW_CLIPS]
    inputs = processor(text=rows["text"], videos=rows["frames"], return_tensors="pt")
    print(
        f"processor: input_ids {tuple(inputs['input_ids'].shape)}, "
        f"pixel_values_videos {tuple(inputs['pixel_values_videos'].shape)} in "
        f"[{inputs['pixel_values_videos'].min():.0f}, {inputs['pixel_values_videos'].max():.0f}]"
    )
    videos = processor.postprocess_video(inputs["pixel_values_videos"], output_type="np")
    for video, text in zip(videos, rows["text"]):
        if not follows_caption(video, text, config):
            raise RuntimeError(f"a preview clip does not follow its own caption after loading: {text!r}")
    grid = save_video_grid(list(videos), out_dir / "preview.png", labels=rows["text"], scale=2)
    gap = np.full((config.num_frames, config.resolution, 2, 3), 40, np.uint8)
    strip = np.concatenate([part for video in videos for part in (video, gap)][:-1], axis=2)
    gif = save_gif(strip, out_dir / "preview.gif", fps=config.fps, scale=2)
    return {"grid": grid, "gif": gif}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS))
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-test", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from .processing_mmvg import MMVGProcessor
    from .video_processing_mmvg import MMVGVideoProcessor

    start = time.perf_counter()
    splits = generate_splits(args.out / "data", args.preset, args.num_train, args.num_test, args.seed)
    print(f"TextShapes ({args.preset}): {args.num_train} train + {args.num_test} test clips in {args.out / 'data'}")
    processor = MMVGProcessor(video_processor=MMVGVideoProcessor(num_frames=get_preset(args.preset).num_frames))
    preview = write_preview(splits["test"], args.out, args.preset, processor)
    print(f"preview: {preview['grid']} and {preview['gif']}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
