"""The README's main command: `make demo` (= `python -m transformers_mmvg.demo --out outputs/demo`).

1. The T-VQ and the MMVG (model + processor, loadable with `pipeline("text-guided-video-completion")`): by default
   the checkpoints committed in `checkpoints/`, read in place, which were made by the project's own training
   commands (see `checkpoints/README.md`): training them to the caption-following target takes longer on a 2-core
   CPU than a person wants to wait. `--from-scratch` trains both into `OUT/tvq` and `OUT/mmvg` instead, with the
   same commands. The demo writes only into `--out`, which must be new, empty or an earlier demo's (it deletes and
   overwrites nothing of the user's).
2. TextShapes: held-out test clips as mp4 + `metadata.jsonl`, none of them a clip either model was trained on (each
   model folder's `training_data.json` says which clips those were).
3. Completes every held-out clip for prediction, rewind and infilling (two-segment clips) and prints a table: the
   TextShapes caption-following accuracy, centroid error, PSNR and SSIM for MMVG, for the same model with an empty
   prompt (the text-free control), and for the copy-the-given-frame and linear-blend baselines.
4. Writes `results.md` and `metrics.json`, a GIF per task made through the pipeline, and `grid.png` (truth and
   the three completions of a few clips).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data.textshapes import DEFAULT_PRESET, PRESETS, get_preset, write_held_out_textshapes
from .data.video_folder import load_video_folder
from .evaluation import METHODS, evaluate_completion, results_table, save_task_grid
from .masking import TASKS
from .training_runs import train_mmvg, train_tvq

REPOSITORY = Path(__file__).resolve().parents[2]
CHECKPOINTS = REPOSITORY / "checkpoints"
TVQ_CHECKPOINT = CHECKPOINTS / "tvq-textshapes-64x8"
MMVG_CHECKPOINT = CHECKPOINTS / "mmvg-textshapes-64x8"
EXAMPLE_CLIPS = 4

# the commands that made the committed checkpoints (checkpoints/README.md), run here with --from-scratch
TVQ_TRAINING_ARGS = ["--num_train_clips", "2000", "--num_eval_clips", "200"]
MMVG_TRAINING_ARGS = [
    "--num_train_clips", "10000", "--num_eval_clips", "200", "--max_steps", "5000", "--learning_rate", "5e-4",
    "--eval_strategy", "steps", "--eval_steps", "500", "--save_steps", "500", "--logging_steps", "50",
    "--num_completion_eval_clips", "48",
    "--config_overrides",
    '{"hidden_size": 192, "intermediate_size": 768, "num_attention_heads": 4, "text_embedding_size": 16}',
]  # fmt: skip


# written into every --out folder the demo uses; a non-empty folder without it is someone else's and is refused
DEMO_MARKER = ".transformers-mmvg-demo"


def claim_output_folder(out_dir: Path) -> None:
    """Make `out_dir` the demo's: a new or empty folder, or one an earlier demo run made (its files are replaced by
    this run's). Any other non-empty folder is refused, so nothing of the user's is ever deleted or overwritten."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} is a file, not a folder.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / DEMO_MARKER).is_file():
        raise FileExistsError(
            f"--out {out_dir} is not empty and was not made by the demo; pass a new or empty folder (the demo "
            "deletes and overwrites nothing of yours)."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DEMO_MARKER).write_text("made by python -m transformers_mmvg.demo; its files are replaced on a re-run\n")


def prepare_models(out_dir: Path, from_scratch: bool, tvq_source: Path, mmvg_source: Path) -> tuple[Path, Path]:
    """The T-VQ and MMVG folders the demo uses: the given checkpoints, read in place (never copied, moved or
    changed), or with `from_scratch` new ones trained into `out_dir/tvq` and `out_dir/mmvg`, which must not exist
    yet (an earlier run's are kept: remove them yourself to train again)."""
    tvq_dir, mmvg_dir = out_dir / "tvq", out_dir / "mmvg"
    if from_scratch:
        for folder in (tvq_dir, mmvg_dir):
            if folder.exists():
                raise FileExistsError(
                    f"{folder} exists (an earlier training run?); the demo does not delete it. Remove it, or pass "
                    "another --out, to train again."
                )
        print("training T-VQ (training_runs.train_tvq, as examples/run_tvq.py) ...", flush=True)
        train_tvq(["--output_dir", str(tvq_dir), *TVQ_TRAINING_ARGS, "--save_strategy", "no"])
        print("training MMVG (training_runs.train_mmvg, as examples/run_mmvg.py) ...", flush=True)
        train_mmvg(
            ["--tvq_path", str(tvq_dir), "--output_dir", str(mmvg_dir), "--data_dir", str(out_dir / "data"),
             *MMVG_TRAINING_ARGS, "--save_strategy", "no"]
        )  # fmt: skip
        return tvq_dir, mmvg_dir
    for source in (tvq_source, mmvg_source):
        if not (source / "config.json").is_file():
            raise FileNotFoundError(  # the default folders exist in a checkout of the repository, not in a wheel
                f"No checkpoint in {source}. Pass --tvq and --mmvg, or train both with "
                "`python -m transformers_mmvg.demo --from-scratch`."
            )
    print(f"T-VQ: {tvq_source}\nMMVG: {mmvg_source}", flush=True)
    return tvq_source, mmvg_source


