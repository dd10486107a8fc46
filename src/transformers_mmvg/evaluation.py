"""Completion quality on held-out TextShapes or TextCam clips: caption following, centroid error (TextShapes), PSNR
and SSIM, for MMVG and for the baselines (copy the nearest given frame; blend the two given frames for infilling;
on TextCam, warp the nearest given frame as the caption says the camera moves).

    results = evaluate_completion(model, processor, clips, tasks=("prediction", "rewind", "infilling"))
    results["prediction"]["mmvg"]["caption_following"]   # share of clips whose motion matches the caption

Centroid error, PSNR and SSIM are measured on the generated frames only (not the given ones, which come back
exactly); caption following reads the motion of the whole clip.

`clips` are rows of a TextShapes or TextCam video folder (`load_video_folder`): `frames` uint8 (N, C, H, W), `text`,
`preset`, and the metadata `shape`, `color`, `directions`, `positions` (TextShapes) or `motions`, `windows`
(TextCam), which also tell the domain. Infilling is scored on two-segment clips only, where the two end frames do
not tell the path and only the caption does (TEXTSHAPES.md, TEXTCAM.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .data import textcam
from .data.textshapes import centroid_error, format_caption, get_preset, trajectory
from .masking import TASKS, given_mask_from_indices, task_given_indices
from .pipeline_video_completion import VideoCompletionPipeline
from .metrics import caption_following, psnr, ssim
from .visualization import save_video_grid

METHODS = ("mmvg", "mmvg_empty_text", "tvq_ceiling", "copy_frame", "linear_blend", "camera_warp")


def is_textcam(row: dict) -> bool:
    """Whether a clip's row is TextCam's (camera `motions`) rather than TextShapes' (object `directions`)."""
    return "motions" in row


def _segments(row: dict) -> list[str]:
    return list(row["motions"] if is_textcam(row) else row["directions"])


def copy_frame_baseline(frames: torch.Tensor, given_mask: torch.Tensor) -> torch.Tensor:
    """Every hidden frame copies the nearest given frame (the earlier one on a tie). frames (B, N, ...), given_mask
    (B, N) bool with at least one given frame per clip."""
    output = frames.clone()
    for row, given in enumerate(given_mask):
        indices = given.nonzero().flatten()
        if len(indices) == 0:
            raise ValueError("The copy-frame baseline needs at least one given frame per clip.")
        for frame in range(frames.shape[1]):
            nearest = indices[(indices - frame).abs().argmin()]
            output[row, frame] = frames[row, nearest]
    return output


def linear_blend_baseline(frames: torch.Tensor, given_mask: torch.Tensor) -> torch.Tensor:
    """Hidden frames between two given frames are a linear cross-fade of them; outside, the nearest given frame."""
    output = copy_frame_baseline(frames, given_mask).float()
    for row, given in enumerate(given_mask):
        indices = given.nonzero().flatten().tolist()
        for left, right in zip(indices, indices[1:]):
            for frame in range(left + 1, right):
                weight = (frame - left) / (right - left)
                output[row, frame] = (1 - weight) * frames[row, left].float() + weight * frames[row, right].float()
    return output.round().to(frames.dtype) if not frames.dtype.is_floating_point else output


