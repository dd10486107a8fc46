"""A `datasets` loader for a folder of captioned videos (the videofolder convention).

The folder holds video files and a `metadata.jsonl` (or `metadata.csv`) with one row per video:
a `file_name` relative to the folder and a caption column (`text` by default). Rows are read
with `datasets`; frames are decoded lazily with decord (only the sampled frames), resized and
centre-cropped to the model resolution and returned as uint8 tensors (T, C, H, W).

Bad files: the loader checks every video once when the data set is built (it exists, decodes,
and has enough frames for the requested sampling). `on_bad_file="raise"` (the default) stops
with an error that lists the unusable files and why; `on_bad_file="skip"` drops them, warns
with their number and names, and records them in `dataset.info.description`. Either way no
sample is ever silently wrong or silently lost.

Metadata from someone else reaches no file outside its folder: a `file_name` that resolves outside it
(`../x.mp4`, an absolute path elsewhere, a symlink pointing out) is refused with a `VideoFolderError`
naming the row, whatever `on_bad_file` says; subfolders are fine. Videos whose sampled frames would
take more than `max_decoded_bytes` to decode are unusable files like any other (see
`transformers_mmvg.video_io.read_video`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import datasets
import torch
from tqdm.auto import tqdm

from ..video_io import (
    MAX_DECODED_BYTES,
    VideoReadError,
    VideoTooLargeError,
    VideoTooShortError,
    check_decoded_size,
    count_frames,
    read_video,
    resize_center_crop,
    sample_frame_indices,
)

__all__ = ["BadVideoReport", "DecodedClips", "VideoFolderError", "load_video_folder", "resize_center_crop"]

logger = logging.getLogger(__name__)

METADATA_FILES = ("metadata.jsonl", "metadata.csv")


class VideoFolderError(ValueError):
    """A video folder whose metadata or files cannot be used."""


@dataclass
class BadVideoReport:
    """The videos a scan found unusable, as (file_name, reason) pairs."""

    bad: list[tuple[str, str]] = field(default_factory=list)

    def summary(self, limit: int = 5) -> str:
        listed = "; ".join(f"{name}: {reason}" for name, reason in self.bad[:limit])
        more = f"; and {len(self.bad) - limit} more" if len(self.bad) > limit else ""
        return f"{len(self.bad)} unusable video(s): {listed}{more}"


def _read_metadata(data_dir: Path, caption_column: str) -> datasets.Dataset:
    present = [name for name in METADATA_FILES if (data_dir / name).is_file()]
    if not present:
        raise VideoFolderError(f"no metadata.jsonl or metadata.csv in {data_dir}")
    if len(present) > 1:
        raise VideoFolderError(f"both metadata.jsonl and metadata.csv in {data_dir}: keep one")
    metadata_path = data_dir / present[0]
    _check_utf8(metadata_path)
    try:
        if metadata_path.suffix == ".jsonl":
            rows = datasets.Dataset.from_json(str(metadata_path))
        else:
            rows = datasets.Dataset.from_csv(str(metadata_path))
    except Exception as error:
        raise VideoFolderError(f"cannot parse {metadata_path}: {error}") from error
    for column in ("file_name", caption_column):
        if column not in rows.column_names:
            raise VideoFolderError(
                f"{metadata_path} has no '{column}' column (columns: {', '.join(rows.column_names)})"
            )
    return rows


def _check_utf8(metadata_path: Path) -> None:
    # pyarrow's JSON reader accepts invalid UTF-8 and fails only when a row is read, without naming the file
    with open(metadata_path, "rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise VideoFolderError(
                    f"{metadata_path} line {line_number} is not valid UTF-8 (byte {line[error.start]:#x} at column "
                    f"{error.start + 1}); save the metadata as UTF-8"
                ) from error


def _video_path(root: Path, file_name: object, row: int | None = None) -> Path:
    """The file a metadata row names, symlinks followed; refused unless it lies inside the folder `root`.

    Args:
        root: the video folder, resolved.
        file_name: the row's `file_name`.
        row: the row's number (1-based) for the error message.
    """
    where = f"metadata row {row}" if row is not None else "a metadata row"
    if not isinstance(file_name, str) or not file_name:
        raise VideoFolderError(f"{root}: {where} has file_name {file_name!r}, not a path relative to the folder")
    path = (root / file_name).resolve()
    if not path.is_relative_to(root):
        raise VideoFolderError(
            f"{root}: {where} has file_name {file_name!r}, which resolves to {path}, outside the folder; a video "
            "folder's metadata may only name files inside it"
        )
    return path


def _check_video(path: Path, num_frames: int, stride: int | None, max_decoded_bytes: int | None) -> str | None:
    """Return why the video cannot supply the sampling, or None if it can."""
    try:
        check_decoded_size(path, num_frames, max_decoded_bytes)
        sample_frame_indices(count_frames(path), num_frames, stride)
    except (VideoReadError, VideoTooShortError, VideoTooLargeError) as error:
        return str(error)
    return None


def _expand_into_windows(
    rows: datasets.Dataset, root: Path, num_frames: int, stride: int, clips_per_video: int
) -> datasets.Dataset:
    """One row per window: `clips_per_video` starts spread evenly over each video's valid range."""
    span = (num_frames - 1) * stride + 1
    expanded: dict[str, list] = {name: [] for name in rows.column_names + ["clip_start"]}
    for row in rows:
        last_start = count_frames(_video_path(root, row["file_name"])) - span
        if last_start < 0:
            raise VideoTooShortError(f"{row['file_name']}: too short for {num_frames} frames at stride {stride}")
        starts = sorted({round(last_start * k / max(clips_per_video - 1, 1)) for k in range(clips_per_video)})
        for start in starts:
            for name in rows.column_names:
                expanded[name].append(row[name])
            expanded["clip_start"].append(start)
    return datasets.Dataset.from_dict(expanded)