def write_task_gifs(pipe, rows, out_dir: Path, fps: int, **call_kwargs) -> list[Path]:
    """Through the pipeline: for each task, a few held-out clips completed and laid side by side in one GIF."""
    from .pipeline_video_completion import save_completion_gif

    paths = []
    for task in TASKS:
        selected = [row for row in rows if task != "infilling" or len(row["directions"]) == 2][:EXAMPLE_CLIPS]
        strips = []
        for row in selected:
            video = np.asarray(row["frames"]).transpose(0, 2, 3, 1)
            result = pipe(row["text"], video=list(video), task=task, output_type="np", progress=False, **call_kwargs)
            strips.append(result["frames"])
        gap = np.full((strips[0].shape[0], strips[0].shape[1], 2, 3), 40, np.uint8)
        strip = np.concatenate([part for video in strips for part in (video, gap)][:-1], axis=2)
        paths.append(save_completion_gif({"frames": strip}, out_dir / f"{task}.gif", fps=fps, scale=2))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS))
    parser.add_argument("--num-test", type=int, default=200, help="held-out clips to complete")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out clips (drawn with seed + 2)")
    parser.add_argument(
        "--from-scratch", action="store_true", help="train T-VQ and MMVG here (1 to 1.5 hours on 2 CPU cores)"
    )
    parser.add_argument("--tvq", type=Path, default=TVQ_CHECKPOINT, help="T-VQ checkpoint to use")
    parser.add_argument("--mmvg", type=Path, default=MMVG_CHECKPOINT, help="MMVG checkpoint to use")
    parser.add_argument("--decoding", choices=("parallel", "autoregressive"), default="parallel")
    parser.add_argument("--num-inference-steps", type=int, default=12)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy")
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    args = parser.parse_args(argv)

    from transformers import pipeline

    from .pipeline_video_completion import TASK_NAME

    start = time.perf_counter()
    preset = get_preset(args.preset)
    claim_output_folder(args.out)
    tvq_dir, mmvg_dir = prepare_models(args.out, args.from_scratch, args.tvq, args.mmvg)
    # seed + 2: the training commands draw their train and eval splits with seeds + 0 and + 1; and no clip either
    # model was trained on is in the held-out set
    test_dir = write_held_out_textshapes(args.out / "data" / "test", [tvq_dir, mmvg_dir], preset,
                                         num_clips=args.num_test, seed=args.seed + 2)
    print(f"TextShapes ({preset.name}): {args.num_test} held-out clips in {test_dir}, none seen in training",
          flush=True)

    pipe = pipeline(TASK_NAME, model=str(mmvg_dir))
    dataset = load_video_folder(test_dir, num_frames=preset.num_frames, resolution=preset.resolution)
    rows = [dataset[index] for index in range(len(dataset))]
    decoding = dict(decoding=args.decoding, num_inference_steps=args.num_inference_steps,
                    temperature=args.temperature, guidance_scale=args.guidance_scale)
    results = evaluate_completion(pipe.model, pipe.processor, rows, methods=METHODS, preset=preset.name,
                                  progress=True, **decoding)
    table = results_table(results)
    settings = ", ".join(f"{key}={value}" for key, value in decoding.items())
    report = (
        f"# Demo results: held-out TextShapes ({preset.name})\n\n"
        f"MMVG: {mmvg_dir} ({'trained here' if args.from_scratch else 'checkpoint'}); "
        f"{settings}. Infilling is scored on the two-segment clips, where only the caption tells the path.\n\n"
        f"{table}\n"
    )
    (args.out / "results.md").write_text(report)
    (args.out / "metrics.json").write_text(json.dumps({"settings": decoding, "results": results}, indent=2) + "\n")
    print(table, flush=True)

    gifs = write_task_gifs(pipe, rows, args.out, preset.fps, **decoding)
    grid = save_task_grid(pipe.model, pipe.processor, rows[:EXAMPLE_CLIPS], args.out / "grid.png", **decoding)
    print(f"wrote {args.out / 'results.md'}, {', '.join(str(path) for path in gifs)} and {grid}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
