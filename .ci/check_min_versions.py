"""The lowest supported dependency versions work: run with the interpreter of an environment built with the floor of
`transformers` in pyproject.toml (`make test-min-versions` builds one in .venv-min and runs this).

    .venv-min/bin/python .ci/check_min_versions.py --transformers 5.23.0

Checks, on the committed checkpoints (checkpoints/): the package imports; both folders load through the Auto classes
and the model classes; the MMVG config keeps its T-VQ sub-config as a `TVQConfig` and survives a save/load round trip;
`activation_checkpointing_enable()` (the transformers API that sets the floor) works; grayscale clips are converted
to RGB; the T-VQ reconstructs held-out TextShapes clips above 30 dB; `pipeline("text-guided-video-completion")`
returns lazy results for an iterator of inputs; and with greedy decoding (temperature 0) it follows the caption on
every held-out clip for prediction, rewind and infilling, as tests/test_checkpoints.py claims under the main
environment. About a minute of CPU on 2 cores.

Not a pytest module on purpose (the suite runs in the main environment); it exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TVQ = ROOT / "checkpoints" / "tvq-textshapes-64x8"
MMVG = ROOT / "checkpoints" / "mmvg-textshapes-64x8"
PASSED = []


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"FAILED: {message}", flush=True)
        raise SystemExit(f"min-versions: {len(PASSED)} passed, 1 failed")
    PASSED.append(message)
    print(f"ok   {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transformers", help="the transformers version this environment must hold (the floor)")
    parser.add_argument("--num-clips", type=int, default=12, help="held-out clips to complete (default 12)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    import numpy as np
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel, pipeline

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}")
    if args.transformers is not None:
        from packaging.version import Version

        check(Version(transformers.__version__) == Version(args.transformers), f"transformers is {args.transformers}")

    import transformers_mmvg
    from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion, MMVGVideoProcessor, TVQConfig, TVQModel
    from transformers_mmvg.data.textshapes import write_held_out_textshapes
    from transformers_mmvg.data.video_folder import load_video_folder
    from transformers_mmvg.evaluation import evaluate_completion
    from transformers_mmvg.masking import TASKS
    from transformers_mmvg.metrics import psnr

    check(hasattr(transformers_mmvg, "MMVGForVideoCompletion"), "transformers_mmvg imports")

    # configs: the sub-config is built from the dict in config.json, and a save/load round trip keeps every value
    config = AutoConfig.from_pretrained(MMVG)
    check(isinstance(config, MMVGConfig) and isinstance(config.tvq_config, TVQConfig),
          "AutoConfig loads the MMVG config with a TVQConfig inside")
    check((config.tokens_per_frame, config.codebook_size, config.window_size) == (16, 512, [4, 4, 4]),
          "the MMVG config's derived sizes (16 tokens per frame, 512 codes, window [4, 4, 4])")
    check(MMVGConfig(image_size=32).tvq_config.image_size == 32 and MMVGConfig().tvq_config.image_size == 64,
          "MMVGConfig builds its default T-VQ config (at image_size when given)")
    with tempfile.TemporaryDirectory() as folder:
        config.save_pretrained(folder)
        reloaded = MMVGConfig.from_pretrained(folder)
    before, after = ({k: v for k, v in c.to_dict().items() if k != "_name_or_path"} for c in (config, reloaded))
    check(isinstance(reloaded.tvq_config, TVQConfig) and after == before,
          "the MMVG config survives save_pretrained / from_pretrained")

    # models
    tvq = AutoModel.from_pretrained(TVQ).eval()
    check(isinstance(tvq, TVQModel) and tvq.config.latent_size == 4, "AutoModel loads the T-VQ checkpoint")
    model = MMVGForVideoCompletion.from_pretrained(MMVG).eval()
    check(isinstance(model.tvq, TVQModel) and all(torch.isfinite(p).all() for p in model.parameters()),
          "MMVGForVideoCompletion.from_pretrained loads finite weights")
    # the README's memory advice; the method is new in transformers 5.23, which is why the floor is there
    model.activation_checkpointing_enable()
    check(model.is_activation_checkpointing, "model.activation_checkpointing_enable() switches checkpointing on")
    del model

    with tempfile.TemporaryDirectory() as folder:
        write_held_out_textshapes(folder, [TVQ, MMVG], num_clips=args.num_clips, seed=7)
        dataset = load_video_folder(folder, num_frames=8, resolution=64)
        rows = [dataset[index] for index in range(len(dataset))]
    check(len(rows) == args.num_clips and any(len(row["directions"]) == 2 for row in rows),
          f"{args.num_clips} held-out TextShapes clips (some with two segments, for infilling)")

    processor = MMVGVideoProcessor(size={"height": 64, "width": 64}, num_frames=8)
    gray = np.full((8, 64, 64, 1), 200, dtype=np.uint8)
    check(torch.equal(processor(gray).pixel_values_videos, processor(np.repeat(gray, 3, axis=-1)).pixel_values_videos),
          "the video processor converts grayscale clips to RGB")
    pixels = processor(videos=[row["frames"] for row in rows], return_tensors="pt")["pixel_values_videos"]
    with torch.no_grad():
        reconstruction = tvq.decode(tvq.encode(pixels).token_ids)
    decoded = processor.postprocess_video(reconstruction, output_type="np")
    originals = processor.postprocess_video(pixels, output_type="np")
    value = float(psnr(decoded, originals).mean())
    check(value >= 30.0, f"the T-VQ reconstructs the held-out clips at {value:.2f} dB (>= 30)")

    # the pipeline: one direct call, then greedy completions of every clip for the three tasks
    pipe = pipeline("text-guided-video-completion", model=str(MMVG))
    check(isinstance(pipe.model, MMVGForVideoCompletion), "pipeline('text-guided-video-completion') loads MMVG")
    first = torch.as_tensor(np.asarray(rows[0]["frames"]))[0]
    out = pipe(rows[0]["text"], images=[first], task="prediction", output_type="np", temperature=0.0,
               progress=False)
    frames = np.asarray(out["frames"])
    check(frames.shape == (8, 64, 64, 3) and frames.dtype == np.uint8, "a pipeline call returns 8 uint8 64x64 frames")
    check(np.array_equal(frames[0], first.permute(1, 2, 0).numpy()), "the given frame comes back exactly")
    request = {"prompt": rows[0]["text"], "images": [first]}
    lazy = pipe((r for r in [request]), task="prediction", output_type="np", temperature=0.0, progress=False)
    check(not isinstance(lazy, list) and np.array_equal(next(iter(lazy))["frames"], frames),
          "an iterator of inputs gives lazy results, equal to the single call's (greedy decoding)")

    results = evaluate_completion(pipe.model, pipe.processor, rows, tasks=TASKS, methods=("mmvg",), temperature=0.0)
    for task in TASKS:
        scores = results[task]["mmvg"]
        check(scores["caption_following"] == 1.0 and np.isfinite(scores["psnr"]),
              f"{task}: greedy completions follow the caption on all {scores['num_clips']} clips "
              f"(PSNR {scores['psnr']:.2f} dB)")

    print(f"all checks passed in {time.perf_counter() - start:.0f} s")
    print(f"min-versions: {len(PASSED)} passed, 0 failed")  # the closing line CI reads
    return 0


if __name__ == "__main__":
    sys.exit(main())