def load_video_folder(
    data_dir: str | os.PathLike,
    num_frames: int,
    resolution: int | tuple[int, int] = 64,
    stride: int | None = None,
    caption_column: str = "text",
    on_bad_file: Literal["raise", "skip"] = "raise",
    check_files: bool = True,
    clips_per_video: int = 1,
    max_decoded_bytes: int | None = MAX_DECODED_BYTES,
) -> datasets.Dataset:
    """Load a folder of captioned videos as a `datasets.Dataset`.

    Args:
        data_dir: folder with the videos and `metadata.jsonl` / `metadata.csv`.
        num_frames: frames per sample N.
        resolution: output size, an int (square) or (height, width).
        stride: frame stride; `None` spreads the N frames evenly over each video.
        caption_column: name of the caption column in the metadata.
        on_bad_file: `"raise"` stops on unusable videos (listing them), `"skip"` drops them with a
            warning; see the module docstring.
        check_files: scan every video once up front (recommended). Without the scan, a bad file
            raises `VideoReadError` naming it when its sample is read.
        clips_per_video: take this many windows of `num_frames` frames at `stride` from each video,
            their starts spread evenly over the video (a few long videos become many samples).
            Needs `stride`; each row then has a `clip_start` column.
        max_decoded_bytes: the most memory decoding one sample may take (see `read_video`); a video whose
            `num_frames` frames would need more is an unusable file. None for no limit.

    Returns:
        A dataset whose rows are `{"frames": uint8 tensor (N, 3, H, W), "text": str,
        "file_name": str, ...}` plus the other metadata columns; frames are decoded on access.

    Raises:
        VideoFolderError: unusable metadata, a `file_name` that resolves outside `data_dir` (symlinks
            followed), or with `on_bad_file="raise"` unusable videos.
    """
    if on_bad_file not in ("raise", "skip"):
        raise ValueError(f"on_bad_file must be 'raise' or 'skip', got {on_bad_file!r}")
    if clips_per_video < 1 or (clips_per_video > 1 and stride is None):
        raise ValueError(f"clips_per_video={clips_per_video} needs to be >= 1, and a stride when > 1")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise VideoFolderError(f"video folder not found: {data_dir}")
    root = data_dir.resolve()
    rows = _read_metadata(data_dir, caption_column)
    for row, file_name in enumerate(rows["file_name"], start=1):
        _video_path(root, file_name, row)
    if caption_column != "text":
        if "text" in rows.column_names:
            raise VideoFolderError(f"metadata has both 'text' and caption column '{caption_column}'")
        rows = rows.rename_column(caption_column, "text")
    missing_captions = [name for name, text in zip(rows["file_name"], rows["text"]) if not isinstance(text, str)]
    if missing_captions:
        raise VideoFolderError(
            f"{len(missing_captions)} row(s) of the metadata in {data_dir} have no caption: {missing_captions[:5]}"
        )

    if check_files:
        report = BadVideoReport()
        for name in tqdm(rows["file_name"], desc="checking videos", unit="video", disable=len(rows) < 200):
            reason = _check_video(_video_path(root, name), num_frames, stride, max_decoded_bytes)
            if reason is not None:
                report.bad.append((name, reason))
        if report.bad:
            if on_bad_file == "raise":
                raise VideoFolderError(f"{data_dir}: {report.summary()} (pass on_bad_file='skip' to drop them)")
            bad_names = {name for name, _ in report.bad}
            rows = rows.filter(lambda name: name not in bad_names, input_columns="file_name")
            logger.warning("%s: skipped %s", data_dir, report.summary())
            rows.info.description = json.dumps({"skipped_videos": report.bad})

    if clips_per_video > 1:
        rows = _expand_into_windows(rows, root, num_frames, stride, clips_per_video)

    def decode(batch: dict) -> dict:
        frames = []
        starts = batch.get("clip_start", [None] * len(batch["file_name"]))
        for name, start in zip(batch["file_name"], starts):
            path = _video_path(root, name)  # checked again: the folder may have changed since it was loaded
            if start is None:
                video = read_video(path, num_frames=num_frames, stride=stride, max_decoded_bytes=max_decoded_bytes)
            else:
                indices = range(start, start + num_frames * stride, stride)
                video = read_video(path, indices=indices, max_decoded_bytes=max_decoded_bytes)
            frames.append(resize_center_crop(torch.from_numpy(video).permute(0, 3, 1, 2), resolution))
        return {**batch, "frames": frames}

    rows.set_transform(decode)
    return rows


