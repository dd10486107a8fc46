"""The README's main command, on a handful of clips: with tiny models, and with the committed checkpoints."""

import json

import pytest
import torch
from PIL import Image

from transformers_mmvg import MMVGForVideoCompletion, MMVGProcessor, MMVGVideoProcessor, TVQConfig, TVQModel, demo
from transformers_mmvg.data import textcam
from transformers_mmvg.data.textshapes import ClipParams, draw_clip_params, training_data_record
from transformers_mmvg.evaluation import METHODS
from transformers_mmvg.masking import TASKS
from transformers_mmvg.training_runs import write_training_data_record


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    tvq = TVQModel(TVQConfig(image_size=64, hidden_channels=8, channel_multipliers=[1, 2, 2, 2, 2],
                             latent_channels=16, num_groups=4, codebook_size=32, codebook_dim=4,
                             use_temporal_loss=False))
    tvq.save_pretrained(folder / "tvq")
    mmvg = MMVGForVideoCompletion.from_tvq(tvq, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                                           num_encoder_layers=1, num_decoder_layers=2, text_embedding_size=8)
    mmvg.save_pretrained(folder / "mmvg")
    MMVGProcessor().save_pretrained(folder / "mmvg")
    # as if trained on the first 50 clips of seed 2: the very seed the demo's held-out clips are drawn with
    write_training_data_record(folder / "mmvg", training_data_record("textshapes-64x8", num_clips=50, seed=2))
    # the same tiny model as a TextCam one: photos framed as TextCam's start window, trained on two other photos
    mmvg.save_pretrained(folder / "mmvg-textcam")
    MMVGProcessor(video_processor=MMVGVideoProcessor(photo_crop_fraction=0.5)).save_pretrained(folder / "mmvg-textcam")
    write_training_data_record(folder / "mmvg-textcam", {"dataset": "textcam", "photos": ["brick.png", "coins.png"]})
    return folder


def tiny_args(folder, *extra):
    return ["--tvq", str(folder / "tvq"), "--mmvg", str(folder / "mmvg"), "--textcam-mmvg",
            str(folder / "mmvg-textcam"), *extra]


