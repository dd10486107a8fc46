"""Quality of the trained MMVG on held-out TextShapes clips: mmvg-quality (tasks, baselines, K given frames, the
counterfactual caption check) and mmvg-steps (quality against parallel decoding steps); on TextCam
mmvg-textcam-quality and mmvg-textcam-copy-offsets (which way the model moves content)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import ROOT, WORK_DIR, benchmark, header, pan_source_interior


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


def _trained_mmvg(path: Path):
    from transformers import pipeline

    from transformers_mmvg.pipeline_video_completion import TASK_NAME

    pipe = pipeline(TASK_NAME, model=str(path))
    return pipe.model.eval(), pipe.processor


def _held_out_textcam_rows(num_clips: int = 200, seed: int = 2) -> list[dict]:
    """The demo's held-out TextCam clips (the held-out photos, seed 2)."""
    from transformers_mmvg.data.textcam import write_textcam
    from transformers_mmvg.data.video_folder import load_video_folder

    folder = WORK_DIR / f"textcam-held-out-{num_clips}-seed{seed}"
    if not (folder / "metadata.jsonl").is_file():
        write_textcam(folder, "textcam-64x8", num_clips, seed, split="held_out", overwrite=True)
    dataset = load_video_folder(folder, num_frames=8, resolution=64)
    return [dataset[index] for index in range(len(dataset))]


def _quality_tables(model, processor, rows: list[dict], preset: str) -> str:
    """The three tasks in the three decoding modes with the control, the ceiling and the baselines; K = 1..4 given
    frames; and the counterfactual caption check: three markdown tables."""
    from transformers_mmvg.evaluation import (
        METHODS,
        complete_rows,
        counterfactual_rows,
        evaluate_completion,
        is_textcam,
        results_table,
        score_clips,
        step_agreement_table,
    )
    from transformers_mmvg.masking import task_given_indices

    greedy = dict(num_inference_steps=12, temperature=0.0)
    parallel = evaluate_completion(model, processor, rows, methods=METHODS, preset=preset, decoding="parallel",
                                   progress=True, **greedy)  # fmt: skip
    # the other decoding modes, MMVG only: (name in the results, label in the tables, completion settings);
    # frame by frame at 2 steps a frame makes 14 model calls for 7 frames, about parallel decoding's 12
    others = [("mmvg_frame_by_frame", "mmvg (frame by frame, 2 steps a frame)",
               dict(decoding="frame_by_frame", num_inference_steps=2)),
              ("mmvg_autoregressive", "mmvg (autoregressive)", dict(decoding="autoregressive"))]  # fmt: skip
    labels = {"| mmvg |": "| mmvg (parallel, 12 steps) |"}
    for name, label, settings in others:
        completed = evaluate_completion(model, processor, rows, preset=preset, temperature=0.0, progress=True,
                                        **settings)  # fmt: skip
        for task, methods in completed.items():
            parallel[task][name] = methods["mmvg"]
        labels[f"| {name} |"] = f"| {label} |"

    def relabel(table: str) -> str:
        for old, new in labels.items():
            table = table.replace(old, new)
        return table

    tasks_table = relabel(results_table(parallel))
    if is_textcam(rows[0]):
        tasks_table += ("\n\nPer camera motion, the share of its steps (frame t - 1 to t) that the motion check "
                        "reads as that motion:\n\n" + relabel(step_agreement_table(parallel)))

    k_lines = ["| given frames K (prediction) | clips | caption following | centroid error (px), generated frames "
               "| PSNR (dB), generated frames |", "|---|---|---|---|---|"]
    for num_given in (1, 2, 3, 4):
        given = task_given_indices("prediction", 8, num_given)
        generated = complete_rows(model, processor, rows, given, decoding="parallel", **greedy)
        scores = score_clips(generated, rows, preset, given)
        k_lines.append(f"| {num_given} | {scores['num_clips']} | {100 * scores['caption_following']:.1f}% | "
                       f"{scores['centroid_error']:.2f} | {scores['psnr']:.2f} |")

    cf_lines = ["| task | clips | follows the new caption | follows the true caption |", "|---|---|---|---|"]
    for task in ("prediction", "rewind", "infilling"):
        changed = counterfactual_rows(rows, task, preset)
        generated = complete_rows(model, processor, changed, task_given_indices(task, 8), decoding="parallel",
                                  **greedy)
        originals = {row["file_name"]: row for row in rows}
        new = score_clips(generated, changed, preset)["caption_following"]
        old = score_clips(generated, [originals[row["file_name"]] for row in changed], preset)["caption_following"]
        cf_lines.append(f"| {task} | {len(changed)} | {100 * new:.1f}% | {100 * old:.1f}% |")
    return (
        tasks_table + "\n\nK given frames (the first K, parallel decoding):\n\n" + "\n".join(k_lines) + "\n\n"
        "Counterfactual: the same given frames with another caption (every motion reversed for prediction and "
        "rewind, the two legs swapped for infilling). The completion should follow the new caption, not the true "
        "one:\n\n" + "\n".join(cf_lines) + "\n"
    )