class DecodedClips(torch.utils.data.Dataset):
    """Every clip of a `load_video_folder` data set decoded once and held in memory as one uint8 tensor
    (N, T, C, H, W): N * T * C * H * W bytes (2,000 clips of 8 frames at 64x64: 197 MB). Rows are
    `{"frames": (T, C, H, W), "text": str}`. Decoding an mp4 clip costs more than a small model's training step on a
    CPU, so a T-VQ run that reads its clips many times decodes them once.

    Raises:
        ValueError: the frames would take more than `max_bytes` (None: no limit).
    """

    def __init__(self, dataset: datasets.Dataset, max_bytes: int | None = 8 * 2**30):
        num_clips = len(dataset)
        if num_clips == 0:
            raise ValueError("DecodedClips needs a non-empty data set")
        first = dataset[0]["frames"]
        needed = num_clips * first.numel()
        if max_bytes is not None and needed > max_bytes:
            raise ValueError(
                f"holding the {num_clips} decoded clips in memory takes {needed / 2**30:.1f} GiB, more than "
                f"{max_bytes / 2**30:.1f} GiB; decode them on the fly instead (--cache_frames False)"
            )
        self.frames = torch.empty((num_clips, *first.shape), dtype=torch.uint8)
        self.texts = list(dataset["text"])
        for index in tqdm(range(num_clips), desc="decoding clips into memory", unit="clip", disable=num_clips < 200):
            self.frames[index] = dataset[index]["frames"]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict:
        return {"frames": self.frames[index], "text": self.texts[index]}
