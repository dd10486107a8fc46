"""TextShapes: captioned clips of one moving shape, where only the caption says where it goes.

The exact specification is `docs/TEXTSHAPES.md`; this module follows it to the pixel:

- `render_clip` draws a clip from its parameters (shape, color, directions, start),
- `sample_clip_params` draws those parameters from a seeded `np.random.Generator`;
  `draw_clip_params` draws a whole set, optionally disjoint from another (a held-out set never
  holds a clip that occurs in training),
- `write_textshapes` (and `python -m transformers_mmvg.data.textshapes`) writes a folder of
  lossless mp4 clips with a `metadata.jsonl`; it refuses a non-empty folder unless told to
  overwrite, and never deletes anything,
- `ensure_textshapes_splits` / `write_held_out_textshapes` write a split or reuse a folder that
  already holds exactly the clips asked for; any other non-empty folder is an error,
- `caption_check` / `follows_caption` / `centroid_error` measure whether a generated clip does
  what its caption says.

Coordinates: x is the column, y the row (growing downward); a position is the top-left pixel
`[x, y]` of the object's S×S box.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from transformers_mmvg.data.writing import METADATA_FILE, claim_folder, clip_file_name, write_clips
from transformers_mmvg.video_io import write_video

__all__ = [
    "COLORS",
    "DIRECTIONS",
    "PRESETS",
    "SHAPES",
    "CaptionCheck",
    "ClipParams",
    "TextShapesClip",
    "TextShapesPreset",
    "clips_seen_in_training",
    "draw_clip_params",
    "ensure_textshapes_splits",
    "caption_check",
    "centroid_error",
    "follows_caption",
    "format_caption",
    "get_preset",
    "object_centroids",
    "parse_caption",
    "render_clip",
    "sample_clip_params",
    "shape_mask",
    "trajectory",
    "training_data_record",
    "write_held_out_textshapes",
    "write_textshapes",
]


# ----------------------------------------------------------------------------------------------
# Presets and vocabulary
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextShapesPreset:
    """One size of the data set.

    Attributes:
        name: preset name, e.g. `"textshapes-64x8"`.
        resolution: frame height and width R in pixels.
        num_frames: frames per clip N.
        object_size: side S of the object's box in pixels.
        speed: V, pixels the box moves per step.
        fps: frame rate written to the video files.
    """

    name: str
    resolution: int
    num_frames: int
    object_size: int
    speed: int
    fps: int


PRESETS: dict[str, TextShapesPreset] = {
    preset.name: preset
    for preset in (
        TextShapesPreset("textshapes-64x8", resolution=64, num_frames=8, object_size=14, speed=4, fps=8),
        TextShapesPreset("textshapes-64x16", resolution=64, num_frames=16, object_size=14, speed=2, fps=8),
        TextShapesPreset("textshapes-128x16", resolution=128, num_frames=16, object_size=28, speed=4, fps=8),
    )
}
DEFAULT_PRESET = "textshapes-64x8"

SHAPES: tuple[str, ...] = ("square", "circle", "triangle")

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
    "white": (255, 255, 255),
}
BACKGROUND: tuple[int, int, int] = (0, 0, 0)

# (dx, dy); y grows downward, so "up" is dy = -1.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}

# Caption check: an object pixel has at least one channel above this value, a frame needs at
# least S² / MIN_OBJECT_FRACTION_DENOMINATOR object pixels to hold the object, and a segment
# must cover at least this fraction of its intended length.
MIN_BRIGHT_CHANNEL = 96
MIN_OBJECT_FRACTION_DENOMINATOR = 8
MIN_DISPLACEMENT_FRACTION = 0.5

MAX_SEGMENTS = 2


def get_preset(preset: str | TextShapesPreset) -> TextShapesPreset:
    """The preset named `preset` (a `TextShapesPreset` is returned as is).

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    if isinstance(preset, TextShapesPreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown TextShapes preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[preset]


def _check_name(kind: str, name: str, valid: Sequence[str]) -> None:
    if name not in valid:
        raise ValueError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(valid)}")


def _perpendicular(first: str, second: str) -> bool:
    (dx1, dy1), (dx2, dy2) = DIRECTIONS[first], DIRECTIONS[second]
    return dx1 * dx2 + dy1 * dy2 == 0


