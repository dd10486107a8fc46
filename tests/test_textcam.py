"""TextCam: photo normalisation, the window schedule, exact frames, captions, the sampler, the motion check and the
writer.

Expected values are worked out by hand from the shared docs/TEXTCAM.md (see the comments). The synthetic photo is
a checkerboard of 32-pixel squares: a frame pixel whose bicubic support lies inside one square has that square's
value exactly. Pillow's bicubic kernel reaches 2 input pixels, times the reduction factor w / R.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from PIL import Image

from transformers_mmvg.data.textcam import (
    DEFAULT_HELD_OUT_PHOTOS,
    DEFAULT_PHOTOS,
    DEFAULT_TRAIN_PHOTOS,
    PRESETS,
    PROGRAMS,
    ClipParams,
    PhotoReadError,
    caption_check,
    default_photo_paths,
    draw_clip_params,
    estimate_step,
    follows_caption,
    format_caption,
    get_preset,
    load_photo,
    load_photos,
    main,
    normalize_photo,
    parse_caption,
    render_clip,
    sample_clip_params,
    segment_follows,
    start_centre_range,
    step_motions,
    window_schedule,
    write_textcam,
)
from transformers_mmvg.video_io import read_video

SQUARE = 32


def checkerboard(width: int, height: int) -> Image.Image:
    """RGB photo: white where (x // 32 + y // 32) is even, black elsewhere."""
    y, x = np.mgrid[0:height, 0:width]
    board = np.where((x // SQUARE + y // SQUARE) % 2 == 0, 255, 0).astype(np.uint8)
    return Image.fromarray(np.stack([board] * 3, axis=-1))


@pytest.fixture(scope="module")
def default_photos():
    return load_photos(split="all")


def _draw_for_program(rng, motions, photo_sizes, preset):
    """A clip of the given program, drawn like the sampler: a photo, then an integer start inside the valid range."""
    names = sorted(photo_sizes)
    photo = names[rng.integers(len(names))]
    (x_lo, x_hi), (y_lo, y_hi) = start_centre_range(motions, photo_sizes[photo], preset)
    cx0 = rng.integers(math.ceil(x_lo), math.floor(x_hi) + 1)
    cy0 = rng.integers(math.ceil(y_lo), math.floor(y_hi) + 1)
    return ClipParams(photo, motions, cx0, cy0)


# ------------------------------------------------------------------------------------------
# Presets, programs, captions
# ------------------------------------------------------------------------------------------


def test_presets_match_the_spec_table():
    rows = {
        name: (p.resolution, p.num_frames, p.photo_size, p.window, p.pan_speed, p.zoom) for name, p in PRESETS.items()
    }
    assert rows == {
        "textcam-64x8": (64, 8, 256, 128, 16, 1.08),
        "textcam-64x16": (64, 16, 256, 128, 3, 1.04),
        "textcam-128x16": (128, 16, 256, 128, 3, 1.04),
    }


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown TextCam preset 'textcam-32x4'.*textcam-64x8"):
        get_preset("textcam-32x4")


def test_thirty_programs_none_with_opposite_or_repeated_motions():
    assert len(PROGRAMS) == len(set(PROGRAMS)) == 30
    assert [program for program in PROGRAMS if len(program) == 1] == [
        ("left",), ("right",), ("up",), ("down",), ("in",), ("out",)
    ]  # fmt: skip
    opposite = {frozenset(("left", "right")), frozenset(("up", "down")), frozenset(("in", "out"))}
    pairs = [program for program in PROGRAMS if len(program) == 2]
    assert len(pairs) == 24 and all(a != b and frozenset((a, b)) not in opposite for a, b in pairs)


def test_caption_strings():
    assert format_caption(("left", "in")) == "the camera pans left then zooms in"
    assert format_caption(("in", "left")) == "the camera zooms in then pans left"
    assert format_caption(("out",)) == "the camera zooms out"
    assert ClipParams("x.png", ("down", "right"), 0, 0).text == "the camera pans down then pans right"
    assert all(parse_caption(format_caption(program)) == program for program in PROGRAMS)


@pytest.mark.parametrize(
    "text, message",
    [
        ("the camera pans left.", "malformed TextCam caption"),
        ("The camera pans left", "malformed TextCam caption"),
        ("the camera pans sideways", "malformed TextCam caption"),
        ("the camera pans left then pans right", "not be its opposite"),
        ("the camera zooms in then zooms in", "differ from the first"),
    ],
)
def test_parse_caption_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_caption(text)


def test_clip_params_rejects_bad_motions_and_centres():
    with pytest.raises(ValueError, match="unknown motion 'tilt'"):
        ClipParams("x.png", ("tilt",), 0, 0)
    with pytest.raises(ValueError, match="1 or 2 motions"):
        ClipParams("x.png", ("left", "up", "in"), 0, 0)
    with pytest.raises(ValueError, match="finite"):
        ClipParams("x.png", ("left",), float("nan"), 0)


# ------------------------------------------------------------------------------------------
# Photos
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, expected",
    [
        ((451, 300), (385, 256)),  # chelsea: s = 256/300, 451 s = 384.85 -> 385
        ((640, 427), (384, 256)),  # rocket: s = 256/427, 640 s = 383.70 -> 384
        ((1000, 872), (294, 256)),  # hubble: 1000 × 256/872 = 293.58 -> 294
        ((300, 400), (256, 341)),  # 400 × 256/300 = 341.33 -> 341
        ((10, 20), (256, 512)),  # enlarged: s = 25.6
        ((513, 512), (256, 256)),  # 256.5: Python's round takes halves to even
        ((515, 512), (258, 256)),  # 257.5 -> 258
    ],
)
def test_normalised_photo_size(size, expected):
    assert normalize_photo(Image.new("L", size), 256).size == expected


def test_normalisation_converts_to_rgb_and_keeps_a_photo_already_at_size():
    gray = Image.fromarray(np.arange(256 * 300, dtype=np.uint32).reshape(300, 256).astype(np.uint8))  # mode L
    photo = normalize_photo(gray, 256)
    assert photo.mode == "RGB" and photo.size == (256, 300)
    assert np.array_equal(np.asarray(photo), np.repeat(np.asarray(gray)[..., None], 3, axis=-1))


def test_default_photos_and_held_out_split():
    assert DEFAULT_HELD_OUT_PHOTOS == ("chelsea.png", "rocket.jpg")
    assert set(DEFAULT_TRAIN_PHOTOS) | set(DEFAULT_HELD_OUT_PHOTOS) == set(DEFAULT_PHOTOS)
    assert not set(DEFAULT_TRAIN_PHOTOS) & set(DEFAULT_HELD_OUT_PHOTOS) and len(DEFAULT_PHOTOS) == 14
    assert [path.name for path in default_photo_paths("held_out")] == ["chelsea.png", "rocket.jpg"]
    assert [path.name for path in default_photo_paths()] == list(DEFAULT_TRAIN_PHOTOS)
    assert load_photo(default_photo_paths("held_out")[0]).size == (385, 256)  # chelsea, as above
    with pytest.raises(ValueError, match="unknown split 'test'"):
        default_photo_paths("test")


# ------------------------------------------------------------------------------------------
# The window schedule
# ------------------------------------------------------------------------------------------


def test_one_motion_schedules_64x8():
    # V = 16, W = 128: right adds 16 to cx at each of the 7 steps; in divides w by 1.08 at each step.
    assert window_schedule(("right",), "textcam-64x8", (100, 90)).tolist() == [
        [100 + 16 * k, 90, 128] for k in range(8)
    ]
    w = window_schedule(("in",), "textcam-64x8", (100, 90))[:, 2]
    assert w[1] == 128 / 1.08 and w[2] == 128 / 1.08 / 1.08 and abs(w[7] - 128 / 1.08**7) < 1e-9  # 74.69
    assert window_schedule(("up",), "textcam-64x16")[:, 1].tolist() == [-3 * k for k in range(16)]


def test_two_motion_schedule_rests_at_the_last_step_when_n_minus_1_is_odd():
    # 64x8: N − 1 = 7, L = 3: left at steps 1..3, in at 4..6, rest at 7.
    assert step_motions(("left", "in"), "textcam-64x8") == ["left"] * 3 + ["in"] * 3 + [None]
    windows = window_schedule(("left", "in"), "textcam-64x8", (200, 150))
    assert windows[:, 0].tolist() == [200, 184, 168, 152, 152, 152, 152, 152]
    w3 = 128 / 1.08 / 1.08 / 1.08  # step by step, as the spec's `w /= Z` (128 / 1.08**3 differs in the last bit)
    assert windows[:, 2].tolist() == [128, 128, 128, 128, 128 / 1.08, 128 / 1.08 / 1.08, w3, w3]
    # 64x16: N − 1 = 15, L = 7, rest at 15.
    assert step_motions(("out", "down"), "textcam-64x16") == ["out"] * 7 + ["down"] * 7 + [None]
    # N = 9: N − 1 = 8 is even, L = 4, no rest.
    nine = dataclasses.replace(get_preset("textcam-64x8"), num_frames=9)
    assert step_motions(("up", "right"), nine) == ["up"] * 4 + ["right"] * 4
    assert window_schedule(("up", "right"), nine)[-1].tolist() == [64, -64, 128]


def test_swapped_programs_share_both_end_frames(default_photos):
    photo = default_photos["astronaut.png"]
    a = render_clip(ClipParams("astronaut.png", ("left", "in"), 160, 128), photo)
    b = render_clip(ClipParams("astronaut.png", ("in", "left"), 160, 128), photo)
    assert a.windows[0] == b.windows[0] and a.windows[-1] == b.windows[-1]  # the very same floats
    assert np.array_equal(a.frames[0], b.frames[0]) and np.array_equal(a.frames[-1], b.frames[-1])
    assert all(not np.array_equal(a.frames[k], b.frames[k]) for k in range(1, 6))
    assert np.array_equal(a.frames[6], a.frames[7])  # the resting last step


# ------------------------------------------------------------------------------------------
# Exact frames
# ------------------------------------------------------------------------------------------


def test_frame_zero_is_the_box_of_the_start_window():
    # Window (128, 128, 128) -> box (64, 64, 192, 192), 2 photo px per frame px: frame column c samples around
    # x = 64 + 2c + 1 ± 4. Columns 2..13 lie inside the white square x in [64, 96) (y likewise), columns 18..29
    # inside the black one x in [96, 128).
    photo = checkerboard(512, 256)
    frames = render_clip(ClipParams("board.png", ("right",), 128, 128), photo).frames
    assert frames.shape == (8, 64, 64, 3) and frames.dtype == np.uint8
    assert (frames[0, 2:14, 2:14] == 255).all() and (frames[0, 2:14, 18:30] == 0).all()
    box = np.asarray(photo.resize((64, 64), Image.BICUBIC, box=(64, 64, 192, 192)))
    assert np.array_equal(frames[0], box)


def test_a_pan_step_moves_the_content_8_frame_pixels_in_the_default_preset():
    # right: box (80, 64, 208, 192). The boundary x = 96 is now at frame column 8; columns 0..5 are white
    # (81 + 2c + 4 <= 96), columns 10..21 black (81 + 2c − 4 >= 96, 81 + 2c + 4 <= 128). The box moved by 16 photo
    # px = 8 frame px on the same 2-px grid, so frame 1 is frame 0 moved 8 columns left, to the pixel.
    frames = render_clip(ClipParams("board.png", ("right",), 128, 128), checkerboard(512, 256)).frames
    assert (frames[1, 2:14, 0:6] == 255).all() and (frames[1, 2:14, 10:22] == 0).all()
    assert np.array_equal(frames[1, :, :56], frames[0, :, 8:])


def test_a_zoom_step_magnifies_about_the_centre():
    # in: w = 128 / 1.08 = 118.52, box from 128 − 64/1.08 = 68.74; 1.852 photo px per frame px, support ±3.70.
    # White x in [64, 96): 68.74 + 1.852 (c + 0.5) − 3.70 >= 64 and + 3.70 <= 96 -> c in 2..12 (one column fewer
    # than before the zoom); black x in [96, 128): c in 17..29.
    photo = checkerboard(256, 256)
    frames = render_clip(ClipParams("board.png", ("in", "right"), 128, 128), photo).frames
    assert (frames[1, 2:13, 2:13] == 255).all() and (frames[1, 2:13, 17:30] == 0).all()
    half = 64 / 1.08
    box = np.asarray(photo.resize((64, 64), Image.BICUBIC, box=(128 - half, 128 - half, 128 + half, 128 + half)))
    assert np.array_equal(frames[1], box)


def test_render_refuses_a_window_leaving_the_photo_or_a_raw_photo():
    # right in a 256-px wide photo: cx_k = cx0 + 16k with w = 128, so 64 <= cx0 and cx0 + 112 <= 192: cx0 <= 80.
    photo = checkerboard(256, 256)
    assert start_centre_range(("right",), photo.size) == ((64.0, 80.0), (64.0, 192.0))
    render_clip(ClipParams("board.png", ("right",), 80, 64), photo)
    with pytest.raises(ValueError, match=r"leaves the 256x256 photo.*cx0 in \[64, 80\], cy0 in \[64, 192\]"):
        render_clip(ClipParams("board.png", ("right",), 81, 64), photo)
    with pytest.raises(ValueError, match="must be normalised"):
        render_clip(ClipParams("board.png", ("right",), 80, 64), checkerboard(300, 300))


# ------------------------------------------------------------------------------------------
# Sampler
# ------------------------------------------------------------------------------------------

SIZES = {"a.png": (256, 256), "b.png": (385, 256), "c.png": (256, 384), "d.png": (512, 256)}


def test_sampler_is_deterministic_under_a_seed():
    assert draw_clip_params(40, 7, SIZES) == draw_clip_params(40, 7, SIZES)
    assert draw_clip_params(40, 7, SIZES) != draw_clip_params(40, 8, SIZES)
    assert draw_clip_params(40, 7, SIZES)[:10] == draw_clip_params(10, 7, SIZES)


@pytest.mark.parametrize("preset_name", list(PRESETS))
def test_sampled_windows_stay_inside_the_photo(preset_name):
    rng = np.random.default_rng(0)
    for _ in range(300):
        params = sample_clip_params(rng, SIZES, preset_name)
        width, height = SIZES[params.photo]
        cx, cy, w = window_schedule(params.motions, preset_name, (params.cx0, params.cy0)).T
        assert (w / 2 <= cx).all() and (cx <= width - w / 2).all()
        assert (w / 2 <= cy).all() and (cy <= height - w / 2).all()


def test_sampler_reaches_both_ends_of_the_start_range():
    # out in a 256x256 photo at 64x8: w_7 = 128 × 1.08^7 = 219.369, so cx0, cy0 in [109.685, 146.315] -> 110..146.
    (x_lo, x_hi), _ = start_centre_range(("out",), (256, 256))
    assert (round(x_lo, 2), round(x_hi, 2)) == (109.68, 146.32)
    rng = np.random.default_rng(0)
    starts = [p.cx0 for p in (sample_clip_params(rng, {"a.png": (256, 256)}, num_motions=1) for _ in range(2000))
              if p.motions == ("out",)]  # fmt: skip
    assert min(starts) == 110 and max(starts) == 146
    assert {len(sample_clip_params(rng, SIZES).motions) for _ in range(100)} == {1, 2}


def test_every_program_fits_a_normalised_photo_and_a_program_that_does_not_is_an_error():
    for preset in PRESETS.values():
        side = preset.photo_size
        for program in PROGRAMS:
            (x_lo, x_hi), (y_lo, y_hi) = start_centre_range(program, (side, side), preset)
            assert math.ceil(x_lo) <= math.floor(x_hi) and math.ceil(y_lo) <= math.floor(y_hi), (preset.name, program)
    fast = dataclasses.replace(get_preset("textcam-64x8"), name="fast", pan_speed=40)  # 7 × 40 + 128 > 256
    with pytest.raises(ValueError, match="does not fit in the 256x256 photo"):
        draw_clip_params(20, 0, {"a.png": (256, 256)}, fast, num_motions=1)


# ------------------------------------------------------------------------------------------
# The motion check
# ------------------------------------------------------------------------------------------


def test_step_labels_on_shifted_texture_follow_the_sign_convention():
    texture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    label, (dx, dy), _ = estimate_step(texture, np.roll(texture, 3, axis=1), zoom=1.08)  # content slides right
    assert label == "left" and abs(dx - 3) < 0.1 and abs(dy) < 0.1
    label, (dx, dy), _ = estimate_step(texture, np.roll(texture, -2, axis=0), zoom=1.08)  # content slides up
    assert label == "down" and abs(dy + 2) < 0.1
    assert estimate_step(texture, texture, zoom=1.08)[0] == "still"


@pytest.mark.parametrize(
    "preset_name, programs",
    [("textcam-64x8", PROGRAMS * 2), ("textcam-64x16", PROGRAMS), ("textcam-128x16", PROGRAMS[::2])],
)
def test_check_reads_true_clips_and_rejects_every_other_program(default_photos, preset_name, programs):
    """Clips of the programs on all 14 default photos (60 clips at 64x8, 2 of each program): >= 95% follow their
    caption, and none of the clips read correctly follows any other program."""
    sizes = {name: photo.size for name, photo in default_photos.items()}
    rng = np.random.default_rng(16)
    followed = 0
    for program in programs:
        params = _draw_for_program(rng, program, sizes, preset_name)
        frames = render_clip(params, default_photos[params.photo], preset_name).frames
        check = caption_check(frames, params, preset_name)
        followed += check.follows
        if check.follows:
            others = [p for p in PROGRAMS if all(segment_follows(check.step_motions, p, preset_name))]
            assert others == [program], (params, check.step_motions)
    assert followed >= 0.95 * len(programs)


def test_check_rejects_swapped_frozen_reversed_and_blank_clips(default_photos):
    params = ClipParams("coffee.png", ("left", "out"), 300, 128)
    frames = render_clip(params, default_photos["coffee.png"]).frames
    check = caption_check(frames, params)
    assert check.follows and check.step_motions == ["left"] * 3 + ["out"] * 3 + ["still"]
    assert (check.shifts[:3, 0] > 7).all()  # content slides right by 8 px: the camera pans left
    assert follows_caption(frames, "the camera pans left then zooms out")
    assert follows_caption(frames, ["left", "out"]) and follows_caption(frames, {"motions": ["left", "out"]})
    assert not follows_caption(frames, ("out", "left"))
    assert not follows_caption(frames, ("left",)) and not follows_caption(frames, ("left", "in"))
    assert not follows_caption(np.repeat(frames[:1], 8, axis=0), params)
    assert caption_check(frames[::-1], ("in", "right")).follows  # played backwards: zoom in, then pan right
    blank = caption_check(np.zeros_like(frames), params)
    assert not blank.follows and blank.step_motions == ["still"] * 7
    with pytest.raises(ValueError, match=r"frames must have shape \(8, 64, 64, 3\)"):
        caption_check(frames[:4], params)


# ------------------------------------------------------------------------------------------
# Writer and command line
# ------------------------------------------------------------------------------------------


def _read_metadata(out_dir):
    return [json.loads(line) for line in (out_dir / "metadata.jsonl").read_text().splitlines()]


@pytest.fixture
def photos_dir(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    checkerboard(512, 256).save(folder / "board.png")
    y, x = np.mgrid[0:400, 0:300]
    Image.fromarray(((x + y) % 256).astype(np.uint8)).save(folder / "gradient.png")  # grayscale, -> 256x341
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_writer_round_trip(tmp_path, photos_dir):
    out_dir = write_textcam(tmp_path / "tc", num_clips=5, seed=3, photos_dir=photos_dir, num_workers=1)
    rows = _read_metadata(out_dir)
    photos = load_photos(photos_dir)
    assert sorted(photos) == ["board.png", "gradient.png"] and photos["gradient.png"].size == (256, 341)
    params = draw_clip_params(5, 3, {name: photo.size for name, photo in photos.items()})
    for index, (row, clip_params) in enumerate(zip(rows, params, strict=True)):
        clip = render_clip(clip_params, photos[clip_params.photo])
        assert row == {
            "file_name": f"clip_{index:05d}.mp4",
            "text": clip.text,
            "photo": clip.photo,
            "motions": list(clip.motions),
            "windows": clip.windows,
            "preset": "textcam-64x8",
            "cx0": clip_params.cx0,
            "cy0": clip_params.cy0,
        }
        assert np.array_equal(read_video(out_dir / row["file_name"]), clip.frames)


def test_cli_with_two_workers_matches_the_writer_and_holds_out_photos(tmp_path, capsys):
    write_textcam(tmp_path / "one", "textcam-64x16", num_clips=4, seed=5, split="held_out", num_workers=1)
    argv = ["--preset", "textcam-64x16", "--num-clips", "4", "--out", str(tmp_path / "cli"), "--seed", "5"]
    assert main([*argv, "--split", "held_out", "--num-workers", "2"]) == 0
    rows = _read_metadata(tmp_path / "cli")
    assert rows == _read_metadata(tmp_path / "one")
    assert {row["photo"] for row in rows} <= set(DEFAULT_HELD_OUT_PHOTOS)
    frames = read_video(tmp_path / "cli" / rows[0]["file_name"])
    expected = render_clip(ClipParams(rows[0]["photo"], rows[0]["motions"], rows[0]["cx0"], rows[0]["cy0"]),
                           default_photo_paths("held_out")[DEFAULT_HELD_OUT_PHOTOS.index(rows[0]["photo"])],
                           "textcam-64x16")  # fmt: skip
    assert frames.shape == (16, 64, 64, 3) and np.array_equal(frames, expected.frames)


def test_writer_refuses_a_non_empty_folder_and_overwrites_only_its_own_files(tmp_path, photos_dir):
    out_dir = tmp_path / "tc"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not empty"):
        write_textcam(out_dir, num_clips=1, photos_dir=photos_dir, num_workers=1)
    assert sorted(path.name for path in out_dir.iterdir()) == ["keep.txt"]
    write_textcam(out_dir, num_clips=1, photos_dir=photos_dir, num_workers=1, overwrite=True)
    assert sorted(path.name for path in out_dir.iterdir()) == ["clip_00000.mp4", "keep.txt", "metadata.jsonl"]
    assert (out_dir / "keep.txt").read_text() == "mine"


def test_bad_input_is_refused_with_a_clear_message(tmp_path, photos_dir, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        write_textcam(tmp_path / "a", num_clips=1, photos_dir=empty)
    with pytest.raises(FileNotFoundError, match="photos folder not found"):
        write_textcam(tmp_path / "a", num_clips=1, photos_dir=tmp_path / "missing")
    (photos_dir / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(PhotoReadError, match="cannot read photo .*broken.jpg"):
        write_textcam(tmp_path / "a", num_clips=1, photos_dir=photos_dir)
    with pytest.raises(ValueError, match="num_clips must be >= 0"):
        write_textcam(tmp_path / "a", num_clips=-1)
    with pytest.raises(ValueError, match="a split .* selects default photos"):
        write_textcam(tmp_path / "a", num_clips=1, photos_dir=empty, split="train")
    assert not (tmp_path / "a").exists()  # nothing was written for any of them
    for argv, message in [
        (["--preset", "textcam-32x4"], "invalid choice: 'textcam-32x4'"),
        (["--num-clips", "-1"], "--num-clips must be >= 0"),
        (["--photos", str(empty)], "holds no image files"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--out", str(tmp_path / "cli")])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