@benchmark("mmvg-quality")
def mmvg_quality(args: argparse.Namespace) -> str:
    """Completion quality of the trained MMVG on 200 held-out TextShapes clips: the three tasks with the three decoding
    modes, the text-free control, the T-VQ ceiling and the baselines; K = 1..4 given frames; and the counterfactual
    caption check (TextShapes clips whose new path would leave the frame are left out)."""
    model, processor = _trained_mmvg(args.mmvg)
    tables = _quality_tables(model, processor, _held_out_rows(args), "textshapes-64x8")
    body = (
        "## MMVG completion quality on held-out TextShapes (200 clips, textshapes-64x8)\n\n"
        f"Model: `{_relative(args.mmvg)}`. Held out: 200 clips drawn with seed 2, none of them a clip either "
        "checkpoint was trained on. Greedy decoding (temperature 0), guidance scale 1. Infilling is scored on the "
        "two-segment clips. Centroid error, PSNR and SSIM are of the generated frames only (the given frames come "
        "back exactly and are not counted); caption following reads the whole clip. `mmvg_empty_text` is the same "
        "model and frames with an empty prompt (the text-free control); `tvq_ceiling` is the true clip through the "
        "T-VQ; `copy_frame` repeats the nearest given frame; `linear_blend` cross-fades the two given frames. The "
        "caption check is TEXTSHAPES.md's; counterfactual clips whose new path would leave the frame are left out.\n\n"
    )
    return body + header("mmvg-quality", "python benchmarks/run.py --only mmvg-quality") + "\n" + tables


@benchmark("mmvg-textcam-quality")
def mmvg_textcam_quality(args: argparse.Namespace) -> str:
    """The same for the TextCam MMVG (--mmvg-textcam) on 200 clips of the held-out photos, with the camera warp."""
    model, processor = _trained_mmvg(args.mmvg_textcam)
    tables = _quality_tables(model, processor, _held_out_textcam_rows(), "textcam-64x8")
    body = (
        "## MMVG completion quality on held-out TextCam (200 clips, textcam-64x8)\n\n"
        f"Model: `{_relative(args.mmvg_textcam)}`. Held out: 200 clips of the held-out photos (chelsea.png, "
        "rocket.jpg; seed 2), which no model saw in training. Greedy decoding (temperature 0), guidance scale 1. "
        "Infilling is scored on the two-motion clips. PSNR and SSIM are of the generated frames only; caption "
        "following is TEXTCAM.md's motion check on the whole clip. `mmvg_empty_text` is the text-free control; "
        "`tvq_ceiling` the true clip through the T-VQ (the ceiling of any model that outputs its tokens); "
        "`copy_frame`, `linear_blend` and `camera_warp` (reads the caption, moves the window over the nearest given "
        "frame, repeats its edge) the baselines.\n\n"
    )
    command = "python benchmarks/run.py --only mmvg-textcam-quality"
    return body + header("mmvg-textcam-quality", command) + "\n" + tables


