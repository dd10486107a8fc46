"""The README's main command: `make demo` (= `python -m transformers_mmvg.demo --out outputs/demo`).

Two domains, each with its own models and a folder of results under `--out`:

- `textshapes/`: coloured shapes on black (the T-VQ and MMVG of `checkpoints/tvq-textshapes-64x8` and
  `checkpoints/mmvg-textshapes-64x8`);
- `textcam/`: camera moves over real photographs (`checkpoints/mmvg-textcam-64x8`, which holds its T-VQ, the one of
  `checkpoints/tvq-textcam-64x8`), completed from photographs no model saw in training.

1. The models: by default the committed checkpoints, read in place, which were made by the project's own training
   commands (see `checkpoints/README.md`). `--from-scratch` trains the TextShapes T-VQ and MMVG into `OUT/tvq` and
   `OUT/mmvg` with the same commands instead (1 to 1.5 hours on 2 cores); TextCam takes hours more on a CPU and
   always uses its checkpoint. The demo writes only into `--out`, which must be new, empty or an earlier demo's (it
   deletes and overwrites nothing of the user's).
2. Held-out test clips per domain as mp4 + `metadata.jsonl` in `OUT/data/`: TextShapes clips none of whose
   parameters either model was trained on (each model folder's `training_data.json` says which clips those were);
   TextCam clips of the held-out photos (`textcam.DEFAULT_HELD_OUT_PHOTOS`), which the TextCam model's
   `training_data.json` must not list.
3. Completes every held-out clip for prediction, rewind and infilling (two-segment clips) and prints a table per
   domain: caption following (the data set's motion check), centroid error (TextShapes), PSNR and SSIM for MMVG, for
   the same model with an empty prompt (the text-free control), for the true clip through the T-VQ (the ceiling), and
   for the baselines (copy the given frame; blend the two given frames; on TextCam, the camera warp that reads the
   caption). `--num-test` clips per domain (48 by default; the 200-clip evaluations are benchmarks:
   `python benchmarks/run.py --only mmvg-quality,mmvg-textcam-quality`).
4. Writes per domain `results.md` and `metrics.json`, a GIF per task made through the pipeline and `grid.png` (truth
   and the three completions of a few clips); on TextCam also `photo.gif`, a whole held-out photograph (any size)
   through `pipeline(...)("the camera pans left then pans up", images=[photo], task="prediction",
   decoding="autoregressive")`. `OUT/results.md` holds both tables.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import textcam
from .data.textshapes import DEFAULT_PRESET, PRESETS, TRAINING_DATA_FILE, get_preset, write_held_out_textshapes
from .data.video_folder import load_video_folder
from .evaluation import METHODS, evaluate_completion, results_table, save_task_grid, step_agreement_table, task_rows
from .decoding import DECODING_MODES
from .masking import TASKS
from .training_runs import train_mmvg, train_tvq

REPOSITORY = Path(__file__).resolve().parents[2]
CHECKPOINTS = REPOSITORY / "checkpoints"
TVQ_CHECKPOINT = CHECKPOINTS / "tvq-textshapes-64x8"
MMVG_CHECKPOINT = CHECKPOINTS / "mmvg-textshapes-64x8"
TEXTCAM_MMVG_CHECKPOINT = CHECKPOINTS / "mmvg-textcam-64x8"
DOMAINS = ("textshapes", "textcam")
EXAMPLE_CLIPS = 4
# the whole held-out photograph the TextCam part completes through the pipeline (photo.gif, the README's GIF), by
# autoregressive decoding whatever `--decoding` says: in parallel decoding a frame copies from both neighbours while
# both are being generated, and the TextCam model can show a moving object twice
PHOTO_EXAMPLE = ("chelsea.png", "the camera pans left then pans up")
PHOTO_DECODING = "autoregressive"

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
        strips = []
        for row in task_rows(rows, task)[:EXAMPLE_CLIPS]:
            video = np.asarray(row["frames"]).transpose(0, 2, 3, 1)
            result = pipe(row["text"], video=list(video), task=task, output_type="np", progress=False, **call_kwargs)
            strips.append(result["frames"])
        gap = np.full((strips[0].shape[0], strips[0].shape[1], 2, 3), 40, np.uint8)
        strip = np.concatenate([part for video in strips for part in (video, gap)][:-1], axis=2)
        paths.append(save_completion_gif({"frames": strip}, out_dir / f"{task}.gif", fps=fps, scale=2))
    return paths


def write_held_out_textcam(out_dir: Path, mmvg_dir: Path, preset: str, num_clips: int, seed: int) -> Path:
    """`num_clips` TextCam clips of the held-out photos (drawn with `seed`) in `out_dir`, a folder of the demo's.
    Refused when the model's `training_data.json` lists one of those photos; warns when it has none."""
    record_path = Path(mmvg_dir) / TRAINING_DATA_FILE
    if record_path.is_file():
        seen = set(json.loads(record_path.read_text()).get("photos", [])) & set(textcam.DEFAULT_HELD_OUT_PHOTOS)
        if seen:
            raise ValueError(f"{mmvg_dir} was trained on {sorted(seen)}: its completions of them are not held out")
    else:
        warnings.warn(
            f"{mmvg_dir} has no {TRAINING_DATA_FILE}: the held-out photos may have been seen in training.",
            stacklevel=2,
        )
    return textcam.write_textcam(out_dir, preset, num_clips, seed, split="held_out", overwrite=True)


