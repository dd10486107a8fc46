"""TextShapes: exact rendering, motion, captions, the caption check, the sampler and the writer.

Expected values are worked out by hand from docs/TEXTSHAPES.md (see the comments).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from transformers_mmvg.data.textshapes import (
    COLORS,
    PRESETS,
    ClipParams,
    caption_check,
    centroid_error,
    clips_seen_in_training,
    draw_clip_params,
    ensure_textshapes_splits,
    follows_caption,
    get_preset,
    main,
    object_centroids,
    parse_caption,
    render_clip,
    sample_clip_params,
    shape_mask,
    trajectory,
    training_data_record,
    write_held_out_textshapes,
    write_textshapes,
)
from transformers_mmvg.video_io import read_video

# ------------------------------------------------------------------------------------------
# Presets
# ------------------------------------------------------------------------------------------


def test_presets_match_the_spec_table():
    rows = {name: (p.resolution, p.num_frames, p.object_size, p.speed, p.fps) for name, p in PRESETS.items()}
    assert rows == {
        "textshapes-64x8": (64, 8, 14, 4, 8),
        "textshapes-64x16": (64, 16, 14, 2, 8),
        "textshapes-128x16": (128, 16, 28, 4, 8),
    }


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown TextShapes preset 'textshapes-32x4'.*textshapes-64x8"):
        get_preset("textshapes-32x4")


# ------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------


def test_square_fills_its_box():
    assert shape_mask("square", 14).sum() == 14 * 14  # 196


def test_circle_pixel_count_s14():
    # (c + 0.5 − 7)² + (r + 0.5 − 7)² ≤ 49. With u = c − 6.5 and v = r − 6.5 (both ±0.5 .. ±6.5),
    # row v has the columns with u² ≤ 49 − v²:
    #   |v| = 0.5: ≤ 48.75 -> all 14 (6.5² = 42.25)   |v| = 1.5: ≤ 46.75 -> 14
    #   |v| = 2.5: ≤ 42.75 -> 14                      |v| = 3.5: ≤ 36.75 -> |u| ≤ 5.5 -> 12
    #   |v| = 4.5: ≤ 28.75 -> |u| ≤ 4.5 -> 10          |v| = 5.5: ≤ 18.75 -> |u| ≤ 3.5 -> 8
    #   |v| = 6.5: ≤ 6.75  -> |u| ≤ 2.5 -> 6
    # total 2 × (14 + 14 + 14 + 12 + 10 + 8 + 6) = 156.
    mask = shape_mask("circle", 14)
    assert mask.sum(axis=1).tolist() == [6, 8, 10, 12, 14, 14, 14, 14, 14, 14, 12, 10, 8, 6]
    assert mask.sum() == 156
    assert np.flatnonzero(mask[0]).tolist() == [4, 5, 6, 7, 8, 9]  # |u| ≤ 2.5 -> c = 4 .. 9


def test_triangle_rows_s14():
    # |c + 0.5 − 7| ≤ (r + 1) / 2: row 0 -> |c − 6.5| ≤ 0.5 -> c = 6, 7; row 1 -> ≤ 1 -> still 6, 7;
    # row 2 -> ≤ 1.5 -> 5 .. 8; row 6 -> ≤ 3.5 -> 3 .. 10; row 13 -> ≤ 7 -> all 0 .. 13.
    # Row r has 2·⌊(r + 2) / 2⌋ columns: 2 × 2 × (1 + .. + 7) = 112 pixels.
    mask = shape_mask("triangle", 14)
    assert np.flatnonzero(mask[0]).tolist() == [6, 7]
    assert np.flatnonzero(mask[1]).tolist() == [6, 7]
    assert np.flatnonzero(mask[2]).tolist() == [5, 6, 7, 8]
    assert np.flatnonzero(mask[6]).tolist() == [3, 4, 5, 6, 7, 8, 9, 10]
    assert np.flatnonzero(mask[13]).tolist() == list(range(14))
    assert mask.sum() == 112


def test_render_paints_the_box_at_the_position():
    clip = render_clip(ClipParams("square", "magenta", ("down",), x0=3, y0=5), "textshapes-64x8")
    assert clip.frames.shape == (8, 64, 64, 3) and clip.frames.dtype == np.uint8
    frame = clip.frames[0]
    assert (frame[5:19, 3:17] == (255, 0, 255)).all()  # rows y .. y+13, columns x .. x+13
    assert frame.sum() == 14 * 14 * (255 + 255)  # nothing else painted, background black
    # moving down by 4 per frame: frame 1's box starts at row 9
    assert (clip.frames[1][9:23, 3:17] == (255, 0, 255)).all() and clip.frames[1][5:9].sum() == 0


# ------------------------------------------------------------------------------------------
# Motion
# ------------------------------------------------------------------------------------------


def test_two_segment_positions_64x8():
    # N = 8, V = 4, L = (8 − 1) // 2 = 3: right at steps 1..3, down at 4..6, rest at step 7.
    clip = render_clip(ClipParams("circle", "red", ("right", "down"), x0=10, y0=20), "textshapes-64x8")
    assert clip.positions == [[10, 20], [14, 20], [18, 20], [22, 20], [22, 24], [22, 28], [22, 32], [22, 32]]


def test_two_segment_positions_64x16():
    # N = 16, V = 2, L = 7: right at steps 1..7 (x 10 -> 24), down at 8..14 (y 20 -> 34), rest at 15.
    clip = render_clip(ClipParams("circle", "red", ("right", "down"), x0=10, y0=20), "textshapes-64x16")
    assert clip.positions == [
        [10, 20], [12, 20], [14, 20], [16, 20], [18, 20], [20, 20], [22, 20], [24, 20],
        [24, 22], [24, 24], [24, 26], [24, 28], [24, 30], [24, 32], [24, 34], [24, 34],
    ]  # fmt: skip


def test_one_segment_trajectory_moves_every_step():
    # N = 8, V = 4, up: dy = −4 per step for 7 steps.
    assert trajectory(("up",), "textshapes-64x8").tolist() == [[0, -4 * k] for k in range(8)]


def test_infilling_pair_shares_end_frames_only():
    preset = "textshapes-64x8"
    a = render_clip(ClipParams("triangle", "cyan", ("right", "down"), x0=10, y0=20), preset)
    b = render_clip(ClipParams("triangle", "cyan", ("down", "right"), x0=10, y0=20), preset)
    assert np.array_equal(a.frames[0], b.frames[0])
    assert np.array_equal(a.frames[-1], b.frames[-1])
    # frame 3 is the corner: (22, 20) after right, (10, 32) after down
    assert a.positions[3] == [22, 20] and b.positions[3] == [10, 32]
    assert all(not np.array_equal(a.frames[k], b.frames[k]) for k in range(1, 6))


# ------------------------------------------------------------------------------------------
# Captions and validation
# ------------------------------------------------------------------------------------------


def test_caption_format():
    assert ClipParams("triangle", "cyan", ("up", "left"), 20, 30).text == "the cyan triangle moves up then left"
    clip = render_clip(ClipParams("square", "white", ("left",), x0=40, y0=0))
    assert clip.text == "the white square moves left"


@pytest.mark.parametrize(
    "params",
    [
        ClipParams("circle", "green", ("down",), 0, 0),
        ClipParams("triangle", "cyan", ("up", "left"), 40, 40),
        ClipParams("square", "white", ("right", "up"), 0, 40),
    ],
)
def test_parse_caption_round_trip(params):
    assert parse_caption(params.text) == (params.color, params.shape, params.directions)


@pytest.mark.parametrize(
    "text, message",
    [
        ("the cyan triangle moves up then left.", "malformed TextShapes caption"),
        ("The cyan triangle moves up", "malformed TextShapes caption"),
        ("the cyan triangle goes up", "malformed TextShapes caption"),
        ("the orange triangle moves up", "unknown color 'orange'"),
        ("the cyan hexagon moves up", "unknown shape 'hexagon'"),
        ("the cyan circle moves sideways", "unknown direction 'sideways'"),
        ("the cyan circle moves up then down", "perpendicular"),
    ],
)
def test_parse_caption_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_caption(text)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(shape="hexagon"), "unknown shape 'hexagon'; valid shapes: square, circle, triangle"),
        (dict(color="orange"), "unknown color 'orange'"),
        (dict(directions=("north",)), "unknown direction 'north'"),
        (dict(directions=("left", "right")), "perpendicular"),
        (dict(directions=("left", "up", "right")), "1 or 2 directions"),
    ],
)
def test_clip_params_rejects(kwargs, message):
    base = dict(shape="square", color="red", directions=("right",), x0=0, y0=0)
    with pytest.raises(ValueError, match=message):
        ClipParams(**{**base, **kwargs})


def test_box_leaving_the_frame_is_rejected():
    # 64x8, right: x goes x0 .. x0 + 28, so x0 ≤ 64 − 14 − 28 = 22.
    render_clip(ClipParams("square", "red", ("right",), x0=22, y0=0))
    with pytest.raises(ValueError, match=r"leaves the 64x64 frame.*x0 in \[0, 22\], y0 in \[0, 50\]"):
        render_clip(ClipParams("square", "red", ("right",), x0=23, y0=0))
    with pytest.raises(ValueError, match="leaves"):
        render_clip(ClipParams("square", "red", ("up",), x0=0, y0=27))  # needs y0 ≥ 28


# ------------------------------------------------------------------------------------------
# Sampler
# ------------------------------------------------------------------------------------------


def test_sampler_is_deterministic_under_a_seed():
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    a = [sample_clip_params(rng_a) for _ in range(50)]
    b = [sample_clip_params(rng_b) for _ in range(50)]
    assert a == b
    rng_c = np.random.default_rng(8)
    assert a != [sample_clip_params(rng_c) for _ in range(50)]


@pytest.mark.parametrize("preset_name", list(PRESETS))
def test_sampled_clips_stay_inside_the_frame(preset_name):
    preset = get_preset(preset_name)
    rng = np.random.default_rng(0)
    highest = preset.resolution - preset.object_size
    for _ in range(200):
        params = sample_clip_params(rng, preset)
        positions = np.asarray(render_clip(params, preset).positions)
        assert positions.min() >= 0 and positions.max() <= highest


def test_sampler_segments_and_start_range():
    rng = np.random.default_rng(0)
    both = {len(sample_clip_params(rng).directions) for _ in range(100)}
    assert both == {1, 2}
    # one segment right at 64x8: valid x0 are 0 .. 22 (see above), y0 0 .. 50; the draw reaches both ends
    starts = [p for p in (sample_clip_params(rng, num_segments=1) for _ in range(3000)) if p.directions == ("right",)]
    assert min(p.x0 for p in starts) == 0 and max(p.x0 for p in starts) == 22
    assert min(p.y0 for p in starts) == 0 and max(p.y0 for p in starts) == 50
    assert all(len(sample_clip_params(rng, num_segments=2).directions) == 2 for _ in range(20))


# ------------------------------------------------------------------------------------------
# Caption check
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset_name", list(PRESETS))
def test_caption_check_accepts_true_clips(preset_name):
    rng = np.random.default_rng(1)
    for _ in range(40):
        params = sample_clip_params(rng, preset_name)
        clip = render_clip(params, preset_name)
        assert follows_caption(clip.frames, clip.text, preset_name), clip.text


def test_caption_check_reports_centroids_and_displacements():
    # square at (10, 20) moving right then down: centroid = box corner + 6.5; segment one moves
    # (12, 0) over frames 0..3, segment two (0, 12) over frames 3..6.
    params = ClipParams("square", "blue", ("right", "down"), x0=10, y0=20)
    check = caption_check(render_clip(params).frames, params.text)
    assert check.follows and check.segment_follows == [True, True]
    assert check.centroids[0].tolist() == [16.5, 26.5]
    assert check.centroids[7].tolist() == [28.5, 38.5]
    assert check.displacements.tolist() == [[12.0, 0.0], [0.0, 12.0]]


def test_caption_check_rejects_wrong_clips():
    params = ClipParams("circle", "yellow", ("right", "down"), x0=10, y0=20)
    frames = render_clip(params).frames
    assert follows_caption(frames, params)
    assert not follows_caption(frames, "the yellow circle moves down then right")  # swapped order
    assert not follows_caption(frames, "the yellow circle moves left then down")  # opposite direction
    assert not follows_caption(frames, "the red circle moves right then down")  # wrong color: no object
    frozen = np.repeat(frames[:1], len(frames), axis=0)
    assert not follows_caption(frozen, params)
    black = np.zeros_like(frames)
    check = caption_check(black, params)
    assert not check.follows and np.isnan(check.centroids).all()


def test_caption_check_length_threshold_is_half_the_intended_distance():
    # 64x8, one segment right: intended 4 × 7 = 28 px, threshold 14. Rendering the same clip at
    # speed 2 moves exactly 14 px (passes), at speed 1 only 7 px (fails).
    params = ClipParams("square", "green", ("right",), x0=0, y0=0)
    half_speed = dataclasses.replace(get_preset("textshapes-64x8"), speed=2)
    quarter_speed = dataclasses.replace(get_preset("textshapes-64x8"), speed=1)
    assert follows_caption(render_clip(params, half_speed).frames, params)
    assert not follows_caption(render_clip(params, quarter_speed).frames, params)


def test_caption_check_sideways_drift_at_most_the_displacement():
    # square right from (2, 2): the last frame is 28 px right of the first. Shifting only the
    # last frame down by 28 px drifts as much as it moves (passes); by 29 px it does not.
    params = ClipParams("square", "white", ("right",), x0=2, y0=2)
    frames = render_clip(params).frames
    drifted = frames.copy()
    drifted[-1] = np.roll(frames[-1], 28, axis=0)
    assert follows_caption(drifted, params)
    drifted[-1] = np.roll(frames[-1], 29, axis=0)
    assert not follows_caption(drifted, params)


def test_object_pixels_nearest_palette_color_and_minimum_count():
    frames = np.zeros((3, 64, 64, 3), dtype=np.uint8)
    frames[0, 0:5, 0:5] = (128, 0, 0)  # 25 px, nearer red (127²) than black (128²): found
    frames[1, 0:4, 0:6] = (255, 0, 0)  # 24 px < 14² / 8 = 24.5: no object
    frames[2, 0:5, 0:5] = (127, 0, 0)  # nearer black (127²) than red (128²): not red
    centroids = object_centroids(frames, "red", "textshapes-64x8")
    assert centroids[0].tolist() == [2.0, 2.0]
    assert np.isnan(centroids[1:]).all()
    # (128, 128, 0) is nearest to yellow (2 × 127²) rather than red or green (127² + 128²)
    frames[0, 0:5, 0:5] = (128, 128, 0)
    assert np.isnan(object_centroids(frames, "red")[0]).all()
    assert object_centroids(frames, "yellow")[0].tolist() == [2.0, 2.0]


def test_centroid_error():
    params = ClipParams("triangle", "red", ("down", "left"), x0=40, y0=5)
    clip = render_clip(params)
    assert centroid_error(clip.frames, params) == 0.0
    shifted = np.roll(clip.frames, 3, axis=2)  # every frame 3 px to the right
    assert centroid_error(shifted, params) == 3.0
    row = {"shape": "triangle", "color": "red", "positions": clip.positions}
    assert centroid_error(shifted, row) == 3.0
    assert np.isnan(centroid_error(np.zeros_like(clip.frames), clip))


# ------------------------------------------------------------------------------------------
# Writer and command line
# ------------------------------------------------------------------------------------------


def _read_metadata(out_dir):
    return [json.loads(line) for line in (out_dir / "metadata.jsonl").read_text().splitlines()]


def test_writer_files_and_metadata(tmp_path):
    out_dir = write_textshapes(tmp_path / "ts", "textshapes-64x8", num_clips=6, seed=3, num_workers=1)
    rows = _read_metadata(out_dir)
    assert [row["file_name"] for row in rows] == [f"clip_0000{i}.mp4" for i in range(6)]
    rng = np.random.default_rng(3)
    for row in rows:
        params = sample_clip_params(rng, "textshapes-64x8")  # the writer draws in the same order
        clip = render_clip(params, "textshapes-64x8")
        assert row == {
            "file_name": row["file_name"],
            "text": clip.text,
            "shape": params.shape,
            "color": params.color,
            "directions": list(params.directions),
            "positions": clip.positions,
            "preset": "textshapes-64x8",
            "x0": params.x0,
            "y0": params.y0,
        }
        assert np.array_equal(read_video(out_dir / row["file_name"]), clip.frames)


def test_cli_matches_writer_with_two_workers(tmp_path, capsys):
    write_textshapes(tmp_path / "one", "textshapes-64x16", num_clips=6, seed=5, num_workers=1, num_segments=2)
    argv = ["--preset", "textshapes-64x16", "--num-clips", "6", "--out", str(tmp_path / "cli"), "--seed", "5"]
    assert main([*argv, "--num-workers", "2", "--num-segments", "2"]) == 0
    rows = _read_metadata(tmp_path / "cli")
    assert rows == _read_metadata(tmp_path / "one")
    assert all(len(row["directions"]) == 2 for row in rows)
    for row in rows:
        params = ClipParams(row["shape"], row["color"], tuple(row["directions"]), row["x0"], row["y0"])
        frames = read_video(tmp_path / "cli" / row["file_name"])
        assert frames.shape == (16, 64, 64, 3)
        assert np.array_equal(frames, render_clip(params, "textshapes-64x16").frames)


def test_cli_unknown_preset_fails(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "textshapes-32x4", "--out", str(tmp_path)])
    assert exit_info.value.code != 0
    assert "invalid choice: 'textshapes-32x4'" in capsys.readouterr().err


def test_colors_are_the_spec_palette():
    assert COLORS == {
        "red": (255, 0, 0),
        "green": (0, 255, 0),
        "blue": (0, 0, 255),
        "yellow": (255, 255, 0),
        "magenta": (255, 0, 255),
        "cyan": (0, 255, 255),
        "white": (255, 255, 255),
    }


# ------------------------------------------------------------------------------------------
# Held-out sets never hold a training clip
# ------------------------------------------------------------------------------------------


def _params(rows):
    return [ClipParams(row["shape"], row["color"], tuple(row["directions"]), row["x0"], row["y0"]) for row in rows]


def test_draw_clip_params_skips_exactly_the_excluded_draws():
    draws = draw_clip_params(40, seed=9)
    assert draws[:10] == draw_clip_params(10, seed=9)  # a smaller set is a prefix of a larger one
    excluded = {draws[0], draws[3], draws[4]}
    kept = draw_clip_params(37, seed=9, exclude=excluded)
    assert kept == [clip for clip in draws if clip not in excluded]
    with pytest.raises(ValueError, match="could be drawn outside"):
        draw_clip_params(3, seed=0, preset="textshapes-64x8", num_segments=1,
                         exclude=set(draw_clip_params(50_000, seed=0, num_segments=1)))


def test_eval_split_holds_no_training_clip(tmp_path):
    # seeds 42 / 43 with these sizes share clips when drawn independently: clip 14 of seed 43 is one of seed 42's
    assert draw_clip_params(15, seed=43)[14] in set(draw_clip_params(10_000, seed=42))
    train_dir, eval_dir = ensure_textshapes_splits(tmp_path, num_train_clips=10_000 // 400, num_eval_clips=4, seed=42)
    train, held_out = _params(_read_metadata(train_dir)), _params(_read_metadata(eval_dir))
    assert len(train) == 25 and len(held_out) == 4 and not set(train) & set(held_out)
    assert held_out == draw_clip_params(4, seed=43, exclude=draw_clip_params(25, seed=42))


def test_held_out_set_leaves_out_what_a_model_was_trained_on(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "training_data.json").write_text(json.dumps(training_data_record("textshapes-64x8", 30, seed=5)))
    assert clips_seen_in_training(model_dir) == set(draw_clip_params(30, seed=5))
    folder = write_held_out_textshapes(tmp_path / "test", [model_dir], num_clips=5, seed=5)
    assert _params(_read_metadata(folder)) == draw_clip_params(5, seed=5, exclude=draw_clip_params(30, seed=5))
    # asked again: the same folder is reused; another request for it is refused, never overwritten
    before = (folder / "metadata.jsonl").read_text()
    assert write_held_out_textshapes(folder, [model_dir], num_clips=5, seed=5) == folder
    with pytest.raises(ValueError, match="holds other TextShapes clips"):
        write_held_out_textshapes(folder, [model_dir], num_clips=5, seed=6)
    assert (folder / "metadata.jsonl").read_text() == before
    with pytest.warns(UserWarning, match="cannot be left out"):
        write_held_out_textshapes(tmp_path / "unchecked", [tmp_path], num_clips=1, seed=5)
