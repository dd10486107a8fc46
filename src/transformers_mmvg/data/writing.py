"""What the data set writers (TextShapes, TextCam) share: a folder they may write into, and clips encoded in order in
worker processes with a progress bar, ending in `metadata.jsonl`."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["MAX_DEFAULT_WORKERS", "METADATA_FILE", "WRITER_CHUNK_SIZE", "claim_folder", "clip_file_name", "write_clips"]

METADATA_FILE = "metadata.jsonl"
MAX_DEFAULT_WORKERS = 2
WRITER_CHUNK_SIZE = 32


def clip_file_name(index: int) -> str:
    return f"clip_{index:05d}.mp4"


def claim_folder(out_dir: Path, num_clips: int, overwrite: bool, data_set: str) -> None:
    """Let a writer of `data_set` write `num_clips` clips into `out_dir`: new or empty, or with `overwrite` any folder
    whose files of the writer's names are plain files (a symlink there would make the writer write through it,
    outside the folder). Raises `FileExistsError` otherwise; nothing is ever deleted."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} is a file, not a folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(
            f"{out_dir} is not empty; {data_set} is written into a new or empty folder. Pass overwrite=True "
            f"(--overwrite) to replace its {METADATA_FILE} and clip_NNNNN.mp4 files there (nothing else is touched)."
        )
    for name in [METADATA_FILE] + [clip_file_name(index) for index in range(num_clips)]:
        path = out_dir / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise FileExistsError(f"{path} is a symlink or not a plain file; the writer does not write through it")


def write_clips(write_clip: Callable[[tuple], dict], tasks: Sequence[tuple], out_dir: Path, num_workers: int | None,
                description: str) -> Path:
    """`write_clip(task)` (a top-level function, so that a Pool can pickle it) for every task, in order, in up to
    `num_workers` processes (None: up to `MAX_DEFAULT_WORKERS`, capped by the CPU count; 0 or 1: this process), with a
    progress bar; its returned rows become `out_dir/metadata.jsonl`. Returns `out_dir`."""
    from tqdm.auto import tqdm

    if num_workers is None:
        num_workers = min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1)
    num_workers = min(num_workers, len(tasks))
    rows = []
    with tqdm(total=len(tasks), desc=description, unit="clip") as progress:
        if num_workers > 1:
            with multiprocessing.Pool(num_workers) as pool:
                # imap keeps the clips in order; chunks amortise the inter-process traffic
                for row in pool.imap(write_clip, tasks, chunksize=WRITER_CHUNK_SIZE):
                    rows.append(row)
                    progress.update()
        else:
            for task in tasks:
                rows.append(write_clip(task))
                progress.update()
    with open(out_dir / METADATA_FILE, "w") as file:
        for row in rows:
            file.write(json.dumps(row) + "\n")
    return out_dir