@benchmark("mmvg-textcam-copy-offsets")
def mmvg_textcam_copy_offsets(args: argparse.Namespace) -> str:
    """Does the TextCam MMVG move content the way the caption says? Teacher-forced next-frame prediction on the 200
    held-out clips (frame 0 given, frames 1 .. t - 1 known to the decoder, frame t on masked): for every pan step,
    the share of the model's most likely interior tokens that equal frame t - 1's token at each pan's offset."""
    import numpy as np
    import torch

    from transformers_mmvg.data import textcam
    from transformers_mmvg.evaluation import tvq_round_trip

    model, processor = _trained_mmvg(args.mmvg_textcam)
    rows = _held_out_textcam_rows()
    ids, _ = tvq_round_trip(model.tvq, processor.video_processor, np.stack([row["frames"].numpy() for row in rows]))
    ids = torch.as_tensor(ids)
    text = processor(text=[row["text"] for row in rows], return_tensors="pt")
    num_clips, num_frames = ids.shape[:2]
    opposite, perpendicular = textcam.OPPOSITES, {"left": "up", "right": "down", "up": "left", "down": "right"}
    counts: dict[tuple[bool, str], list[list[float]]] = {}
    given = torch.zeros(num_clips, num_frames, dtype=torch.bool)
    given[:, 0] = True
    for step in range(1, num_frames):
        token_mask = torch.zeros_like(ids, dtype=torch.bool)
        token_mask[:, step:] = True
        with torch.no_grad():
            logits = torch.cat([
                model(input_ids=text["input_ids"][part], attention_mask=text["attention_mask"][part],
                      video_token_ids=ids[part], given_frames_mask=given[part], token_mask=token_mask[part]).logits
                for part in torch.arange(num_clips).split(50)
            ])  # fmt: skip
        predicted = logits[:, step, 1:-1, 1:-1].argmax(-1)
        for clip, row in enumerate(rows):
            motions = textcam.step_motions(row["motions"])
            motion = motions[step - 1]
            if motion not in perpendicular:
                continue
            starts_segment = step == 1 or motions[step - 2] != motion

            def agreement(tokens: torch.Tensor, name: str) -> float:
                return float((tokens == pan_source_interior(ids[clip, step - 1], name)).float().mean())

            names = [motion, opposite[motion], perpendicular[motion], opposite[perpendicular[motion]], "still"]
            shares = [agreement(predicted[clip], name) for name in names]
            shares = [shares[0], shares[1], (shares[2] + shares[3]) / 2, shares[4]]
            truth = agreement(ids[clip, step, 1:-1, 1:-1], motion)
            accuracy = float((predicted[clip] == ids[clip, step, 1:-1, 1:-1]).float().mean())
            counts.setdefault((starts_segment, motion), []).append([*shares, truth, accuracy])
    lines = ["| step | camera pan | steps | caption's pan | opposite pan | perpendicular pans (mean) | same position "
             "| true frame t at the caption's pan | model tokens equal to the true ones |", "|---" * 9 + "|"]
    for starts_segment in (True, False):
        for motion in perpendicular:
            values = counts.get((starts_segment, motion))
            if not values:
                continue
            means = np.mean(values, axis=0)
            label = "first of a segment" if starts_segment else "later in a segment"
            shares = " | ".join(f"{value:.2f}" for value in means)
            lines.append(f"| {label} | {motion} | {len(values)} | {shares} |")
    body = (
        f"## Which way the TextCam MMVG moves content (`{_relative(args.mmvg_textcam)}`)\n\n"
        "Teacher-forced next-frame prediction on the 200 held-out TextCam clips (frame 0 given; frames 1 .. t - 1 "
        "known to the decoder, frame t on masked, as in autoregressive decoding): for each pan step, the share of the "
        "model's most likely interior tokens (6 x 6) that equal frame t - 1's token at the offset of the caption's "
        "pan, of the opposite pan, of the two perpendicular pans, and at the same position; then the same share for "
        "the true frame t (what copying at the caption's offset reaches) and the model's token accuracy. At the "
        "first step of a segment only the caption tells the direction; later, the frames so far show it too.\n\n"
    )
    command = "python benchmarks/run.py --only mmvg-textcam-copy-offsets"
    return body + header("mmvg-textcam-copy-offsets", command) + "\n" + "\n".join(lines) + "\n"


@benchmark("mmvg-steps")
def mmvg_steps(args: argparse.Namespace) -> str:
    """Quality against the number of parallel decoding steps (trained MMVG, 100 held-out clips, greedy), with the
    completion time per clip; autoregressive decoding as the reference."""
    from plot import line_plot

    from transformers_mmvg.evaluation import evaluate_completion

    model, processor = _trained_mmvg(args.mmvg)
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