def _check_directions(directions: Sequence[str]) -> tuple[str, ...]:
    directions = tuple(directions)
    if not 1 <= len(directions) <= MAX_SEGMENTS:
        raise ValueError(f"a clip has 1 or {MAX_SEGMENTS} directions, got {len(directions)}: {directions}")
    for direction in directions:
        _check_name("direction", direction, tuple(DIRECTIONS))
    if len(directions) == MAX_SEGMENTS and not _perpendicular(*directions):
        raise ValueError(
            f"the second direction must be perpendicular to the first, got {directions[0]!r} then {directions[1]!r}"
        )
    return directions


# ----------------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------------

_CAPTION_PATTERN = re.compile(r"the (?P<color>[a-z]+) (?P<shape>[a-z]+) moves (?P<d1>[a-z]+)(?: then (?P<d2>[a-z]+))?")


def format_caption(color: str, shape: str, directions: Sequence[str]) -> str:
    """`"the {color} {shape} moves {d1}"` or `"... moves {d1} then {d2}"` (no final period)."""
    return f"the {color} {shape} moves {' then '.join(directions)}"


def parse_caption(text: str) -> tuple[str, str, tuple[str, ...]]:
    """Invert `format_caption`: `"the cyan triangle moves up then left"` -> `("cyan", "triangle", ("up", "left"))`.

    Raises:
        ValueError: the text does not have the caption format, or names an unknown color, shape
            or direction, or two directions that are not perpendicular.
    """
    match = _CAPTION_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(
            f"malformed TextShapes caption {text!r}; expected 'the {{color}} {{shape}} moves {{d1}}' or "
            "'the {color} {shape} moves {d1} then {d2}' (lower case, no final period)"
        )
    color, shape = match["color"], match["shape"]
    _check_name("color", color, tuple(COLORS))
    _check_name("shape", shape, SHAPES)
    directions = _check_directions((match["d1"],) if match["d2"] is None else (match["d1"], match["d2"]))
    return color, shape, directions


# ----------------------------------------------------------------------------------------------
# Rendering and motion
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipParams:
    """Everything that decides a clip's pixels.

    Attributes:
        shape: one of `SHAPES`.
        color: one of `COLORS`.
        directions: one direction name, or two perpendicular ones (`d1` then `d2`).
        x0: column of the box's top-left pixel in frame 0.
        y0: row of the box's top-left pixel in frame 0.

    Raises:
        ValueError: unknown shape, color or direction, or non-perpendicular directions. Whether
            the box stays inside the frame depends on the preset and is checked by `render_clip`.
    """

    shape: str
    color: str
    directions: tuple[str, ...]
    x0: int
    y0: int

    def __post_init__(self) -> None:
        _check_name("shape", self.shape, SHAPES)
        _check_name("color", self.color, tuple(COLORS))
        object.__setattr__(self, "directions", _check_directions(self.directions))
        object.__setattr__(self, "x0", int(self.x0))
        object.__setattr__(self, "y0", int(self.y0))

    @property
    def text(self) -> str:
        """The clip's caption."""
        return format_caption(self.color, self.shape, self.directions)


@dataclass
class TextShapesClip:
    """A rendered clip.

    Attributes:
        frames: uint8 array of shape (N, R, R, 3).
        text: the caption.
        positions: N top-left positions `[x, y]` of the object's box, one per frame.
        shape, color, directions: the clip's parameters.
    """

    frames: np.ndarray
    text: str
    positions: list[list[int]]
    shape: str
    color: str
    directions: tuple[str, ...]


