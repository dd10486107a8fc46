"""What the data code refuses, so that nothing of the user's is overwritten and nothing outside a folder is read:

- the TextShapes writer refuses a non-empty folder unless told to overwrite, and then replaces only its own files;
- `ensure_textshapes_splits` reuses a folder only when it holds exactly the clips asked for;
- a video folder's metadata cannot name files outside the folder (`..`, absolute paths, symlinks);
- `read_video` refuses to decode frames that would take more memory than a limit, before decoding anything.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from transformers_mmvg.data.textshapes import (
    draw_clip_params,
    ensure_textshapes_splits,
    main,
    render_clip,
    write_textshapes,
)
from transformers_mmvg.data.video_folder import VideoFolderError, load_video_folder
from transformers_mmvg.video_io import VideoTooLargeError, decoded_bytes, read_video, write_video

# ---------------------------------------------------------------------------------------------
# the TextShapes writer and the splits


def _user_folder(folder):
    """A folder of someone else's: files with the writer's names and one of its own."""
    folder.mkdir()
    (folder / "metadata.jsonl").write_text('{"file_name": "clip_00000.mp4", "text": "my holiday"}\n')
    (folder / "clip_00000.mp4").write_bytes(b"my holiday video")
    (folder / "clip_00005.mp4").write_bytes(b"another video of mine")
    (folder / "notes.txt").write_text("mine")
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_writer_refuses_a_non_empty_folder(tmp_path, capsys):
    folder = tmp_path / "my_videos"
    before = _user_folder(folder)
    with pytest.raises(FileExistsError, match="my_videos is not empty.*overwrite=True"):
        write_textshapes(folder, num_clips=2, seed=0, num_workers=1)
    with pytest.raises(SystemExit) as exit_info:
        main(["--num-clips", "2", "--num-workers", "1", "--out", str(folder)])
    assert exit_info.value.code == 2
    assert "is not empty" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_writer_with_overwrite_replaces_only_its_own_files(tmp_path):
    folder = tmp_path / "my_videos"
    before = _user_folder(folder)
    assert main(["--num-clips", "2", "--num-workers", "1", "--seed", "4", "--out", str(folder), "--overwrite"]) == 0
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    params = draw_clip_params(2, seed=4)
    assert [row["text"] for row in rows] == [clip.text for clip in params]
    assert np.array_equal(read_video(folder / "clip_00000.mp4"), render_clip(params[0]).frames)
    assert (folder / "notes.txt").read_bytes() == before["notes.txt"]
    assert (folder / "clip_00005.mp4").read_bytes() == before["clip_00005.mp4"]  # not the writer's to delete
    assert sorted(path.name for path in folder.iterdir()) == [
        "clip_00000.mp4", "clip_00001.mp4", "clip_00005.mp4", "metadata.jsonl", "notes.txt",
    ]  # fmt: skip


def test_writer_with_overwrite_does_not_write_through_a_symlink(tmp_path):
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"not the writer's")
    folder = tmp_path / "ts"
    folder.mkdir()
    (folder / "clip_00000.mp4").symlink_to(outside)
    with pytest.raises(FileExistsError, match="clip_00000.mp4 is a symlink"):
        write_textshapes(folder, num_clips=1, seed=0, num_workers=1, overwrite=True)
    assert outside.read_bytes() == b"not the writer's"


def test_splits_are_reused_only_when_they_hold_the_clips_asked_for(tmp_path):
    train_dir, eval_dir = ensure_textshapes_splits(tmp_path, "textshapes-64x8", 3, 2, seed=0)
    written = {path: path.stat().st_mtime_ns for path in sorted(tmp_path.rglob("*"))}
    assert ensure_textshapes_splits(tmp_path, "textshapes-64x8", 3, 2, seed=0) == (train_dir, eval_dir)
    holds = "holds other TextShapes clips than the"
    asked_otherwise = [
        (("textshapes-64x16", 3, 2, 0),
         f"train {holds} 3 clips of textshapes-64x16 drawn with seed 0 asked for: 3 clips of textshapes-64x8;"),
        (("textshapes-64x8", 3, 2, 1),
         f"train {holds} 3 clips of textshapes-64x8 drawn with seed 1 asked for: 3 clips of textshapes-64x8;"),
        (("textshapes-64x8", 4, 2, 0),
         f"train {holds} 4 clips of textshapes-64x8 drawn with seed 0 asked for: 3 clips of textshapes-64x8;"),
        (("textshapes-64x8", 3, 1, 0),
         (f"eval {holds} 1 clips of textshapes-64x8 drawn with seed 1 outside the 3 training clips asked for: "
          "2 clips of textshapes-64x8;")),
    ]  # fmt: skip
    for (preset, num_train, num_eval, seed), message in asked_otherwise:
        with pytest.raises(ValueError, match=message):
            ensure_textshapes_splits(tmp_path, preset, num_train, num_eval, seed)
    assert {path: path.stat().st_mtime_ns for path in sorted(tmp_path.rglob("*"))} == written


def test_splits_refuse_a_folder_of_other_files(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "clip_00000.mp4").write_bytes(b"mine")
    with pytest.raises(ValueError, match="train is not empty and holds no TextShapes metadata.jsonl"):
        ensure_textshapes_splits(tmp_path, "textshapes-64x8", 2, 1, seed=0)
    assert (tmp_path / "train" / "clip_00000.mp4").read_bytes() == b"mine"


# ---------------------------------------------------------------------------------------------
# a video folder's metadata names only files inside it


def _folder_with_rows(tmp_path, file_names):
    """`tmp_path/data` with the given file_name rows; a good video at `tmp_path/secret.mp4`, outside it."""
    video = np.zeros((4, 16, 16, 3), np.uint8)
    write_video(tmp_path / "secret.mp4", video)
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    write_video(folder / "sub" / "inside.mp4", video)
    with open(folder / "metadata.jsonl", "w") as handle:
        for file_name in file_names:
            handle.write(json.dumps({"file_name": file_name, "text": "a caption"}) + "\n")
    return folder


@pytest.mark.parametrize("check_files", [True, False])
def test_metadata_cannot_name_files_outside_the_folder(tmp_path, check_files):
    folder = _folder_with_rows(tmp_path, [])
    (folder / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    for file_name in ["../secret.mp4", str(tmp_path / "secret.mp4"), "link.mp4", "sub/../../secret.mp4"]:
        with open(folder / "metadata.jsonl", "w") as handle:
            for name in ["sub/inside.mp4", file_name]:
                handle.write(json.dumps({"file_name": name, "text": "a caption"}) + "\n")
        message = f"metadata row 2 has file_name '{file_name}', which resolves to {tmp_path / 'secret.mp4'}, outside"
        with pytest.raises(VideoFolderError, match=message):
            load_video_folder(folder, num_frames=4, resolution=16, check_files=check_files, on_bad_file="skip")


def test_a_link_made_outward_after_loading_is_not_read(tmp_path):
    # subfolders and links that stay inside the folder are fine
    folder = _folder_with_rows(tmp_path, ["sub/inside.mp4", "sub/./inside.mp4", "link.mp4"])
    (folder / "link.mp4").symlink_to(folder / "sub" / "inside.mp4")
    dataset = load_video_folder(folder, num_frames=4, resolution=16)
    assert [tuple(row["frames"].shape) for row in dataset] == [(4, 3, 16, 16)] * 3
    os.remove(folder / "link.mp4")
    (folder / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    with pytest.raises(VideoFolderError, match="file_name 'link.mp4', which resolves to .*secret.mp4, outside"):
        dataset[2]


# ---------------------------------------------------------------------------------------------
# memory limit on decoding


def test_read_video_refuses_frames_over_the_memory_limit(tmp_path):
    path = write_video(tmp_path / "clip.mp4", np.zeros((6, 32, 48, 3), np.uint8))
    two_frames = (2 * 2 + 4) * 32 * 48 * 3  # 36,864 bytes
    assert read_video(path, num_frames=2, max_decoded_bytes=two_frames).shape == (2, 32, 48, 3)
    assert read_video(path, indices=[0, 5], max_decoded_bytes=two_frames).shape == (2, 32, 48, 3)
    message = r"clip.mp4: decoding 3 frame\(s\) of 48x32 would take about 46,080 bytes .* over the limit of 36,864"
    with pytest.raises(VideoTooLargeError, match=message):
        read_video(path, num_frames=3, max_decoded_bytes=two_frames)
    with pytest.raises(VideoTooLargeError, match=r"decoding 6 frame\(s\) of 48x32 .* 36,864 bytes"):
        read_video(path, max_decoded_bytes=two_frames)  # all frames
    assert read_video(path, max_decoded_bytes=None).shape == (6, 32, 48, 3)


def test_the_limit_is_checked_before_the_decoder_is_opened(tmp_path, monkeypatch):
    import decord

    path = write_video(tmp_path / "clip.mp4", np.zeros((4, 32, 32, 3), np.uint8))

    def no_decoding(*args, **kwargs):
        raise AssertionError("the decoder was opened")

    monkeypatch.setattr(decord, "VideoReader", no_decoding)
    for frames in ({"num_frames": 2}, {"indices": [0, 1]}, {}):
        with pytest.raises(VideoTooLargeError, match="32x32"):
            read_video(path, max_decoded_bytes=1000, **frames)


def test_video_folder_lists_videos_over_the_memory_limit(tmp_path):
    folder = tmp_path / "data"
    write_video(folder / "small.mp4", np.zeros((4, 16, 16, 3), np.uint8))
    write_video(folder / "large.mp4", np.zeros((4, 32, 32, 3), np.uint8))
    rows = [{"file_name": "small.mp4", "text": "a"}, {"file_name": "large.mp4", "text": "b"}]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    limit = decoded_bytes(4, 16, 16)
    with pytest.raises(VideoFolderError, match=r"1 unusable video\(s\): large.mp4: .*of 32x32 .* over the limit"):
        load_video_folder(folder, num_frames=4, resolution=16, max_decoded_bytes=limit)
    dataset = load_video_folder(folder, num_frames=4, resolution=16, on_bad_file="skip", max_decoded_bytes=limit)
    assert dataset["file_name"] == ["small.mp4"]
    dataset = load_video_folder(folder, num_frames=4, resolution=16, check_files=False, max_decoded_bytes=limit)
    with pytest.raises(VideoTooLargeError, match="large.mp4"):
        dataset[1]