@pytest.mark.filterwarnings("ignore:.*tvq has no TextShapes training_data.json")
def test_demo_completes_held_out_clips_of_both_domains_and_writes_every_artifact(tmp_path, tiny_checkpoints, capsys):
    code = demo.main(["--out", str(tmp_path), "--num-test", "6", *tiny_args(tiny_checkpoints),
                      "--num-inference-steps", "2"])
    assert code == 0
    folder = tmp_path / "data" / "textshapes-test"
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    training = draw_clip_params(50, seed=2)
    held_out = [ClipParams(row["shape"], row["color"], row["directions"], row["x0"], row["y0"]) for row in rows]
    assert not set(held_out) & set(training)  # the first draws of seed 2 were training clips: all left out
    assert held_out == draw_clip_params(6, seed=2, exclude=training)
    assert not (tmp_path / "tvq").exists() and not (tmp_path / "mmvg").exists()  # checkpoints are read in place
    shapes = json.loads((tmp_path / "textshapes" / "metrics.json").read_text())["results"]
    assert set(shapes) == set(TASKS)
    assert set(shapes["infilling"]) == set(METHODS) - {"camera_warp"}  # a TextCam baseline
    assert shapes["prediction"]["copy_frame"]["caption_following"] == 0.0

    # TextCam: clips of the held-out photos only, scored by the camera-motion check
    rows = [json.loads(line) for line in (tmp_path / "data" / "textcam-test" / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {row["photo"] for row in rows} <= set(textcam.DEFAULT_HELD_OUT_PHOTOS)
    cam = json.loads((tmp_path / "textcam" / "metrics.json").read_text())["results"]
    assert set(cam["prediction"]) == set(METHODS) - {"linear_blend"}
    assert set(cam["infilling"]) == set(METHODS)
    assert cam["prediction"]["copy_frame"]["caption_following"] == 0.0  # a still camera follows no caption
    assert cam["prediction"]["camera_warp"]["caption_following"] == 1.0  # it reads the caption
    assert cam["infilling"]["mmvg"]["num_clips"] == sum(len(row["motions"]) == 2 for row in rows)

    printed = capsys.readouterr().out
    assert "| prediction | mmvg | 6 |" in printed and "| infilling | linear_blend |" in printed
    assert "| rewind | camera_warp | 6 |" in printed
    for domain in demo.DOMAINS:
        for task in TASKS:
            assert Image.open(tmp_path / domain / f"{task}.gif").n_frames == 8
        assert (tmp_path / domain / "grid.png").is_file() and (tmp_path / domain / "results.md").is_file()
    photo = Image.open(tmp_path / "textcam" / "photo.gif")
    assert photo.n_frames == 8 and photo.size == (256, 256)  # 64 px frames, shown 4x
    report = (tmp_path / "results.md").read_text()
    assert "## TextShapes: 6 held-out clips" in report and "## TextCam: 6 held-out clips" in report


def test_demo_refuses_a_textcam_model_trained_on_the_held_out_photos(tmp_path, tiny_checkpoints):
    model = tmp_path / "seen"
    MMVGForVideoCompletion.from_pretrained(tiny_checkpoints / "mmvg-textcam").save_pretrained(model)
    MMVGProcessor.from_pretrained(tiny_checkpoints / "mmvg-textcam").save_pretrained(model)
    write_training_data_record(model, {"dataset": "textcam", "photos": ["brick.png", "chelsea.png"]})
    with pytest.raises(ValueError, match=r"trained on \['chelsea.png'\]"):
        demo.main(["--out", str(tmp_path / "out"), "--num-test", "2", "--domains", "textcam", "--textcam-mmvg",
                   str(model)])


@pytest.mark.parametrize("argv", [["--domains", "textcam,faces"], ["--domains", ""], ["--num-test", "0"]])
def test_demo_refuses_bad_arguments_before_writing_anything(tmp_path, argv):
    with pytest.raises(SystemExit):
        demo.main(["--out", str(tmp_path / "out"), *argv])
    assert not (tmp_path / "out").exists()


def test_demo_names_a_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="--from-scratch"):
        demo.main(["--out", str(tmp_path), "--num-test", "2", "--domains", "textshapes", "--mmvg",
                   str(tmp_path / "nowhere")])
    with pytest.raises(FileNotFoundError, match="--textcam-mmvg"):
        demo.main(["--out", str(tmp_path), "--num-test", "2", "--textcam-mmvg", str(tmp_path / "nowhere")])


def test_from_scratch_trains_with_the_commands_of_the_committed_checkpoints(tmp_path, monkeypatch):
    """`--from-scratch` runs the package's training functions (no path into the repository's examples/) with the
    arguments `checkpoints/README.md` records, T-VQ first, MMVG on that T-VQ."""
    calls = []
    monkeypatch.setattr(demo, "train_tvq", lambda argv: calls.append(("tvq", argv)))
    monkeypatch.setattr(demo, "train_mmvg", lambda argv: calls.append(("mmvg", argv)))
    demo.prepare_models(tmp_path, from_scratch=True, tvq_source=tmp_path / "unused", mmvg_source=tmp_path / "unused")
    assert calls == [
        ("tvq", ["--output_dir", str(tmp_path / "tvq"), "--num_train_clips", "2000", "--num_eval_clips", "200",
                 "--save_strategy", "no"]),
        ("mmvg", ["--tvq_path", str(tmp_path / "tvq"), "--output_dir", str(tmp_path / "mmvg"), "--data_dir",
                  str(tmp_path / "data"), *demo.MMVG_TRAINING_ARGS, "--save_strategy", "no"]),
    ]  # fmt: skip
    assert demo.MMVG_TRAINING_ARGS[:10] == ["--num_train_clips", "10000", "--num_eval_clips", "200", "--max_steps",
                                           "5000", "--learning_rate", "5e-4", "--eval_strategy", "steps"]


def test_demo_never_deletes_or_overwrites_the_users_folders(tmp_path, tiny_checkpoints):
    """Issue 14, item 1: `--out X --tvq X/tvq --mmvg X/mmvg` used to delete both checkpoints, `--out ~` the user's
    `~/tvq` and `~/mmvg`. Checkpoints are now read in place, and a non-empty --out the demo did not make is refused."""
    home = tmp_path / "home"
    (home / "tvq").mkdir(parents=True)
    (home / "tvq" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not made by the demo"):
        demo.main(["--out", str(home), "--num-test", "2", *tiny_args(tiny_checkpoints)])
    assert (home / "tvq" / "notes.txt").read_text() == "mine" and sorted(p.name for p in home.iterdir()) == ["tvq"]

    # the checkpoints inside the output folder itself: used where they are, never removed or rewritten
    before = {path: path.read_bytes() for path in tiny_checkpoints.rglob("*") if path.is_file()}
    (tiny_checkpoints / demo.DEMO_MARKER).write_text("")  # as if an earlier demo run wrote here
    code = demo.main(["--out", str(tiny_checkpoints), "--num-test", "6", "--domains", "textshapes",
                      *tiny_args(tiny_checkpoints), "--num-inference-steps", "1"])
    assert code == 0
    assert all(path.read_bytes() == data for path, data in before.items())

    # training from scratch into a folder that already holds a model: refused, nothing touched
    with pytest.raises(FileExistsError, match="does not delete it"):
        demo.prepare_models(tiny_checkpoints, from_scratch=True, tvq_source=tmp_path, mmvg_source=tmp_path)
    assert all(path.read_bytes() == data for path, data in before.items())