@lru_cache(maxsize=None)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean (S, S) mask of the painted pixels of a shape, indexed `[r, c]` (row, column).

    The spec's inequalities, multiplied by 2 so that they hold in exact integer arithmetic:
    circle (2c + 1 − S)² + (2r + 1 − S)² ≤ S², triangle |2c + 1 − S| ≤ r + 1.
    The returned array is read-only (it is cached).
    """
    _check_name("shape", shape, SHAPES)
    r = np.arange(size)[:, None]
    c = np.arange(size)[None, :]
    if shape == "square":
        mask = np.ones((size, size), dtype=bool)
    elif shape == "circle":
        mask = (2 * c + 1 - size) ** 2 + (2 * r + 1 - size) ** 2 <= size**2
    else:  # triangle, apex up, base on the bottom row
        mask = np.abs(2 * c + 1 - size) <= r + 1
    mask = np.broadcast_to(mask, (size, size)).copy()
    mask.flags.writeable = False
    return mask


def _segment_steps(num_segments: int, preset: TextShapesPreset) -> list[tuple[int, int]]:
    """Per segment, the (first, last) frame it spans: [(0, N−1)] or [(0, L), (L, 2L)]."""
    last_step = preset.num_frames - 1
    if num_segments == 1:
        return [(0, last_step)]
    leg = last_step // 2
    return [(0, leg), (leg, 2 * leg)]


def trajectory(directions: Sequence[str], preset: str | TextShapesPreset) -> np.ndarray:
    """Offsets of the box from its start, per frame.

    Between frames k−1 and k the box moves V pixels: along d1 at every step for one segment;
    for two, along d1 for k ≤ L, along d2 for L < k ≤ 2L with L = (N − 1) // 2, and no move at
    a last step k = N − 1 when N − 1 is odd.

    Returns:
        int64 array of shape (N, 2), rows `[dx, dy]`; row 0 is `[0, 0]`.
    """
    preset = get_preset(preset)
    directions = _check_directions(directions)
    steps = np.zeros((preset.num_frames, 2), dtype=np.int64)  # steps[k]: move from frame k−1 to k
    for direction, (first, last) in zip(directions, _segment_steps(len(directions), preset)):
        steps[first + 1 : last + 1] = DIRECTIONS[direction]
    return np.cumsum(steps * preset.speed, axis=0)


def _start_range(offsets: np.ndarray, preset: TextShapesPreset) -> tuple[tuple[int, int], tuple[int, int]]:
    """Inclusive ranges ((x_lo, x_hi), (y_lo, y_hi)) of starts keeping every box inside the frame."""
    highest_corner = preset.resolution - preset.object_size
    low, high = -offsets.min(axis=0), highest_corner - offsets.max(axis=0)
    return (int(low[0]), int(high[0])), (int(low[1]), int(high[1]))


def _paint(shape: str, color: str, positions: np.ndarray, preset: TextShapesPreset) -> np.ndarray:
    """Frames (N, R, R, 3) with the shape's box at `positions` (N, 2) of `[x, y]`, all inside the frame."""
    rows, cols = np.nonzero(shape_mask(shape, preset.object_size))
    frames = np.zeros((len(positions), preset.resolution, preset.resolution, 3), dtype=np.uint8)
    frame_index = np.arange(len(positions))[:, None]
    frames[frame_index, positions[:, 1, None] + rows, positions[:, 0, None] + cols] = COLORS[color]
    return frames


def render_clip(params: ClipParams, preset: str | TextShapesPreset = DEFAULT_PRESET) -> TextShapesClip:
    """Draw the clip described by `params` at the preset's size.

    Returns:
        `TextShapesClip` with frames of shape (N, R, R, 3), uint8, black background.

    Raises:
        ValueError: the box leaves the frame in some frame.
    """
    preset = get_preset(preset)
    positions = trajectory(params.directions, preset) + np.array([params.x0, params.y0])
    (x_lo, x_hi), (y_lo, y_hi) = _start_range(positions - positions[0], preset)
    if not (x_lo <= params.x0 <= x_hi and y_lo <= params.y0 <= y_hi):
        raise ValueError(
            f"the {preset.object_size}x{preset.object_size} box starting at (x0={params.x0}, y0={params.y0}) "
            f"and moving {' then '.join(params.directions)} leaves the {preset.resolution}x{preset.resolution} "
            f"frame of preset {preset.name!r}; valid starts: x0 in [{x_lo}, {x_hi}], y0 in [{y_lo}, {y_hi}]"
        )
    return TextShapesClip(
        frames=_paint(params.shape, params.color, positions, preset),
        text=params.text,
        positions=positions.tolist(),
        shape=params.shape,
        color=params.color,
        directions=params.directions,
    )