def write_photo_gif(pipe, out_dir: Path, fps: int, **call_kwargs) -> Path:
    """A whole held-out photograph (any size: the processor frames it as TextCam's start window) completed through
    the pipeline from the caption of `PHOTO_EXAMPLE`, as `out_dir/photo.gif`."""
    from PIL import Image

    from .pipeline_video_completion import save_completion_gif

    name, caption = PHOTO_EXAMPLE
    path = {path.name: path for path in textcam.default_photo_paths("held_out")}[name]
    result = pipe(caption, images=[Image.open(path)], task="prediction", output_type="np", progress=False,
                  **call_kwargs)  # fmt: skip
    return save_completion_gif(result, out_dir / "photo.gif", fps=fps, scale=4)


def run_domain(domain: str, pipe, test_dir: Path, preset: str, out_dir: Path, decoding: dict) -> str:
    """Complete every clip of `test_dir` for the three tasks, write `out_dir/{results.md, metrics.json, <task>.gif,
    grid.png}` (and on TextCam `photo.gif`); returns the domain's report (a heading and the table)."""
    spec = textcam.get_preset(preset) if domain == "textcam" else get_preset(preset)
    dataset = load_video_folder(test_dir, num_frames=spec.num_frames, resolution=spec.resolution)
    rows = [dataset[index] for index in range(len(dataset))]
    results = evaluate_completion(pipe.model, pipe.processor, rows, methods=METHODS, preset=preset, progress=True,
                                  **decoding)  # fmt: skip
    settings = ", ".join(f"{key}={value}" for key, value in decoding.items())
    report = (
        f"## {'TextCam' if domain == 'textcam' else 'TextShapes'}: {len(rows)} held-out clips ({preset})\n\n"
        f"MMVG: {pipe.model.name_or_path}; {settings}. Infilling is scored on the two-segment clips, where only the "
        f"caption tells the path.\n\n{results_table(results)}\n"
    )
    if domain == "textcam":
        report += ("\nPer camera motion, the share of its steps that the motion check reads as that motion:\n\n"
                   f"{step_agreement_table(results)}\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(report)
    (out_dir / "metrics.json").write_text(json.dumps({"settings": decoding, "results": results}, indent=2) + "\n")
    print(report, flush=True)
    written = write_task_gifs(pipe, rows, out_dir, spec.fps, **decoding)
    written.append(save_task_grid(pipe.model, pipe.processor, rows[:EXAMPLE_CLIPS], out_dir / "grid.png", **decoding))
    if domain == "textcam":
        written.append(write_photo_gif(pipe, out_dir, spec.fps, **{**decoding, "decoding": PHOTO_DECODING}))
    print(f"wrote {out_dir / 'results.md'}, {', '.join(str(path) for path in written)}", flush=True)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--domains", default=",".join(DOMAINS), help=f"comma-separated: {', '.join(DOMAINS)}")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS), help="the TextShapes preset")
    parser.add_argument("--num-test", type=int, default=48, help="held-out clips to complete per domain")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out clips (drawn with seed + 2)")
    parser.add_argument(
        "--from-scratch", action="store_true",
        help="train the TextShapes T-VQ and MMVG here (1 to 1.5 hours on 2 CPU cores)",
    )  # fmt: skip
    parser.add_argument("--tvq", type=Path, default=TVQ_CHECKPOINT, help="TextShapes T-VQ checkpoint to use")
    parser.add_argument("--mmvg", type=Path, default=MMVG_CHECKPOINT, help="TextShapes MMVG checkpoint to use")
    parser.add_argument("--textcam-mmvg", type=Path, default=TEXTCAM_MMVG_CHECKPOINT, help="TextCam MMVG to use")
    parser.add_argument("--decoding", choices=tuple(DECODING_MODES), default="parallel",
                        help=f"for the tables, task GIFs and grids; the TextCam photo GIF uses {PHOTO_DECODING}")
    parser.add_argument("--num-inference-steps", type=int, default=12)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy")
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    domains = args.domains.split(",")
    if not domains or any(domain not in DOMAINS for domain in domains):
        parser.error(f"--domains takes a comma-separated list of {', '.join(DOMAINS)}; got {args.domains!r}")
    if args.num_test < 1:
        parser.error(f"--num-test must be >= 1, got {args.num_test}")

    from transformers import pipeline

    from .pipeline_video_completion import TASK_NAME

    start = time.perf_counter()
    if "textcam" in domains and not (args.textcam_mmvg / "config.json").is_file():
        raise FileNotFoundError(
            f"No TextCam checkpoint in {args.textcam_mmvg}. Pass --textcam-mmvg, or --domains textshapes."
        )
    claim_output_folder(args.out)
    decoding = dict(decoding=args.decoding, num_inference_steps=args.num_inference_steps,
                    temperature=args.temperature, guidance_scale=args.guidance_scale)  # fmt: skip
    reports = []
    # seed + 2: the training commands draw their train and eval splits with seeds + 0 and + 1
    if "textshapes" in domains:
        tvq_dir, mmvg_dir = prepare_models(args.out, args.from_scratch, args.tvq, args.mmvg)
        preset = get_preset(args.preset)
        test_dir = write_held_out_textshapes(args.out / "data" / "textshapes-test", [tvq_dir, mmvg_dir], preset,
                                             num_clips=args.num_test, seed=args.seed + 2)  # fmt: skip
        print(f"TextShapes ({preset.name}): {args.num_test} held-out clips in {test_dir}, none seen in training",
              flush=True)  # fmt: skip
        pipe = pipeline(TASK_NAME, model=str(mmvg_dir))
        reports.append(run_domain("textshapes", pipe, test_dir, preset.name, args.out / "textshapes", decoding))
    if "textcam" in domains:
        preset = textcam.DEFAULT_PRESET
        test_dir = write_held_out_textcam(args.out / "data" / "textcam-test", args.textcam_mmvg, preset,
                                          num_clips=args.num_test, seed=args.seed + 2)  # fmt: skip
        print(f"TextCam ({preset}): {args.num_test} clips of the held-out photos "
              f"{', '.join(textcam.DEFAULT_HELD_OUT_PHOTOS)} in {test_dir}", flush=True)  # fmt: skip
        pipe = pipeline(TASK_NAME, model=str(args.textcam_mmvg))
        reports.append(run_domain("textcam", pipe, test_dir, preset, args.out / "textcam", decoding))
    (args.out / "results.md").write_text("# Demo results\n\n" + "\n".join(reports))
    print(f"wrote {args.out / 'results.md'}; done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
