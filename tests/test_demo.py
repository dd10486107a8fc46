"""The README's main command, on a handful of clips: with tiny models, and with the committed checkpoints."""

import json

import pytest
import torch
from PIL import Image

from transformers_mmvg import MMVGForVideoCompletion, MMVGProcessor, TVQConfig, TVQModel, demo
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
    return folder


@pytest.mark.filterwarnings("ignore:.*tvq has no TextShapes training_data.json")
def test_demo_completes_held_out_clips_and_writes_every_artifact(tmp_path, tiny_checkpoints, capsys):
    code = demo.main(["--out", str(tmp_path), "--num-test", "6", "--tvq", str(tiny_checkpoints / "tvq"),
                      "--mmvg", str(tiny_checkpoints / "mmvg"), "--num-inference-steps", "2"])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "data" / "test" / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    training = draw_clip_params(50, seed=2)
    held_out = [ClipParams(row["shape"], row["color"], row["directions"], row["x0"], row["y0"]) for row in rows]
    assert not set(held_out) & set(training)  # the first draws of seed 2 were training clips: all left out
    assert held_out == draw_clip_params(6, seed=2, exclude=training)
    assert not (tmp_path / "tvq").exists() and not (tmp_path / "mmvg").exists()  # checkpoints are read in place
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["results"]) == set(TASKS)
    assert set(metrics["results"]["infilling"]) == set(METHODS) - {"camera_warp"}  # a TextCam baseline
    assert metrics["results"]["prediction"]["copy_frame"]["caption_following"] == 0.0
    printed = capsys.readouterr().out
    assert "| prediction | mmvg | 6 |" in printed and "| infilling | linear_blend |" in printed
    for task in TASKS:
        assert Image.open(tmp_path / f"{task}.gif").n_frames == 8
    assert (tmp_path / "grid.png").is_file() and (tmp_path / "results.md").is_file()


def test_demo_names_a_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="--from-scratch"):
        demo.main(["--out", str(tmp_path), "--num-test", "2", "--mmvg", str(tmp_path / "nowhere")])


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
        demo.main(["--out", str(home), "--num-test", "2", "--tvq", str(tiny_checkpoints / "tvq"),
                   "--mmvg", str(tiny_checkpoints / "mmvg")])
    assert (home / "tvq" / "notes.txt").read_text() == "mine" and sorted(p.name for p in home.iterdir()) == ["tvq"]

    # the checkpoints inside the output folder itself: used where they are, never removed or rewritten
    before = {path: path.read_bytes() for path in tiny_checkpoints.rglob("*") if path.is_file()}
    (tiny_checkpoints / demo.DEMO_MARKER).write_text("")  # as if an earlier demo run wrote here
    code = demo.main(["--out", str(tiny_checkpoints), "--num-test", "6", "--tvq", str(tiny_checkpoints / "tvq"),
                      "--mmvg", str(tiny_checkpoints / "mmvg"), "--num-inference-steps", "1"])
    assert code == 0
    assert all(path.read_bytes() == data for path, data in before.items())

    # training from scratch into a folder that already holds a model: refused, nothing touched
    with pytest.raises(FileExistsError, match="does not delete it"):
        demo.prepare_models(tiny_checkpoints, from_scratch=True, tvq_source=tmp_path, mmvg_source=tmp_path)
    assert all(path.read_bytes() == data for path, data in before.items())