def sample_clip_params(
    rng: np.random.Generator,
    preset: str | TextShapesPreset = DEFAULT_PRESET,
    num_segments: int | None = None,
) -> ClipParams:
    """Draw a clip uniformly: shape, color, d1 (and a perpendicular d2), then a start among all
    starts that keep every frame's box inside the frame.

    Args:
        rng: the random generator (the only source of randomness).
        preset: preset name or preset.
        num_segments: 1 or 2; None draws 1 or 2 with equal probability.
    """
    preset = get_preset(preset)
    if num_segments is None:
        num_segments = int(rng.integers(1, MAX_SEGMENTS + 1))
    if num_segments not in (1, MAX_SEGMENTS):
        raise ValueError(f"num_segments must be 1, {MAX_SEGMENTS} or None, got {num_segments}")
    shape = SHAPES[rng.integers(len(SHAPES))]
    color_names = tuple(COLORS)
    color = color_names[rng.integers(len(color_names))]
    direction_names = tuple(DIRECTIONS)
    directions = [direction_names[rng.integers(len(direction_names))]]
    if num_segments == MAX_SEGMENTS:
        perpendicular = [name for name in direction_names if _perpendicular(directions[0], name)]
        directions.append(perpendicular[rng.integers(len(perpendicular))])
    # The constraints on x0 and y0 are separate intervals, so uniform over valid starts is
    # uniform in each coordinate.
    (x_lo, x_hi), (y_lo, y_hi) = _start_range(trajectory(directions, preset), preset)
    x0 = int(rng.integers(x_lo, x_hi + 1))
    y0 = int(rng.integers(y_lo, y_hi + 1))
    return ClipParams(shape=shape, color=color, directions=tuple(directions), x0=x0, y0=y0)


# ----------------------------------------------------------------------------------------------
# Checking a generated clip
# ----------------------------------------------------------------------------------------------


@dataclass
class CaptionCheck:
    """Result of `caption_check`.

    Attributes:
        follows: whether every segment moves as the caption says.
        centroids: float array (N, 2) of object centroids `[x, y]` per frame (column, row of
            pixel indices); NaN where the frame holds no object.
        displacements: float array (num_segments, 2), centroid displacement `[dx, dy]` of each
            segment from its first to its last frame (NaN if either frame holds no object).
        segment_follows: per segment, whether it passes.
    """

    follows: bool
    centroids: np.ndarray
    displacements: np.ndarray
    segment_follows: list[bool]


def _palette_array() -> np.ndarray:
    return np.array([BACKGROUND, *COLORS.values()], dtype=np.int32)  # (1 + num_colors, 3)


