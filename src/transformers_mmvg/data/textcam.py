"""TextCam: captioned camera moves over real photographs, where only the caption says where the camera goes.

The exact specification is `docs/TEXTCAM.md` (in the shared docs); this module follows it to the pixel:

- `normalize_photo` / `load_photo` / `load_photos` read photographs and bring their short side to P,
- `window_schedule` gives the camera's window `[cx, cy, w]` per frame, `render_clip` draws a clip from its
  parameters (photo, motions, start centre),
- `sample_clip_params` draws those parameters from a seeded `np.random.Generator`; `draw_clip_params` draws a set,
- `write_textcam` (and `python -m transformers_mmvg.data.textcam`) writes a folder of lossless mp4 clips with a
  `metadata.jsonl`; it refuses a non-empty folder unless told to overwrite, and never deletes anything,
- `caption_check` / `follows_caption` read only the pixels of a clip and say whether the camera moved as the
  caption says.

Coordinates: x is the column, y the row (growing downward), both in photo pixels; a window is its centre
`(cx, cy)` and side `w`. The default photos are the scikit-image samples listed in the spec, read from the
installed package's `skimage/data/` folder; `chelsea.png` and `rocket.jpg` are held out for evaluation.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from transformers_mmvg.data.writing import claim_folder, clip_file_name, write_clips
from transformers_mmvg.video_io import write_video

__all__ = [
    "DEFAULT_HELD_OUT_PHOTOS",
    "DEFAULT_PHOTOS",
    "DEFAULT_TRAIN_PHOTOS",
    "MOTIONS",
    "PRESETS",
    "PROGRAMS",
    "CaptionCheck",
    "ClipParams",
    "PhotoReadError",
    "TextCamClip",
    "TextCamPreset",
    "caption_check",
    "default_photo_paths",
    "draw_clip_params",
    "estimate_step",
    "follows_caption",
    "format_caption",
    "get_preset",
    "load_photo",
    "load_photos",
    "normalize_photo",
    "parse_caption",
    "photo_paths",
    "render_clip",
    "render_frames",
    "sample_clip_params",
    "segment_follows",
    "start_centre_range",
    "step_motions",
    "window_schedule",
    "write_textcam",
]


# ----------------------------------------------------------------------------------------------
# Presets and vocabulary
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextCamPreset:
    """One size of the data set.

    Attributes:
        name: preset name, e.g. `"textcam-64x8"`.
        resolution: frame height and width R in pixels.
        num_frames: frames per clip N.
        photo_size: P, the photo's shorter side after normalisation, in pixels.
        window: W, the side of frame 0's window, in photo pixels.
        pan_speed: V, photo pixels the window's centre moves per pan step.
        zoom: Z, the factor the window's side shrinks (`in`) or grows (`out`) by per zoom step.
        fps: frame rate written to the video files.
    """

    name: str
    resolution: int
    num_frames: int
    photo_size: int
    window: int
    pan_speed: int
    zoom: float
    fps: int


PRESETS: dict[str, TextCamPreset] = {
    preset.name: preset
    for preset in (
        TextCamPreset("textcam-64x8", resolution=64, num_frames=8, photo_size=256, window=128, pan_speed=16,
                      zoom=1.08, fps=8),
        TextCamPreset("textcam-64x16", resolution=64, num_frames=16, photo_size=256, window=128, pan_speed=3,
                      zoom=1.04, fps=8),
        TextCamPreset("textcam-128x16", resolution=128, num_frames=16, photo_size=256, window=128, pan_speed=3,
                      zoom=1.04, fps=8),
    )
}  # fmt: skip
DEFAULT_PRESET = "textcam-64x8"

# The caption's phrase for each motion.
MOTIONS: dict[str, str] = {
    "left": "pans left",
    "right": "pans right",
    "up": "pans up",
    "down": "pans down",
    "in": "zooms in",
    "out": "zooms out",
}
# (dcx, dcy) per pan step in units of V; y grows downward, so "up" is dcy = −1.
PANS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
OPPOSITES: dict[str, str] = {"left": "right", "right": "left", "up": "down", "down": "up", "in": "out", "out": "in"}
MAX_MOTIONS = 2

# Every program: the 6 single motions, then the 24 ordered pairs of different, non-opposite motions.
PROGRAMS: tuple[tuple[str, ...], ...] = tuple((motion,) for motion in MOTIONS) + tuple(
    (first, second) for first in MOTIONS for second in MOTIONS if second not in (first, OPPOSITES[first])
)


def get_preset(preset: str | TextCamPreset) -> TextCamPreset:
    """The preset named `preset` (a `TextCamPreset` is returned as is).

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    if isinstance(preset, TextCamPreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown TextCam preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[preset]


def _check_motions(motions: Sequence[str]) -> tuple[str, ...]:
    motions = tuple(motions)
    if not 1 <= len(motions) <= MAX_MOTIONS:
        raise ValueError(f"a clip has 1 or {MAX_MOTIONS} motions, got {len(motions)}: {motions}")
    for motion in motions:
        if motion not in MOTIONS:
            raise ValueError(f"unknown motion {motion!r}; valid motions: {', '.join(MOTIONS)}")
    if len(motions) == MAX_MOTIONS and motions[1] in (motions[0], OPPOSITES[motions[0]]):
        raise ValueError(
            f"the second motion must differ from the first and not be its opposite, got {motions[0]!r} then "
            f"{motions[1]!r}"
        )
    return motions


# ----------------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------------

_PHRASE_TO_MOTION = {phrase: motion for motion, phrase in MOTIONS.items()}
_PHRASE = "|".join(re.escape(phrase) for phrase in MOTIONS.values())
_CAPTION_PATTERN = re.compile(rf"the camera (?P<m1>{_PHRASE})(?: then (?P<m2>{_PHRASE}))?")


def format_caption(motions: Sequence[str]) -> str:
    """`"the camera {phrase(m1)}"` or `"the camera {phrase(m1)} then {phrase(m2)}"` (no final period)."""
    return "the camera " + " then ".join(MOTIONS[motion] for motion in _check_motions(motions))


def parse_caption(text: str) -> tuple[str, ...]:
    """Invert `format_caption`: `"the camera zooms in then pans left"` -> `("in", "left")`.

    Raises:
        ValueError: the text does not have the caption format, or names two motions no program has.
    """
    match = _CAPTION_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(
            f"malformed TextCam caption {text!r}; expected 'the camera {{phrase}}' or 'the camera {{phrase}} then "
            f"{{phrase}}' with phrases {', '.join(map(repr, MOTIONS.values()))} (lower case, no final period)"
        )
    phrases = [match["m1"]] if match["m2"] is None else [match["m1"], match["m2"]]
    return _check_motions([_PHRASE_TO_MOTION[phrase] for phrase in phrases])


# ----------------------------------------------------------------------------------------------
# Photographs
# ----------------------------------------------------------------------------------------------

DEFAULT_PHOTOS: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
DEFAULT_HELD_OUT_PHOTOS: tuple[str, ...] = ("chelsea.png", "rocket.jpg")
DEFAULT_TRAIN_PHOTOS: tuple[str, ...] = tuple(name for name in DEFAULT_PHOTOS if name not in DEFAULT_HELD_OUT_PHOTOS)
SPLITS: dict[str, tuple[str, ...]] = {
    "train": DEFAULT_TRAIN_PHOTOS,
    "held_out": DEFAULT_HELD_OUT_PHOTOS,
    "all": DEFAULT_PHOTOS,
}


class PhotoReadError(OSError):
    """A photo file that is missing or that Pillow cannot read."""


def normalize_photo(image: Image.Image, photo_size: int) -> Image.Image:
    """`image` in RGB, resized (bicubic) so that its shorter side is `photo_size` pixels.

    The new size is `(max(P, round(w * s)), max(P, round(h * s)))` with `s = P / min(w, h)`.
    """
    image = image.convert("RGB")
    width, height = image.size
    scale = photo_size / min(width, height)
    size = (max(photo_size, round(width * scale)), max(photo_size, round(height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def load_photo(path: str | os.PathLike, preset: str | TextCamPreset = DEFAULT_PRESET) -> Image.Image:
    """Read the photo at `path` and normalise it for `preset` (`normalize_photo`).

    Raises:
        PhotoReadError: the file is missing, empty, not an image Pillow reads, or truncated (the message names it).
    """
    preset = get_preset(preset)
    return _load_normalised(str(path), preset.photo_size).copy()  # a copy: the cached image stays as read


@lru_cache(maxsize=64)
def _load_normalised(path: str, photo_size: int) -> Image.Image:
    # Cached per process: the writer's workers read each photo once, not once per clip.
    if not Path(path).is_file():
        raise PhotoReadError(f"photo file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so that a truncated file fails here and names itself
            return normalize_photo(image, photo_size)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise PhotoReadError(f"cannot read photo {path}: {str(error).splitlines()[0][:200]}") from error


def default_photo_paths(split: str = "train") -> list[Path]:
    """Paths of the default photos of `split` (`"train"`, `"held_out"` or `"all"`), in the installed
    scikit-image's `skimage/data/` folder (found from the package's file list: skimage is not imported).

    Raises:
        ValueError: unknown split.
        FileNotFoundError: scikit-image is not installed, or lacks one of the photos.
    """
    import importlib.metadata

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    try:
        files = importlib.metadata.files("scikit-image") or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            "the default TextCam photos are scikit-image's sample images, and scikit-image is not installed "
            "(pip install scikit-image), or pass a folder of photos (--photos DIR)"
        ) from None
    found = {file.name: Path(file.locate()) for file in files if file.parent.as_posix().endswith("skimage/data")}
    missing = [name for name in SPLITS[split] if not found.get(name, Path()).is_file()]
    if missing:
        raise FileNotFoundError(f"scikit-image's data folder lacks the default photos {', '.join(missing)}")
    return [found[name] for name in SPLITS[split]]


def photo_paths(photos_dir: str | os.PathLike | None = None, split: str | None = None) -> list[Path]:
    """The photos to draw from: every image file directly in `photos_dir` (by the file extensions of the formats
    Pillow opens, sorted by name; other files and hidden files are left out), or with `photos_dir=None` the default
    photos of `split` (None: `"train"`).

    Raises:
        FileNotFoundError: `photos_dir` is not a folder.
        ValueError: `photos_dir` holds no image file, or a split is given with `photos_dir` (a split names
            default photos only).
    """
    if photos_dir is None:
        return default_photo_paths("train" if split is None else split)
    if split is not None:
        raise ValueError(f"a split ({split!r}) selects default photos; with a photos folder every photo in it is used")
    photos_dir = Path(photos_dir)
    if not photos_dir.is_dir():
        raise FileNotFoundError(f"photos folder not found: {photos_dir}")
    # the extensions of the formats Pillow can open (some it registers, such as .pdf, it can only write)
    extensions = {extension.lower() for extension, kind in Image.registered_extensions().items() if kind in Image.OPEN}
    paths = sorted(
        path
        for path in photos_dir.iterdir()
        if path.suffix.lower() in extensions and not path.name.startswith(".") and path.is_file()
    )
    if not paths:
        raise ValueError(f"photos folder {photos_dir} holds no image files (extensions such as .png, .jpg)")
    return paths


def load_photos(
    photos_dir: str | os.PathLike | None = None,
    split: str | None = None,
    preset: str | TextCamPreset = DEFAULT_PRESET,
) -> dict[str, Image.Image]:
    """The normalised photos of `photo_paths(photos_dir, split)`, by file name (the name metadata rows carry).

    Raises:
        PhotoReadError: a photo cannot be read; besides those of `photo_paths`.
    """
    return {path.name: load_photo(path, preset) for path in photo_paths(photos_dir, split)}


# ----------------------------------------------------------------------------------------------
# The camera and rendering
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipParams:
    """Everything that decides a clip's pixels, together with the photo itself.

    Attributes:
        photo: the photo's file name.
        motions: one motion, or two (m1 then m2) that differ and are not opposite.
        cx0: column of frame 0's window centre, in photo pixels.
        cy0: row of frame 0's window centre, in photo pixels.

    Raises:
        ValueError: unknown or disallowed motions, or a start centre that is not finite. Whether every window lies
            inside the photo depends on the photo and the preset and is checked by `render_clip`.
    """

    photo: str
    motions: tuple[str, ...]
    cx0: float
    cy0: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "motions", _check_motions(self.motions))
        object.__setattr__(self, "cx0", float(self.cx0))
        object.__setattr__(self, "cy0", float(self.cy0))
        if not (math.isfinite(self.cx0) and math.isfinite(self.cy0)):
            raise ValueError(f"the start centre must be finite, got ({self.cx0}, {self.cy0})")

    @property
    def text(self) -> str:
        """The clip's caption."""
        return format_caption(self.motions)


@dataclass
class TextCamClip:
    """A rendered clip.

    Attributes:
        frames: uint8 array of shape (N, R, R, 3).
        text: the caption.
        photo: the photo's file name.
        motions: the clip's motions.
        windows: N windows `[cx, cy, w]`, one per frame, in photo pixels.
    """

    frames: np.ndarray
    text: str
    photo: str
    motions: tuple[str, ...]
    windows: list[list[float]]


def step_motions(motions: Sequence[str], preset: str | TextCamPreset = DEFAULT_PRESET) -> list[str | None]:
    """The motion of each step k = 1 .. N − 1 (list index k − 1); None where the camera rests.

    One motion: m1 at every step. Two, with L = (N − 1) // 2: m1 for k ≤ L, m2 for L < k ≤ 2L, and a rest at a
    last step k = N − 1 when N − 1 is odd.
    """
    preset = get_preset(preset)
    motions = _check_motions(motions)
    num_steps = preset.num_frames - 1
    if len(motions) == 1:
        return [motions[0]] * num_steps
    leg = num_steps // 2
    return [motions[0]] * leg + [motions[1]] * leg + [None] * (num_steps - 2 * leg)


def _segments(num_motions: int, preset: TextCamPreset) -> list[range]:
    """Per segment, its steps as indices into the N − 1 steps (step k at index k − 1)."""
    num_steps = preset.num_frames - 1
    if num_motions == 1:
        return [range(num_steps)]
    leg = num_steps // 2
    return [range(leg), range(leg, 2 * leg)]


def window_schedule(
    motions: Sequence[str],
    preset: str | TextCamPreset = DEFAULT_PRESET,
    start: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """The camera's window in each frame, starting at centre `start` with side W.

    Each step applies its motion to the previous window: `left` cx −= V, `right` cx += V, `up` cy −= V,
    `down` cy += V, `in` w /= Z, `out` w *= Z. Each coordinate is updated on its own, step after step, so
    `m1 then m2` and `m2 then m1` end on the very same floats.

    Returns:
        float64 array of shape (N, 3), rows `[cx, cy, w]` in photo pixels.
    """
    preset = get_preset(preset)
    cx, cy = float(start[0]), float(start[1])
    w = float(preset.window)
    windows = [(cx, cy, w)]
    for motion in step_motions(motions, preset):
        if motion in PANS:
            dcx, dcy = PANS[motion]
            cx, cy = cx + dcx * preset.pan_speed, cy + dcy * preset.pan_speed
        elif motion == "in":
            w = w / preset.zoom
        elif motion == "out":
            w = w * preset.zoom
        windows.append((cx, cy, w))
    return np.array(windows, dtype=np.float64)


def start_centre_range(
    motions: Sequence[str],
    photo_size: tuple[int, int],
    preset: str | TextCamPreset = DEFAULT_PRESET,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Inclusive ranges ((cx0_lo, cx0_hi), (cy0_lo, cy0_hi)) of start centres keeping every frame's window inside a
    photo of `photo_size` (width, height): `w_k / 2 <= cx_k <= width − w_k / 2`, likewise for y, for every k.
    A range with lo > hi is empty: the program does not fit in that photo.
    """
    preset = get_preset(preset)
    offsets = window_schedule(motions, preset)  # start (0, 0): cx_k = cx0 + offsets[k, 0]
    half = offsets[:, 2] / 2
    ranges = []
    for axis, extent in enumerate(photo_size):
        ranges.append((float((half - offsets[:, axis]).max()), float((extent - half - offsets[:, axis]).min())))
    return ranges[0], ranges[1]


def _check_normalised(photo: Image.Image, preset: TextCamPreset) -> None:
    if photo.mode != "RGB" or min(photo.size) != preset.photo_size:
        raise ValueError(
            f"the photo must be normalised for preset {preset.name!r} (RGB, shorter side {preset.photo_size}; "
            f"normalize_photo or load_photo), got mode {photo.mode} and size {photo.size}"
        )


def render_frames(photo: Image.Image, windows: np.ndarray, resolution: int) -> np.ndarray:
    """Frame k is `photo.resize((R, R), BICUBIC, box=(cx − w/2, cy − w/2, cx + w/2, cy + w/2))` of window k.

    Args:
        photo: the normalised photo.
        windows: float array (N, 3) of `[cx, cy, w]`.
        resolution: R.

    Returns:
        uint8 array of shape (N, R, R, 3).
    """
    frames = [
        np.asarray(
            photo.resize(
                (resolution, resolution),
                Image.Resampling.BICUBIC,
                box=(cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2),
            )
        )
        for cx, cy, w in windows.tolist()
    ]
    return np.stack(frames).astype(np.uint8, copy=False)


def render_clip(
    params: ClipParams,
    photo: Image.Image | str | os.PathLike,
    preset: str | TextCamPreset = DEFAULT_PRESET,
) -> TextCamClip:
    """Draw the clip described by `params` at the preset's size.

    Args:
        params: the clip's parameters.
        photo: the normalised photo (`load_photo`, `normalize_photo`), or the path of the photo file, which is then
            read and normalised (its file name must be `params.photo`).
        preset: preset name or preset.

    Returns:
        `TextCamClip` with frames of shape (N, R, R, 3), uint8.

    Raises:
        ValueError: the photo is not normalised for the preset, is not the file `params.photo` names, or some
            frame's window leaves it.
    """
    preset = get_preset(preset)
    if not isinstance(photo, Image.Image):
        if Path(photo).name != params.photo:
            raise ValueError(f"the clip is drawn on {params.photo!r}, not on {Path(photo).name!r}")
        photo = load_photo(photo, preset)
    _check_normalised(photo, preset)
    (x_lo, x_hi), (y_lo, y_hi) = start_centre_range(params.motions, photo.size, preset)
    if not (x_lo <= params.cx0 <= x_hi and y_lo <= params.cy0 <= y_hi):
        raise ValueError(
            f"the camera starting at (cx0={params.cx0}, cy0={params.cy0}) and moving {' then '.join(params.motions)} "
            f"leaves the {photo.size[0]}x{photo.size[1]} photo {params.photo!r} with preset {preset.name!r}; "
            f"valid starts: cx0 in [{x_lo:g}, {x_hi:g}], cy0 in [{y_lo:g}, {y_hi:g}]"
        )
    windows = window_schedule(params.motions, preset, (params.cx0, params.cy0))
    return TextCamClip(
        frames=render_frames(photo, windows, preset.resolution),
        text=params.text,
        photo=params.photo,
        motions=params.motions,
        windows=windows.tolist(),
    )


def sample_clip_params(
    rng: np.random.Generator,
    photo_sizes: Mapping[str, tuple[int, int]],
    preset: str | TextCamPreset = DEFAULT_PRESET,
    num_motions: int | None = None,
) -> ClipParams:
    """Draw a clip uniformly: a photo, one of the programs (`PROGRAMS`, all 30 or those with `num_motions`
    motions), then an integer start centre among all those that keep every frame's window inside the photo.

    Args:
        rng: the random generator (the only source of randomness).
        photo_sizes: (width, height) of each normalised photo, by name; drawn in sorted name order.
        preset: preset name or preset.
        num_motions: 1 or 2; None draws among all 30 programs (6 have one motion, 24 two).

    Raises:
        ValueError: no photos, or the drawn program does not fit in the drawn photo. A normalised photo's
            shorter side is P, and with every preset every program fits in a P×P photo, so this happens only with
            a custom preset; it is an error rather than a redraw so that a preset never silently drops programs.
    """
    preset = get_preset(preset)
    if not photo_sizes:
        raise ValueError("no photos to draw from")
    if num_motions not in (None, 1, MAX_MOTIONS):
        raise ValueError(f"num_motions must be 1, {MAX_MOTIONS} or None, got {num_motions}")
    names = sorted(photo_sizes)
    photo = names[rng.integers(len(names))]
    programs = [program for program in PROGRAMS if num_motions is None or len(program) == num_motions]
    motions = programs[rng.integers(len(programs))]
    # The constraints on cx0 and cy0 are separate intervals, so uniform over valid starts is uniform in each one.
    (x_lo, x_hi), (y_lo, y_hi) = start_centre_range(motions, photo_sizes[photo], preset)
    x_lo, x_hi, y_lo, y_hi = math.ceil(x_lo), math.floor(x_hi), math.ceil(y_lo), math.floor(y_hi)
    if x_lo > x_hi or y_lo > y_hi:
        width, height = photo_sizes[photo]
        raise ValueError(
            f"the program {' then '.join(motions)} of preset {preset.name!r} does not fit in the {width}x{height} "
            f"photo {photo!r}: no start centre keeps every window inside it"
        )
    cx0 = int(rng.integers(x_lo, x_hi + 1))
    cy0 = int(rng.integers(y_lo, y_hi + 1))
    return ClipParams(photo=photo, motions=motions, cx0=cx0, cy0=cy0)


def draw_clip_params(
    num_clips: int,
    seed: int,
    photo_sizes: Mapping[str, tuple[int, int]],
    preset: str | TextCamPreset = DEFAULT_PRESET,
    num_motions: int | None = None,
) -> list[ClipParams]:
    """The parameters of a data set: `num_clips` draws of `sample_clip_params` from `np.random.default_rng(seed)`,
    in order, so the first k clips of a set are the k clips of the smaller set."""
    preset = get_preset(preset)
    rng = np.random.default_rng(seed)
    return [sample_clip_params(rng, photo_sizes, preset, num_motions) for _ in range(num_clips)]


# ----------------------------------------------------------------------------------------------
# Checking a clip's camera motion from its pixels
# ----------------------------------------------------------------------------------------------

# A zoom explains a step "clearly better" than a shift when its alignment error is below this fraction of the best
# shift's; a shift under STILL_SHIFT frame pixels is no motion. Phase correlation resolves shifts to 1/UPSAMPLE px;
# the alignment errors are measured on frames blurred by a Gaussian of this sigma (frame pixels).
ZOOM_ERROR_RATIO = 0.5
STILL_SHIFT = 1.0
PHASE_CORRELATION_UPSAMPLE = 20
ERROR_BLUR_SIGMA = 1.0


@dataclass
class CaptionCheck:
    """Result of `caption_check`.

    Attributes:
        follows: whether every segment moves as the caption says.
        step_motions: per step k = 1 .. N − 1 (index k − 1), the motion read from frames k − 1 and k: a motion
            name, or `"still"`.
        shifts: float array (N − 1, 2), the content's shift `[dx, dy]` in frame pixels from frame k − 1 to k
            (positive dx: content slides right, so the camera pans left).
        errors: float array (N − 1, 3), mean squared alignment error (intensities in [0, 1]) of frame k predicted
            from frame k − 1 by the best shift, by a zoom in by Z, and by a zoom out by Z.
        segment_follows: per segment, whether more than half of its steps carry its motion.
    """

    follows: bool
    step_motions: list[str]
    shifts: np.ndarray
    errors: np.ndarray
    segment_follows: list[bool]


def _gray(frame: np.ndarray) -> np.ndarray:
    return np.asarray(frame, dtype=np.float64).mean(axis=-1) / 255.0


def estimate_step(
    previous: np.ndarray, current: np.ndarray, zoom: float
) -> tuple[str, tuple[float, float], tuple[float, float, float]]:
    """The camera motion between two frames, read from their pixels.

    The content's shift is found by phase correlation; the step is a zoom (`in` or `out`, about the frame's centre
    by `zoom`) when predicting `current` from `previous` by that zoom leaves less than `ZOOM_ERROR_RATIO` times the
    error the shift leaves. Otherwise the step is still when the shift is under `STILL_SHIFT` pixels, else a pan
    along the shift's dominant axis, opposite to the content's motion (content sliding right: the camera pans left).
    The errors are mean squared differences of the gray frames, blurred by `ERROR_BLUR_SIGMA`, on the frames' centre
    past the border that the motion brings in from outside. A pair with a flat frame shows no shift.

    Args:
        previous, current: frames (H, W, 3) of equal size, any real dtype with values in [0, 255].
        zoom: Z, the zoom factor per step.

    Returns:
        (label, (dx, dy), (shift error, zoom-in error, zoom-out error)).
    """
    try:
        from skimage.filters import gaussian, window
        from skimage.registration import phase_cross_correlation
        from skimage.transform import warp
    except ImportError as error:
        raise ImportError(
            "the TextCam caption check uses scikit-image (phase correlation, warps): pip install scikit-image"
        ) from error

    a, b = _gray(previous), _gray(current)
    if a.shape != b.shape:
        raise ValueError(f"frames of different sizes: {a.shape} and {b.shape}")
    height, width = a.shape
    # A Hann window keeps the frame's edges (not periodic) from pulling the estimate towards no shift. skimage's
    # shift registers `b` onto `a`, so it is minus the content's motion, in (row, column) order.
    # A flat frame has no content to follow: no shift is seen (and phase correlation would divide by zero).
    dx = dy = 0.0
    if np.ptp(a) > 0 and np.ptp(b) > 0:
        hann = window("hann", a.shape)
        registration, _, _ = phase_cross_correlation(a * hann, b * hann, upsample_factor=PHASE_CORRELATION_UPSAMPLE)
        dy, dx = -float(registration[0]), -float(registration[1])

    # Interpolating a zoom averages neighbouring pixels and so removes some of a's noise, which an integer shift
    # does not: blurring both frames first keeps noisy (generated) frames from looking like zooms.
    a, b = gaussian(a, ERROR_BLUR_SIGMA, mode="nearest"), gaussian(b, ERROR_BLUR_SIGMA, mode="nearest")
    # Each prediction of b from a as the 3×3 matrix taking b's pixel (x, y, 1) to where it was in a.
    cx, cy = (width - 1) / 2, (height - 1) / 2  # the window's centre in pixel indices
    predictions = [
        warp(a, np.array(inverse_map), order=3, mode="edge")
        for inverse_map in (
            [[1, 0, -dx], [0, 1, -dy], [0, 0, 1]],  # b(x) = a(x − d)
            [[1 / zoom, 0, cx * (1 - 1 / zoom)], [0, 1 / zoom, cy * (1 - 1 / zoom)], [0, 0, 1]],  # in: a magnified
            [[zoom, 0, cx * (1 - zoom)], [0, zoom, cy * (1 - zoom)], [0, 0, 1]],  # out: a shrunk
        )
    ]
    # Leave out the border that any of the three predictions fills from outside the previous frame.
    border = max(abs(dx), abs(dy), (zoom - 1) * max(height, width) / 2)
    margin = min(math.ceil(border) + 1, min(height, width) // 4)
    inside = (slice(margin, height - margin), slice(margin, width - margin))
    shift_error, in_error, out_error = (float(np.mean((p[inside] - b[inside]) ** 2)) for p in predictions)

    if min(in_error, out_error) < ZOOM_ERROR_RATIO * shift_error:
        label = "in" if in_error <= out_error else "out"
    elif math.hypot(dx, dy) < STILL_SHIFT:
        label = "still"
    elif abs(dx) >= abs(dy):
        label = "left" if dx > 0 else "right"
    else:
        label = "up" if dy > 0 else "down"
    return label, (dx, dy), (shift_error, in_error, out_error)


def _caption_motions(reference: str | Sequence[str] | ClipParams | TextCamClip | Mapping) -> tuple[str, ...]:
    """The motions of a caption, a motion list, `ClipParams`, `TextCamClip` or metadata row."""
    if isinstance(reference, str):
        return parse_caption(reference)
    if isinstance(reference, (ClipParams, TextCamClip)):
        return tuple(reference.motions)
    if isinstance(reference, Mapping):
        return _check_motions(reference["motions"])
    if isinstance(reference, Sequence):
        return _check_motions(reference)
    raise TypeError(
        "expected a caption, a list of motions, ClipParams, TextCamClip or metadata dict, "
        f"got {type(reference).__name__}"
    )


def segment_follows(
    step_labels: Sequence[str], motions: Sequence[str], preset: str | TextCamPreset = DEFAULT_PRESET
) -> list[bool]:
    """Per segment of `motions`, whether more than half of its steps carry its motion.

    Args:
        step_labels: the N − 1 labels read from a clip (`CaptionCheck.step_motions`); reading them once and asking
            this for several captions saves reading the pixels again.
        motions: the caption's motions.
    """
    preset = get_preset(preset)
    motions = _check_motions(motions)
    if len(step_labels) != preset.num_frames - 1:
        raise ValueError(
            f"expected {preset.num_frames - 1} step labels for preset {preset.name!r}, got {len(step_labels)}"
        )
    return [
        2 * sum(step_labels[step] == motion for step in steps) > len(steps)
        for motion, steps in zip(motions, _segments(len(motions), preset))
    ]


def caption_check(
    frames: np.ndarray,
    reference: str | Sequence[str] | ClipParams | TextCamClip | Mapping,
    preset: str | TextCamPreset = DEFAULT_PRESET,
) -> CaptionCheck:
    """Does a clip's camera move as its caption says? Reads only the pixels (`estimate_step` on every pair of
    consecutive frames).

    A segment passes when more than half of its steps carry its motion: segment one is steps 1 .. L (all N − 1
    steps for one motion), segment two steps L + 1 .. 2L, with L = (N − 1) // 2; a resting last step is not
    checked.

    Args:
        frames: uint8 array (N, R, R, 3) at the preset's size.
        reference: the caption, the motions, or a `ClipParams` / `TextCamClip` / metadata row.
        preset: preset name or preset (its N, R and Z).
    """
    preset = get_preset(preset)
    motions = _caption_motions(reference)
    frames = np.asarray(frames)
    expected = (preset.num_frames, preset.resolution, preset.resolution, 3)
    if frames.shape != expected:
        raise ValueError(f"frames must have shape {expected} for preset {preset.name!r}, got {frames.shape}")
    estimates = [estimate_step(frames[k - 1], frames[k], preset.zoom) for k in range(1, preset.num_frames)]
    labels = [label for label, _, _ in estimates]
    passed = segment_follows(labels, motions, preset)
    return CaptionCheck(
        follows=all(passed),
        step_motions=labels,
        shifts=np.array([shift for _, shift, _ in estimates]),
        errors=np.array([errors for _, _, errors in estimates]),
        segment_follows=passed,
    )


def follows_caption(
    frames: np.ndarray,
    reference: str | Sequence[str] | ClipParams | TextCamClip | Mapping,
    preset: str | TextCamPreset = DEFAULT_PRESET,
) -> bool:
    """`caption_check(frames, reference, preset).follows`."""
    return caption_check(frames, reference, preset).follows


# ----------------------------------------------------------------------------------------------
# Writing a data set
# ----------------------------------------------------------------------------------------------


def _write_clip(task: tuple[int, ClipParams, TextCamPreset, str, str]) -> dict:
    """Render and encode one clip; returns its metadata row. Top-level so a Pool can pickle it."""
    index, params, preset, photo_path, out_dir = task
    clip = render_clip(params, load_photo(photo_path, preset), preset)
    file_name = clip_file_name(index)
    write_video(Path(out_dir) / file_name, clip.frames, fps=preset.fps, lossless=True)
    return {
        "file_name": file_name,
        "text": clip.text,
        "photo": clip.photo,
        "motions": list(clip.motions),
        "windows": clip.windows,
        "preset": preset.name,
        "cx0": params.cx0,
        "cy0": params.cy0,
    }


def write_textcam(
    out_dir: str | os.PathLike,
    preset: str | TextCamPreset = DEFAULT_PRESET,
    num_clips: int = 2000,
    seed: int = 0,
    photos_dir: str | os.PathLike | None = None,
    split: str | None = None,
    num_workers: int | None = None,
    num_motions: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `num_clips` clips as `out_dir/clip_00000.mp4`, ... (lossless H.264, libx264rgb qp 0) and
    `out_dir/metadata.jsonl`.

    All clip parameters are drawn first (`draw_clip_params` over the photos' normalised sizes), so the data set
    depends on the seed and the photos only, not on `num_workers`. Each metadata line holds `file_name`, `text`,
    `photo` (file name), `motions`, `windows` (N × `[cx, cy, w]`), `preset`, `cx0`, `cy0`.

    A folder that is not empty is refused unless `overwrite=True`; then the writer replaces its own files there
    (`metadata.jsonl` and `clip_00000.mp4` .. for the `num_clips` clips) and deletes nothing.

    Args:
        out_dir: output folder (created if missing).
        preset: preset name or preset.
        num_clips: number of clips.
        seed: random seed.
        photos_dir: folder of photos (every image file in it); None uses the default photos of `split`.
        split: with the default photos, `"train"` (None), `"held_out"` (`DEFAULT_HELD_OUT_PHOTOS`) or `"all"`.
        num_workers: encoding processes; None uses up to 2 (capped by the CPU count), 0 or 1 encodes in this
            process.
        num_motions: 1 or 2 motions per clip; None draws among all 30 programs.
        overwrite: write into a non-empty folder, replacing the writer's own files there.

    Returns:
        the output folder.

    Raises:
        ValueError: `num_clips` < 0, unknown preset or split, a photos folder with no images.
        FileNotFoundError: a missing photos folder, or no scikit-image for the default photos.
        PhotoReadError: a photo that cannot be read.
        FileExistsError: `out_dir` is not empty and `overwrite` is False, or is a file, or with `overwrite` one of
            the writer's file names there is a symlink or a folder.
    """
    preset = get_preset(preset)
    if num_clips < 0:
        raise ValueError(f"num_clips must be >= 0, got {num_clips}")
    paths = {path.name: path for path in photo_paths(photos_dir, split)}
    photo_sizes = {name: load_photo(path, preset).size for name, path in paths.items()}  # reads every photo now
    out_dir = Path(out_dir)
    claim_folder(out_dir, num_clips, overwrite, "TextCam")
    params = draw_clip_params(num_clips, seed, photo_sizes, preset, num_motions)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(index, clip, preset, str(paths[clip.photo]), str(out_dir)) for index, clip in enumerate(params)]
    return write_clips(_write_clip, tasks, out_dir, num_workers, f"writing {preset.name}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m transformers_mmvg.data.textcam --preset textcam-64x8 --num-clips 2000 --out DIR`."""
    parser = argparse.ArgumentParser(
        prog="python -m transformers_mmvg.data.textcam",
        description=(
            "Write a TextCam data set: lossless mp4 clips of a camera panning and zooming over photographs, and "
            "metadata.jsonl. The output folder must be new or empty unless --overwrite is given; nothing is ever "
            "deleted."
        ),
    )
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="data set size")
    parser.add_argument("--num-clips", type=int, default=2000, help="number of clips")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--photos", default=None, help="folder of photos, every image file in it (default: scikit-image's samples)"
    )
    parser.add_argument(
        "--split",
        default=None,
        choices=list(SPLITS),
        help=(
            f"which default photos: train (default; all but {', '.join(DEFAULT_HELD_OUT_PHOTOS)}), held_out (those "
            "two) or all; not with --photos"
        ),
    )
    parser.add_argument("--num-workers", type=int, default=None, help="encoding processes (default: up to 2)")
    parser.add_argument(
        "--num-motions",
        type=int,
        default=None,
        choices=[1, 2],
        help="motions per clip (default: any of the 30 programs)",
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
    if args.num_clips < 0:
        parser.error(f"--num-clips must be >= 0, got {args.num_clips}")
    # Call through the package module (not __main__) so Pool workers find `_write_clip` by name.
    from transformers_mmvg.data import textcam

    try:
        out_dir = textcam.write_textcam(
            args.out,
            preset=args.preset,
            num_clips=args.num_clips,
            seed=args.seed,
            photos_dir=args.photos,
            split=args.split,
            num_workers=args.num_workers,
            num_motions=args.num_motions,
            overwrite=args.overwrite,
        )
    except (FileExistsError, FileNotFoundError, PhotoReadError, ValueError) as error:
        parser.error(str(error))
    print(f"wrote {args.num_clips} clips of {args.preset} to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
