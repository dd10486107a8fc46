"""Writing videos as GIFs and as captioned PNG grids (one row per video, one column per frame)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["make_video_grid", "save_gif", "save_video_grid"]

LABEL_HEIGHT = 14  # pixels of the caption strip above each row (PIL's default bitmap font is ~11 px)
GAP = 2  # pixels between frames and rows
BACKGROUND = (40, 40, 40)  # grey, so that black frames stand out from the page


def _as_uint8_video(video: np.ndarray) -> np.ndarray:
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"a video must be uint8 of shape (T, H, W, 3), got {video.dtype} {video.shape}")
    return video


def _upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    # Nearest-neighbour so that small synthetic frames stay crisp and pixel-exact.
    return frame.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else frame


def save_gif(video: np.ndarray, path: str | os.PathLike, fps: int = 8, scale: int = 1) -> Path:
    """Write uint8 frames (T, H, W, 3) as a looping GIF, optionally upscaled by an integer factor."""
    video = _as_uint8_video(video)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [Image.fromarray(_upscale(frame, scale)) for frame in video]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    return path


def make_video_grid(
    videos: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    scale: int = 2,
    highlight: Sequence[Sequence[int]] | None = None,
) -> Image.Image:
    """Lay videos out as rows of frames with a caption strip above each row.

    Args:
        videos: uint8 videos (T_i, H, W, 3); rows may have different frame counts.
        labels: one caption per row (optional).
        scale: integer upscaling of every frame (nearest neighbour).
        highlight: for each row, frame indices to outline (e.g. the given frames of a completion).
    """
    videos = [_as_uint8_video(video) for video in videos]
    if not videos:
        raise ValueError("make_video_grid needs at least one video")
    if labels is not None and len(labels) != len(videos):
        raise ValueError(f"got {len(labels)} labels for {len(videos)} videos")
    frame_height, frame_width = (videos[0].shape[1] * scale, videos[0].shape[2] * scale)
    if any(video.shape[1:3] != videos[0].shape[1:3] for video in videos):
        raise ValueError("all videos of a grid must have the same frame size")
    columns = max(video.shape[0] for video in videos)
    label_height = LABEL_HEIGHT if labels is not None else 0
    row_height = label_height + frame_height + GAP
    canvas = Image.new("RGB", (columns * (frame_width + GAP) + GAP, len(videos) * row_height + GAP), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for row, video in enumerate(videos):
        top = GAP + row * row_height
        if labels is not None:
            draw.text((GAP, top), labels[row], fill=(255, 255, 255), font=font)
        for column, frame in enumerate(video):
            left = GAP + column * (frame_width + GAP)
            canvas.paste(Image.fromarray(_upscale(frame, scale)), (left, top + label_height))
            if highlight is not None and column in highlight[row]:
                draw.rectangle(
                    (left - 1, top + label_height - 1, left + frame_width, top + label_height + frame_height),
                    outline=(255, 200, 0),
                )
    return canvas


def save_video_grid(
    videos: Sequence[np.ndarray],
    path: str | os.PathLike,
    labels: Sequence[str] | None = None,
    scale: int = 2,
    highlight: Sequence[Sequence[int]] | None = None,
) -> Path:
    """`make_video_grid` written to a PNG file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_video_grid(videos, labels=labels, scale=scale, highlight=highlight).save(path)
    return path