def object_centroids(frames: np.ndarray, color: str, preset: str | TextShapesPreset = DEFAULT_PRESET) -> np.ndarray:
    """Centroid of the pixels of `color` in each frame.

    A pixel belongs to the object when it is strictly nearer (Euclidean, RGB) to `color` than to
    black and to every other palette color, with at least one channel above 96. A frame with
    fewer than S²/8 such pixels holds no object.

    Args:
        frames: uint8 array (T, H, W, 3).
        color: the caption's color name.

    Returns:
        float64 array (T, 2) of `[x, y]` (mean column, mean row); NaN rows where there is no object.
    """
    preset = get_preset(preset)
    _check_name("color", color, tuple(COLORS))
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got {frames.shape}")
    palette = _palette_array()
    target = 1 + tuple(COLORS).index(color)  # palette row 0 is black
    # |p − q|² = |p|² − 2 p·q + |q|²; |p|² is the same for every palette entry q, so comparing
    # |q|² − 2 p·q is enough. float32 holds these integers (< 2^24) exactly.
    scores = (palette**2).sum(axis=-1) - 2 * (frames.astype(np.float32) @ palette.T.astype(np.float32))  # (T, H, W, P)
    others = np.delete(scores, target, axis=-1).min(axis=-1)
    is_object = (scores[..., target] < others) & (frames.max(axis=-1) > MIN_BRIGHT_CHANNEL)

    counts = is_object.sum(axis=(1, 2))
    rows = np.arange(frames.shape[1], dtype=np.float64)
    cols = np.arange(frames.shape[2], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (is_object.sum(axis=1) * cols).sum(axis=1) / counts
        y = (is_object.sum(axis=2) * rows).sum(axis=1) / counts
    centroids = np.stack([x, y], axis=-1)
    too_small = counts * MIN_OBJECT_FRACTION_DENOMINATOR < preset.object_size**2
    centroids[too_small] = np.nan
    return centroids


def _caption_parts(reference: str | ClipParams | TextShapesClip | Mapping) -> tuple[str, str, tuple[str, ...]]:
    """(color, shape, directions) of a caption, `ClipParams`, `TextShapesClip` or metadata row."""
    if isinstance(reference, str):
        return parse_caption(reference)
    if isinstance(reference, (ClipParams, TextShapesClip)):
        return reference.color, reference.shape, tuple(reference.directions)
    if isinstance(reference, Mapping):
        return reference["color"], reference["shape"], _check_directions(reference["directions"])
    raise TypeError(f"expected a caption, ClipParams, TextShapesClip or metadata dict, got {type(reference).__name__}")


def caption_check(
    frames: np.ndarray,
    text_or_params: str | ClipParams | TextShapesClip | Mapping,
    preset: str | TextShapesPreset = DEFAULT_PRESET,
) -> CaptionCheck:
    """Does a generated clip move as its caption says?

    Segment one spans frames 0 .. L (0 .. N−1 for one segment), segment two frames L .. 2L. A
    segment passes when its centroid displacement along the caption's direction is at least
    half of V × (its number of steps) and the sideways drift (the other axis, absolute) is no
    larger than that along-direction displacement. A missing object at either end fails it.

    Args:
        frames: uint8 array (N, R, R, 3) at the preset's size.
        text_or_params: the caption, or a `ClipParams` / `TextShapesClip` / metadata row.
    """
    preset = get_preset(preset)
    color, _, directions = _caption_parts(text_or_params)
    frames = np.asarray(frames)
    expected = (preset.num_frames, preset.resolution, preset.resolution, 3)
    if frames.shape != expected:
        raise ValueError(f"frames must have shape {expected} for preset {preset.name!r}, got {frames.shape}")
    centroids = object_centroids(frames, color, preset)

    displacements, segment_follows = [], []
    for direction, (first, last) in zip(directions, _segment_steps(len(directions), preset)):
        displacement = centroids[last] - centroids[first]
        dx, dy = DIRECTIONS[direction]
        along = displacement[0] * dx + displacement[1] * dy
        sideways = abs(displacement[0] * dy - displacement[1] * dx)
        min_length = MIN_DISPLACEMENT_FRACTION * preset.speed * (last - first)
        # NaN comparisons are False, so a missing object fails the segment.
        segment_follows.append(bool(along >= min_length and sideways <= along))
        displacements.append(displacement)
    return CaptionCheck(
        follows=all(segment_follows),
        centroids=centroids,
        displacements=np.array(displacements),
        segment_follows=segment_follows,
    )


def follows_caption(
    frames: np.ndarray,
    text_or_params: str | ClipParams | TextShapesClip | Mapping,
    preset: str | TextShapesPreset = DEFAULT_PRESET,
) -> bool:
    """`caption_check(frames, text_or_params, preset).follows`."""
    return caption_check(frames, text_or_params, preset).follows


def centroid_error(
    frames: np.ndarray,
    reference: ClipParams | TextShapesClip | Mapping,
    preset: str | TextShapesPreset = DEFAULT_PRESET,
) -> float:
    """Mean Euclidean distance in pixels between generated and true object centroids.

    The true centroids come from the true clip (rendered from the reference's shape, color and
    positions) through `object_centroids`, like the generated ones. Frames where the generated
    clip holds no object are left out of the mean; NaN if no frame holds it.

    Args:
        frames: uint8 array (N, R, R, 3), the generated clip.
        reference: `ClipParams`, `TextShapesClip`, or a metadata row with `shape`, `color` and
            `positions`.
    """
    preset = get_preset(preset)
    if isinstance(reference, ClipParams):
        true_frames, color = render_clip(reference, preset).frames, reference.color
    elif isinstance(reference, TextShapesClip):
        true_frames, color = reference.frames, reference.color
    elif isinstance(reference, Mapping):
        positions = np.asarray(reference["positions"], dtype=np.int64)
        true_frames, color = _paint(reference["shape"], reference["color"], positions, preset), reference["color"]
    else:
        raise TypeError(f"expected ClipParams, TextShapesClip or a metadata dict, got {type(reference).__name__}")
    generated = object_centroids(frames, color, preset)
    true = object_centroids(true_frames, color, preset)
    distances = np.linalg.norm(generated - true, axis=-1)
    found = ~np.isnan(distances)
    return float(distances[found].mean()) if found.any() else float("nan")


# ----------------------------------------------------------------------------------------------
# Writing a data set
# ----------------------------------------------------------------------------------------------

TRAINING_DATA_FILE = "training_data.json"  # in a model folder: the TextShapes clips it was trained on
MAX_DRAWS_PER_CLIP = 100  # a held-out draw gives up when `exclude` leaves (almost) nothing to draw


def draw_clip_params(
    num_clips: int,
    seed: int,
    preset: str | TextShapesPreset = DEFAULT_PRESET,
    num_segments: int | None = None,
    exclude: Collection[ClipParams] = frozenset(),
) -> list[ClipParams]:
    """The parameters of a data set: `num_clips` draws of `sample_clip_params` from `np.random.default_rng(seed)`,
    in order, skipping every draw that is in `exclude` (pass a training set's parameters to get a held-out set
    disjoint from it). Without `exclude` the first k clips of a set are the k clips of the smaller set.

    Raises:
        ValueError: `exclude` leaves too few clips to draw from.
    """
    preset = get_preset(preset)
    exclude = exclude if isinstance(exclude, (set, frozenset)) else frozenset(exclude)
    rng = np.random.default_rng(seed)
    params: list[ClipParams] = []
    for _ in range(MAX_DRAWS_PER_CLIP * num_clips):
        if len(params) == num_clips:
            break
        candidate = sample_clip_params(rng, preset, num_segments)
        if candidate not in exclude:
            params.append(candidate)
    if len(params) < num_clips:
        raise ValueError(f"Only {len(params)} of {num_clips} clips could be drawn outside the {len(exclude)} excluded")
    return params


def training_data_record(preset: str | TextShapesPreset, num_clips: int, seed: int) -> dict:
    """What a training script writes to `TRAINING_DATA_FILE` beside a model trained on generated TextShapes: enough to
    draw the training clips again (`clips_seen_in_training`) and keep them out of every held-out set."""
    return {"dataset": "textshapes", "preset": get_preset(preset).name, "num_clips": num_clips, "seed": seed}


def clips_seen_in_training(model_dir: str | os.PathLike) -> set[ClipParams] | None:
    """The TextShapes clips the model in `model_dir` was trained on (from its `training_data.json`), or None when the
    folder does not say (a model trained on other videos, or by other means)."""
    path = Path(model_dir) / TRAINING_DATA_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("dataset") != "textshapes":
        return None
    return set(draw_clip_params(record["num_clips"], record["seed"], record["preset"]))


def _write_clip(task: tuple[int, ClipParams, TextShapesPreset, str]) -> dict:
    """Render and encode one clip; returns its metadata row. Top-level so a Pool can pickle it."""
    index, params, preset, out_dir = task
    clip = render_clip(params, preset)
    file_name = clip_file_name(index)
    write_video(Path(out_dir) / file_name, clip.frames, fps=preset.fps)
    return {
        "file_name": file_name,
        "text": clip.text,
        "shape": clip.shape,
        "color": clip.color,
        "directions": list(clip.directions),
        "positions": clip.positions,
        "preset": preset.name,
        "x0": params.x0,
        "y0": params.y0,
    }


def write_textshapes(
    out_dir: str | os.PathLike,
    preset: str | TextShapesPreset = DEFAULT_PRESET,
    num_clips: int = 2000,
    seed: int = 0,
    num_workers: int | None = None,
    num_segments: int | None = None,
    exclude: Collection[ClipParams] = frozenset(),
    overwrite: bool = False,
) -> Path:
    """Write `num_clips` clips as `out_dir/clip_00000.mp4`, ... (lossless H.264) and `out_dir/metadata.jsonl`.

    All clip parameters are drawn first (`draw_clip_params`), so the data set depends on the
    seed (and `exclude`) only, not on `num_workers`. Each metadata line holds `file_name`,
    `text`, `shape`, `color`, `directions`, `positions` (N × `[x, y]`), `preset`, `x0`, `y0`.

    A folder that is not empty is refused unless `overwrite=True`; then the writer replaces its
    own files there (`metadata.jsonl` and `clip_00000.mp4` .. for the `num_clips` clips) and
    deletes nothing: other files, including clips of a larger earlier set, stay as they were.

    Args:
        out_dir: output folder (created if missing).
        preset: preset name or preset.
        num_clips: number of clips.
        seed: random seed.
        num_workers: encoding processes; None uses up to 2 (capped by the CPU count), 0 or 1
            encodes in this process.
        num_segments: 1 or 2 segments per clip; None draws either with equal probability.
        exclude: clip parameters never to write (a training set's, for a held-out set).
        overwrite: write into a non-empty folder, replacing the writer's own files there.

    Returns:
        the output folder.

    Raises:
        FileExistsError: `out_dir` is not empty and `overwrite` is False, or is a file, or with `overwrite`
            one of the writer's file names there is a symlink or a folder.
    """
    preset = get_preset(preset)
    if num_clips < 0:
        raise ValueError(f"num_clips must be >= 0, got {num_clips}")
    out_dir = Path(out_dir)
    claim_folder(out_dir, num_clips, overwrite, "TextShapes")
    out_dir.mkdir(parents=True, exist_ok=True)
    params = draw_clip_params(num_clips, seed, preset, num_segments, exclude)
    tasks = [(index, clip, preset, str(out_dir)) for index, clip in enumerate(params)]
    return write_clips(_write_clip, tasks, out_dir, num_workers, f"writing {preset.name}")


def _describe_clips(rows: list[dict]) -> str:
    presets = sorted({str(row.get("preset")) for row in rows})
    return f"{len(rows)} clips of {', '.join(presets)}" if rows else "no clips"


def _holds_exactly(out_dir: Path, params: list[ClipParams], preset: TextShapesPreset, asked: str) -> bool:
    """Whether `out_dir` already holds the TextShapes clips `params` of `preset`, as `write_textshapes` writes them
    (metadata rows in order, and every clip file). False when the folder is missing or empty: write it.

    Raises:
        ValueError: `out_dir` holds anything else; the message names the folder, what it holds and what was
            `asked` for. Such a folder is never reused nor overwritten.
    """
    metadata = out_dir / METADATA_FILE
    if metadata.is_file():
        try:
            rows = [json.loads(line) for line in metadata.read_text().splitlines() if line.strip()]
            existing = [
                ClipParams(row["shape"], row["color"], tuple(row["directions"]), row["x0"], row["y0"]) for row in rows
            ]
        except (KeyError, TypeError, ValueError):  # not TextShapes metadata (json's errors are ValueErrors)
            raise ValueError(
                f"{out_dir} holds a {METADATA_FILE} that is not TextShapes metadata, not the {asked}; remove it or "
                "choose another folder (it is never overwritten)."
            ) from None
        written_as = [row.get("file_name") for row in rows] == [clip_file_name(i) for i in range(len(rows))]
        if not (existing == params and written_as and all(row.get("preset") == preset.name for row in rows)):
            raise ValueError(
                f"{out_dir} holds other TextShapes clips than the {asked}: {_describe_clips(rows)}; remove it or "
                "choose another folder (it is never overwritten)."
            )
        missing = [row["file_name"] for row in rows if not (out_dir / row["file_name"]).is_file()]
        if missing:
            raise ValueError(
                f"{out_dir} holds the metadata of the {asked} but {len(missing)} of its clip files are missing "
                f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); remove the folder to write it again."
            )
        return True
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(
            f"{out_dir} is not empty and holds no TextShapes {METADATA_FILE}, not the {asked}; choose another folder."
        )
    return False


