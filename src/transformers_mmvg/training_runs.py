"""What the example training scripts (`run_tvq.py`, `run_mmvg.py`) share: where the train and held-out clips come
from, and what they write beside the model besides its weights.

`training_splits` returns the user's video folders, or generates TextShapes when none is given. Its `record` goes to
`training_data.json` in the output folder, so that later held-out sets (the demo's, the tests', the benchmarks') can
leave out every clip the model saw in training (`textshapes.clips_seen_in_training`). `write_train_log` writes every
logged step and evaluation to `train_log.jsonl`. So the output folder of a run is a complete checkpoint folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .data.textshapes import TRAINING_DATA_FILE, ensure_textshapes_splits, get_preset, training_data_record

__all__ = ["TRAIN_LOG_FILE", "TrainingSplits", "training_splits", "write_train_log", "write_training_data_record"]

TRAIN_LOG_FILE = "train_log.jsonl"


@dataclass
class TrainingSplits:
    """The folders a training run reads, the clip size, and what `training_data.json` will say about them."""

    train_dir: Path
    eval_dir: Path
    num_frames: int
    resolution: int
    record: dict


def training_splits(
    train_dir: str | None,
    eval_dir: str | None,
    data_dir: str | os.PathLike,
    preset: str,
    num_train_clips: int,
    num_eval_clips: int,
    seed: int,
    num_frames: int | None = None,
    resolution: int | None = None,
) -> TrainingSplits:
    """The user's `train_dir` / `eval_dir` (then `num_frames` and `resolution` are required), or TextShapes splits
    generated under `data_dir` with `ensure_textshapes_splits` (held-out clips disjoint from the training clips)."""
    if train_dir is None:
        spec = get_preset(preset)
        train, held_out = ensure_textshapes_splits(data_dir, spec, num_train_clips, num_eval_clips, seed)
        return TrainingSplits(
            train, held_out, num_frames or spec.num_frames, resolution or spec.resolution,
            training_data_record(spec, num_train_clips, seed),
        )  # fmt: skip
    if eval_dir is None or num_frames is None or resolution is None:
        raise ValueError("with --train_dir, also give --eval_dir, --num_frames and --resolution")
    record = {"dataset": "video_folder", "train_dir": str(Path(train_dir).resolve())}
    return TrainingSplits(Path(train_dir), Path(eval_dir), num_frames, resolution, record)


def write_training_data_record(output_dir: str | os.PathLike, record: dict) -> Path:
    """Write `record` as `output_dir/training_data.json`."""
    path = Path(output_dir) / TRAINING_DATA_FILE
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def write_train_log(output_dir: str | os.PathLike, log_history: list[dict]) -> Path:
    """Write a Trainer's `state.log_history` (every logged step and evaluation) as `output_dir/train_log.jsonl`."""
    path = Path(output_dir) / TRAIN_LOG_FILE
    with open(path, "w") as file:
        for entry in log_history:
            file.write(json.dumps(entry) + "\n")
    return path