def camera_warp_baseline(frames: torch.Tensor, given_mask: torch.Tensor, rows: Sequence[dict], preset: str) -> torch.Tensor:
    """TextCam's hand-written baseline: it reads the caption and moves the camera over the nearest given frame.

    Frame k's window relative to the given frame g's follows from the caption alone (`textcam.window_schedule`: pans
    of V photo pixels, zooms by Z per step); frame k is that window of frame g, resized to R x R (bicubic), with g's
    edge pixels repeated where the window leaves it. It knows the motion but cannot invent what enters the frame.
    frames uint8 (B, N, C, R, R), given_mask (B, N) bool, `rows` the clips' rows (their `motions`)."""
    spec = textcam.get_preset(preset)
    output = frames.clone()  # the given frames stay; every other frame is warped
    resolution = frames.shape[-1]
    for row, (given, metadata) in enumerate(zip(given_mask, rows)):
        windows = textcam.window_schedule(_segments(metadata), spec)
        indices = given.nonzero().flatten()
        for frame in range(frames.shape[1]):
            if given[frame]:
                continue
            source = int(indices[(indices - frame).abs().argmin()])
            scale = resolution / windows[source, 2]  # frame pixels per photo pixel in the given frame
            cx = (windows[frame, 0] - windows[source, 0]) * scale + resolution / 2
            cy = (windows[frame, 1] - windows[source, 1]) * scale + resolution / 2
            half = windows[frame, 2] * scale / 2
            box = np.array([cx - half, cy - half, cx + half, cy + half])
            pad = int(np.ceil(max(0.0, -box.min(), box.max() - resolution))) + 1
            image = np.pad(frames[row, source].permute(1, 2, 0).numpy(), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
            warped = Image.fromarray(image).resize((resolution, resolution), Image.Resampling.BICUBIC, box=tuple(box + pad))
            output[row, frame] = torch.from_numpy(np.array(warped)).permute(2, 0, 1)
    return output


@torch.no_grad()
def tvq_round_trip(tvq, video_processor, clips: np.ndarray, batch_size: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """The T-VQ token ids (B, N, h, w) and uint8 reconstructions (B, N, H, W, 3) of uint8 clips (B, N, ...), frames
    in either layout: what any model that outputs the T-VQ's tokens can at best give back."""
    token_ids, decoded = [], []
    for start in range(0, len(clips), batch_size):
        videos = list(clips[start : start + batch_size])
        inputs = video_processor(videos=videos, return_tensors="pt", do_sample_frames=False)
        ids = tvq.encode(inputs["pixel_values_videos"].to(tvq.device)).token_ids
        token_ids.append(ids.cpu().numpy())
        decoded.append(video_processor.postprocess_video(tvq.decode(ids), output_type="np"))
    return np.concatenate(token_ids), np.concatenate(decoded)


OPPOSITE = textcam.OPPOSITES  # TextCam's camera motions; TextShapes' four directions are among them


def counterfactual_rows(rows: Sequence[dict], task: str, preset: str) -> list[dict]:
    """The same clips with another caption, for the counterfactual check: the given frames stay, the caption says
    something else, and the completion must follow the new caption.

    - prediction / rewind: every direction (TextShapes) or camera motion (TextCam) reversed (`moves left` ->
      `moves right`, `zooms in` -> `zooms out`); the new path starts at the true first frame (prediction) or ends at
      the true last frame (rewind);
    - infilling (two-segment clips): the two legs swapped (`right then down` -> `down then right`), which has the
      same end frames.

    TextShapes clips whose new path would leave the frame are left out (a camera can always move on: the check reads
    only the motion). Each row gets the new `text` and `directions` / `motions` (and TextShapes `positions`), so
    `score_clips` scores against the new caption."""
    changed = []
    for row in task_rows(rows, task):
        segments = _segments(row)
        new = segments[::-1] if task == "infilling" else [OPPOSITE[segment] for segment in segments]
        if is_textcam(row):
            changed.append({**row, "text": textcam.format_caption(new), "motions": new})
            continue
        preset_spec = get_preset(preset)
        offsets = trajectory(new, preset_spec)
        positions = np.asarray(row["positions"])
        anchor = positions[-1] - offsets[-1] if task == "rewind" else positions[0]
        new_positions = anchor + offsets
        if new_positions.min() < 0 or new_positions.max() > preset_spec.resolution - preset_spec.object_size:
            continue
        text = format_caption(row["color"], row["shape"], new)
        changed.append({**row, "text": text, "directions": new, "positions": new_positions.tolist()})
    return changed


def _metadata(row: dict) -> dict:
    return {key: row[key] for key in ("shape", "color", "directions", "positions") if key in row}


def score_clips(
    generated: np.ndarray, rows: Sequence[dict], preset: str, given_indices: Sequence[int] | None = None
) -> dict[str, float]:
    """Caption following (the TEXTSHAPES.md or TEXTCAM.md check, by the rows' domain), mean centroid error (px,
    TextShapes only; NaN on TextCam), PSNR and SSIM of generated uint8 clips (B, N, H, W, C) against the true clips
    in `rows`.

    Caption following reads the motion of the whole clip (the given frames are where it starts or ends). Centroid
    error, PSNR and SSIM are measured on the generated frames only, the frames not in `given_indices` (all frames
    when None): a completion hands the given frames back exactly, so counting them would flatter every method, and
    more given frames would look better partly by construction."""
    truth = np.stack([np.asarray(row["frames"]).transpose(0, 2, 3, 1) for row in rows])
    num_frames = truth.shape[1]
    scored = [frame for frame in range(num_frames) if given_indices is None or frame not in set(given_indices)]
    if not scored:
        raise ValueError(f"every frame is given ({list(given_indices)}): no generated frame to score")
    step_agreement = {}
    if is_textcam(rows[0]):
        checks = [textcam.caption_check(video, _segments(row), preset) for video, row in zip(generated, rows)]
        accuracy, finite = float(np.mean([check.follows for check in checks])), []
        step_agreement = _step_agreement(checks, rows, preset)
    else:
        metadata = [_metadata(row) for row in rows]
        accuracy = caption_following(generated, metadata, preset)["accuracy"]
        errors = [
            centroid_error(
                video[scored], {**reference, "positions": np.asarray(reference["positions"])[scored]}, preset
            )
            for video, reference in zip(generated, metadata)
        ]
        finite = [error for error in errors if np.isfinite(error)]
    return {
        "caption_following": accuracy,
        "centroid_error": float(np.mean(finite)) if finite else float("nan"),
        "psnr": float(psnr(generated[:, scored], truth[:, scored]).clamp(max=100).mean()),
        "ssim": float(ssim(generated[:, scored], truth[:, scored]).mean()),
        "num_clips": len(rows),
        "scored_frames": scored,
        **({"step_agreement": step_agreement} if step_agreement else {}),
    }


def _step_agreement(checks: Sequence[textcam.CaptionCheck], rows: Sequence[dict], preset: str) -> dict[str, float]:
    """Per camera motion, the share of the steps that the captions give it which the motion check reads as it
    (a resting last step is not counted); motions no step has are left out."""
    seen: dict[str, list[bool]] = {}
    for check, row in zip(checks, rows):
        for label, motion in zip(check.step_motions, textcam.step_motions(_segments(row), preset)):
            if motion is not None:
                seen.setdefault(motion, []).append(label == motion)
    return {motion: float(np.mean(seen[motion])) for motion in textcam.MOTIONS if motion in seen}


def task_rows(rows: Sequence[dict], task: str) -> list[dict]:
    """The clips a task is scored on: two-segment clips for infilling, all clips otherwise."""
    if task == "infilling":
        return [row for row in rows if len(_segments(row)) == 2]
    return list(rows)


@torch.no_grad()
def complete_rows(
    model,
    processor,
    rows: Sequence[dict],
    given_indices: Sequence[int],
    texts: Sequence[str] | None = None,
    batch_size: int = 16,
    generator_seed: int = 0,
    progress: bool = False,
    **complete_kwargs,
) -> np.ndarray:
    """MMVG completions (uint8, B x N x H x W x C) of `rows` from the frames at `given_indices` and their captions (or
    `texts`, e.g. empty prompts), through the text-guided-video-completion pipeline: the one front-end every
    completion goes through. `complete_kwargs` are its settings (decoding, num_inference_steps, ...)."""
    texts = [row["text"] for row in rows] if texts is None else list(texts)
    pipe = VideoCompletionPipeline(model=model, processor=processor, batch_size=batch_size)
    texts = tqdm(texts, desc="completing", disable=not progress, leave=False)

    def given_frames(row: dict) -> dict[int, torch.Tensor]:
        frames = torch.as_tensor(np.asarray(row["frames"]))
        return {index: frames[index] for index in given_indices}

    inputs = ({"prompt": text, "given_frames": given_frames(row)} for text, row in zip(texts, rows))
    results = pipe(inputs, output_type="np", seed=generator_seed, progress=False, **complete_kwargs)
    return np.stack([result["frames"] for result in results])


def evaluate_completion(
    model,
    processor,
    rows: Sequence[dict],
    tasks: Sequence[str] = ("prediction", "rewind", "infilling"),
    methods: Sequence[str] = ("mmvg",),
    preset: str | None = None,
    batch_size: int = 16,
    progress: bool = False,
    **complete_kwargs,
) -> dict[str, dict[str, dict[str, float]]]:
    """`{task: {method: scores}}` for the named tasks (see `score_clips` for the scores). Methods: `mmvg`,
    `mmvg_empty_text` (the same model and frames, empty prompts: the text-free control), `tvq_ceiling` (the true
    clip through the model's T-VQ, the given frames kept: the ceiling of any model that outputs its tokens),
    `copy_frame`, `linear_blend` (infilling only), `camera_warp` (TextCam only)."""
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise ValueError(f"Unknown methods {unknown}; choose from {METHODS}.")
    rows = list(rows)
    preset = preset or rows[0].get("preset")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for task in tasks:
        selected = task_rows(rows, task)
        num_frames = np.asarray(selected[0]["frames"]).shape[0]
        indices = task_given_indices(task, num_frames)
        results[task] = {}
        for method in methods:
            if method in ("mmvg", "mmvg_empty_text"):
                texts = [""] * len(selected) if method == "mmvg_empty_text" else None
                generated = complete_rows(
                    model, processor, selected, indices, texts=texts, batch_size=batch_size, progress=progress,
                    **complete_kwargs,
                )
            else:
                if (method == "linear_blend" and task != "infilling") or (
                    method == "camera_warp" and not is_textcam(selected[0])
                ):
                    continue
                frames = torch.stack([torch.as_tensor(np.asarray(row["frames"])) for row in selected])
                given = given_mask_from_indices(indices, num_frames)[None].expand(len(selected), -1)
                if method == "tvq_ceiling":
                    _, decoded = tvq_round_trip(model.tvq, processor.video_processor, frames.numpy())
                    decoded = torch.from_numpy(decoded).permute(0, 1, 4, 2, 3)
                    generated = torch.where(given[..., None, None, None], frames, decoded)
                elif method == "camera_warp":
                    generated = camera_warp_baseline(frames, given, selected, preset)
                else:
                    baseline = copy_frame_baseline if method == "copy_frame" else linear_blend_baseline
                    generated = baseline(frames, given)
                generated = generated.permute(0, 1, 3, 4, 2).numpy()
            results[task][method] = score_clips(generated, selected, preset, indices)
    return results


def save_task_grid(model, processor, rows: Sequence[dict], path, scale: int = 2, **complete_kwargs):
    """A PNG grid: for each clip in `rows`, the truth and its completions for prediction, rewind and infilling
    (given frames outlined). `complete_kwargs` go to `model.complete`."""
    rows = list(rows)
    num_frames = np.asarray(rows[0]["frames"]).shape[0]
    completions = {
        task: complete_rows(model, processor, rows, task_given_indices(task, num_frames), **complete_kwargs)
        for task in TASKS
    }
    videos, labels, highlights = [], [], []
    for index, row in enumerate(rows):
        videos.append(np.asarray(row["frames"]).transpose(0, 2, 3, 1))
        labels.append(f"truth: {row['text']}")
        highlights.append([])
        for task, generated in completions.items():
            videos.append(generated[index])
            labels.append(task)
            highlights.append(task_given_indices(task, num_frames))
    return save_video_grid(videos, path, labels=labels, scale=scale, highlight=highlights)


def _number(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.2f}"


def results_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """A markdown table of `evaluate_completion` results. Centroid error, PSNR and SSIM are of the generated frames
    only (the columns say so); caption following reads the whole clip."""
    lines = [
        "| task | method | clips | caption following | centroid error (px), generated frames "
        "| PSNR (dB), generated frames | SSIM, generated frames |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, methods in results.items():
        for method, scores in methods.items():
            lines.append(
                f"| {task} | {method} | {scores['num_clips']} | {100 * scores['caption_following']:.1f}% | "
                f"{_number(scores['centroid_error'])} | {scores['psnr']:.2f} | {scores['ssim']:.3f} |"
            )
    return "\n".join(lines)


def step_agreement_table(results: dict[str, dict[str, dict]]) -> str:
    """A markdown table of the TextCam results' `step_agreement`: per task and method, the share of each camera
    motion's steps that the motion check reads as that motion."""
    lines = ["| task | method | " + " | ".join(f"{motion} steps" for motion in textcam.MOTIONS) + " |",
             "|---|---" + "|---" * len(textcam.MOTIONS) + "|"]
    for task, methods in results.items():
        for method, scores in methods.items():
            shares = scores.get("step_agreement", {})
            cells = [f"{100 * shares[motion]:.0f}%" if motion in shares else "-" for motion in textcam.MOTIONS]
            lines.append(f"| {task} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "METHODS",
    "camera_warp_baseline",
    "complete_rows",
    "copy_frame_baseline",
    "counterfactual_rows",
    "evaluate_completion",
    "is_textcam",
    "linear_blend_baseline",
    "results_table",
    "save_task_grid",
    "score_clips",
    "step_agreement_table",
    "task_rows",
    "tvq_round_trip",
]