def ensure_textshapes_splits(
    data_dir: str | os.PathLike,
    preset: str | TextShapesPreset = DEFAULT_PRESET,
    num_train_clips: int = 2000,
    num_eval_clips: int = 200,
    seed: int = 0,
) -> tuple[Path, Path]:
    """`data_dir/train` (seed `seed`) and `data_dir/eval` (seed `seed + 1`, no clip of the train split), each
    written with `write_textshapes`, or reused when it already holds exactly those clips (same preset, number and
    seed: its metadata rows are the clips these draw). Returns the two folders.

    Raises:
        ValueError: a split folder holds anything else (other clips, another preset or seed or number of clips, or
            files of its own); it is never overwritten.
    """
    preset = get_preset(preset)
    data_dir = Path(data_dir)
    train_dir, eval_dir = data_dir / "train", data_dir / "eval"
    train_params = draw_clip_params(num_train_clips, seed, preset)
    eval_params = draw_clip_params(num_eval_clips, seed + 1, preset, exclude=train_params)
    asked_train = f"{num_train_clips} clips of {preset.name} drawn with seed {seed} asked for"
    if not _holds_exactly(train_dir, train_params, preset, asked_train):
        write_textshapes(train_dir, preset, num_clips=num_train_clips, seed=seed)
    asked_eval = (
        f"{num_eval_clips} clips of {preset.name} drawn with seed {seed + 1} outside the {num_train_clips} training "
        "clips asked for"
    )
    if not _holds_exactly(eval_dir, eval_params, preset, asked_eval):
        write_textshapes(eval_dir, preset, num_clips=num_eval_clips, seed=seed + 1, exclude=train_params)
    return train_dir, eval_dir


def write_held_out_textshapes(
    out_dir: str | os.PathLike,
    model_dirs: Sequence[str | os.PathLike],
    preset: str | TextShapesPreset = DEFAULT_PRESET,
    num_clips: int = 200,
    seed: int = 2,
) -> Path:
    """A held-out set for the models in `model_dirs`: `num_clips` clips drawn with `seed`, none of them a clip any of
    the models was trained on (`clips_seen_in_training`). A folder that already holds exactly these clips is reused;
    one that holds anything else is an error, never overwritten.

    Warns when a model folder does not say what it was trained on: then nothing can be left out for it."""
    preset = get_preset(preset)
    seen: set[ClipParams] = set()
    for model_dir in model_dirs:
        clips = clips_seen_in_training(model_dir)
        if clips is None:
            warnings.warn(
                f"{model_dir} has no TextShapes {TRAINING_DATA_FILE}: its training clips cannot be left out of the "
                "held-out set, so some held-out clips may have been seen in training.",
                stacklevel=2,
            )
        else:
            seen |= clips
    params = draw_clip_params(num_clips, seed, preset, exclude=seen)
    out_dir = Path(out_dir)
    asked = (
        f"held-out set asked for ({num_clips} clips of {preset.name}, seed {seed}, none of the training clips of "
        f"{', '.join(map(str, model_dirs))})"
    )
    if _holds_exactly(out_dir, params, preset, asked):
        return out_dir
    return write_textshapes(out_dir, preset, num_clips=num_clips, seed=seed, exclude=seen)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m transformers_mmvg.data.textshapes --preset textshapes-64x8 --num-clips 2000 --out DIR`."""
    parser = argparse.ArgumentParser(
        prog="python -m transformers_mmvg.data.textshapes",
        description=(
            "Write a TextShapes data set: lossless mp4 clips and metadata.jsonl. The output folder must be new or "
            "empty unless --overwrite is given; nothing is ever deleted."
        ),
    )
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="data set size")
    parser.add_argument("--num-clips", type=int, default=2000, help="number of clips")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--num-workers", type=int, default=None, help="encoding processes (default: up to 2)")
    parser.add_argument(
        "--num-segments", type=int, default=None, choices=[1, 2], help="segments per clip (default: 1 or 2 at random)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=(
            "write into a non-empty --out folder, replacing its metadata.jsonl and clip_NNNNN.mp4 files for the clips "
            "written; other files (and clips beyond --num-clips) are left as they are"
        ),
    )
    args = parser.parse_args(argv)
    # Call through the package module (not __main__) so Pool workers find `_write_clip` by name.
    from transformers_mmvg.data import textshapes

    try:
        out_dir = textshapes.write_textshapes(
            args.out,
            preset=args.preset,
            num_clips=args.num_clips,
            seed=args.seed,
            num_workers=args.num_workers,
            num_segments=args.num_segments,
            overwrite=args.overwrite,
        )
    except FileExistsError as error:
        parser.error(str(error))
    print(f"wrote {args.num_clips} clips of {args.preset} to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
