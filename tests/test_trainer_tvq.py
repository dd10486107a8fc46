"""T-VQ under the transformers Trainer: the GAN step, logging, evaluation, checkpoints and resuming."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, TrainerCallback, TrainingArguments

from transformers_mmvg import MMVGVideoProcessor, TVQConfig, TVQModel
from transformers_mmvg.data.textshapes import write_textshapes
from transformers_mmvg.data.video_folder import load_video_folder
from transformers_mmvg.losses_tvq import RandomConvFeatures
from transformers_mmvg.training_runs import train_tvq
from transformers_mmvg.trainer_tvq import (
    DISCRIMINATOR_FILE,
    TVQDataCollator,
    TVQTrainer,
    evaluate_tvq,
    random_frame_subsets,
    temporal_order_accuracy,
)

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(
    image_size=64,
    hidden_channels=8,
    channel_multipliers=[1, 2, 2, 2],
    latent_channels=16,
    num_groups=4,
    codebook_size=32,
    codebook_dim=4,
    temporal_hidden_size=16,
)


@pytest.fixture(scope="module")
def textshapes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("textshapes")
    write_textshapes(folder, num_clips=8, seed=5, num_workers=1)
    return load_video_folder(folder, num_frames=8, resolution=64)


def make_trainer(output_dir, dataset, max_steps, perceptual_network=None, **config):
    torch.manual_seed(0)
    model = TVQModel(TVQConfig(**{**TINY, **config}))
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        max_steps=max_steps,
        learning_rate=1e-3,
        logging_steps=1,
        save_steps=1,
        use_cpu=True,
        report_to="none",
        remove_unused_columns=False,
        disable_tqdm=True,
        seed=0,
        data_seed=0,
    )
    collator = TVQDataCollator(MMVGVideoProcessor())
    return TVQTrainer(
        model=model, args=args, train_dataset=dataset, eval_dataset=dataset, data_collator=collator,
        perceptual_network=perceptual_network,
    )  # fmt: skip


def test_gan_training_logs_every_term_and_checkpoints_the_discriminator(textshapes, tmp_path):
    trainer = make_trainer(tmp_path, textshapes, max_steps=2, use_adversarial_loss=True, discriminator_start_step=1)
    before = [p.detach().clone() for p in trainer.discriminator.parameters()]
    trainer.train()
    logs = trainer.state.log_history
    # step 1 (global_step 0 during the step) is before discriminator_start_step; step 2 runs the GAN
    assert "adversarial_loss" not in logs[0] and "discriminator_loss" not in logs[0]
    for term in ("l1_loss", "codebook_loss", "commitment_loss", "perceptual_loss", "temporal_loss", "codebook_perplexity"):
        assert np.isfinite(logs[0][term]) and np.isfinite(logs[1][term])
    assert np.isfinite(logs[1]["adversarial_loss"]) and np.isfinite(logs[1]["discriminator_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.discriminator.parameters()))
    saved = torch.load(tmp_path / "checkpoint-2" / DISCRIMINATOR_FILE, weights_only=True)
    for name, value in trainer.discriminator.state_dict().items():
        assert torch.equal(saved["discriminator"][name], value)
    assert saved["optimizer"]["state"]  # Adam moments were saved too


def test_resuming_restores_the_discriminator(textshapes, tmp_path):
    make_trainer(tmp_path, textshapes, max_steps=1, use_adversarial_loss=True, discriminator_start_step=0).train()
    checkpoint = torch.load(tmp_path / "checkpoint-1" / DISCRIMINATOR_FILE, weights_only=True)
    resumed = make_trainer(tmp_path, textshapes, max_steps=2, use_adversarial_loss=True, discriminator_start_step=0)
    assert any(not torch.equal(checkpoint["discriminator"][k], v) for k, v in resumed.discriminator.state_dict().items())
    seen = {}

    class SnapshotDiscriminator(TrainerCallback):  # the discriminator as the first resumed step begins
        def on_step_begin(self, args, state, control, **kwargs):
            seen.setdefault("step", state.global_step)
            seen.setdefault("state", {k: v.clone() for k, v in resumed.discriminator.state_dict().items()})

    resumed.add_callback(SnapshotDiscriminator())
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))
    assert seen["step"] == 1
    for name, value in seen["state"].items():
        assert torch.equal(checkpoint["discriminator"][name], value)
    # a checkpoint without a discriminator cannot silently resume a GAN run
    (tmp_path / "checkpoint-1" / DISCRIMINATOR_FILE).unlink()
    again = make_trainer(tmp_path, textshapes, max_steps=2, use_adversarial_loss=True, discriminator_start_step=0)
    with pytest.raises(FileNotFoundError, match=DISCRIMINATOR_FILE):
        again.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))


def test_evaluate_reports_stage_one_metrics_and_the_model_reloads(textshapes, tmp_path):
    trainer = make_trainer(tmp_path, textshapes, max_steps=1)
    assert trainer.discriminator is None  # adversarial loss off: no discriminator
    trainer.train()
    metrics = trainer.evaluate()
    for name in ("psnr", "ssim", "codebook_usage", "codebook_perplexity", "temporal_order_accuracy", "l1_loss"):
        assert np.isfinite(metrics[f"eval_{name}"])
    assert 0 < metrics["eval_codebook_usage"] <= 1
    trainer.save_model(str(tmp_path / "final"))
    reloaded = AutoModel.from_pretrained(tmp_path / "final")
    assert isinstance(reloaded, TVQModel)
    loader = torch.utils.data.DataLoader(textshapes, batch_size=4, collate_fn=trainer.data_collator)
    again = evaluate_tvq(reloaded, loader, trainer.data_collator.video_processor, show_progress=False)
    assert again["psnr"] == pytest.approx(metrics["eval_psnr"])
    assert again["codebook_usage"] == metrics["eval_codebook_usage"]
    assert json.loads((tmp_path / "final" / "config.json").read_text())["model_type"] == "tvq"


def test_the_trainer_holds_the_perceptual_network_it_is_given(textshapes, tmp_path):
    built = make_trainer(tmp_path, textshapes, max_steps=1)
    assert isinstance(built.perceptual_network, RandomConvFeatures)  # from the config: F is the trainer's, not the model's
    assert not any(p.requires_grad for p in built.perceptual_network.parameters())
    assert make_trainer(tmp_path, textshapes, max_steps=1, use_perceptual_loss=False).perceptual_network is None

    trainer = make_trainer(tmp_path, textshapes, max_steps=1, perceptual_network=lambda images: [images])
    trainer.train()  # F = identity: the perceptual term is the pixel L1, in training and in evaluation
    assert trainer.state.log_history[0]["perceptual_loss"] == pytest.approx(trainer.state.log_history[0]["l1_loss"])
    metrics = trainer.evaluate()
    assert metrics["eval_perceptual_loss"] == pytest.approx(metrics["eval_l1_loss"])


def test_temporal_order_accuracy_counts_every_ordered_pair():
    model = TVQModel(TVQConfig(**TINY)).eval()

    class FirstMinusSecond(torch.nn.Module):  # says "i < j" exactly when z_i's first value is the smaller
        def forward(self, first, second):
            return second.flatten(1)[:, 0] - first.flatten(1)[:, 0]

    model.temporal_head = FirstMinusSecond()
    latents = torch.arange(3.0).reshape(1, 3, 1, 1, 1).expand(2, 3, 4, 4, 4).clone()  # frame t holds the value t
    assert temporal_order_accuracy(model, latents) == (12, 12)  # 2 clips x 6 ordered pairs
    assert temporal_order_accuracy(model, latents.flip(1)) == (0, 12)


def test_run_tvq_script_end_to_end(tmp_path):
    metrics = train_tvq(
        ["--output_dir", str(tmp_path), "--num_train_clips", "8", "--num_eval_clips", "4", "--max_steps", "2",
         "--logging_steps", "1", "--disable_tqdm", "True", "--save_strategy", "no", "--config_overrides",
         json.dumps(TINY)]
    )  # fmt: skip
    assert metrics["train_steps"] == 2
    assert metrics["bits_per_pixel"] == 8 * 8 * 5 / (64 * 64)  # 8x8 tokens of 32 codes (5 bits)
    # the output folder is a complete checkpoint folder: everything the committed one holds, and the training log
    committed = ROOT / "checkpoints" / "tvq-textshapes-64x8"
    written = {path.name for path in tmp_path.iterdir()}
    assert {path.name for path in committed.iterdir()} <= written
    assert {"train_log.jsonl", "training_data.json", "reconstructions.png"} <= written
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log if "loss" in entry] == [1, 2]
    assert log[-1]["eval_codebook_usage"] == metrics["eval_codebook_usage"] > 0
    assert json.loads((tmp_path / "training_data.json").read_text()) == {
        "dataset": "textshapes", "preset": "textshapes-64x8", "num_clips": 8, "seed": 42}
    assert isinstance(AutoModel.from_pretrained(tmp_path), TVQModel)


def test_random_frame_subsets_keep_each_clips_frames_in_order():
    # frame t of clip b holds the value 10 * b + t
    clips = (10 * torch.arange(3.0)[:, None] + torch.arange(8.0)).view(3, 8, 1, 1, 1).expand(3, 8, 3, 2, 2)
    torch.manual_seed(0)
    subsets = random_frame_subsets(clips, 2)
    assert subsets.shape == (3, 2, 3, 2, 2)
    values = subsets[:, :, 0, 0, 0]
    assert (values[:, 0] < values[:, 1]).all()  # two distinct frames, in their order
    assert torch.equal(values // 10, torch.arange(3.0)[:, None].expand(3, 2))  # each from its own clip
    torch.manual_seed(0)
    assert torch.equal(random_frame_subsets(clips, 2), subsets)  # drawn from the global RNG
    assert random_frame_subsets(clips, 8) is clips


def square_clip_rows(num_clips: int, seed: int, num_frames: int = 8, size: int = 64, square: int = 12) -> list[dict]:
    """Rows `{"frames": uint8 (T, 3, size, size)}`: one coloured square moving right 4 px a frame on black, drawn from
    a seeded generator (in memory, so no video codec stands between the seed and the pixels)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(num_clips):
        frames = torch.zeros(num_frames, 3, size, size, dtype=torch.uint8)
        x, y = (int(value) for value in torch.randint(size - square - 4 * num_frames, (2,), generator=generator))
        color = torch.randint(64, 256, (3, 1, 1), generator=generator, dtype=torch.uint8)
        for t in range(num_frames):
            frames[t, :, y : y + square, x + 4 * t : x + 4 * t + square] = color
        rows.append({"frames": frames})
    return rows


# the logs of `test_gan_training_losses_are_those_of_the_vqgan_objective`, recorded at ce6fbe1, when the model's forward
# still computed the perceptual and adversarial terms (issue 13 moved them to the trainer)
PINNED_GAN_LOGS = [
    {"loss": 2.5245864391326904, "l1_loss": 1.08899, "l2_loss": 1.3105, "codebook_loss": 0.0051,
     "commitment_loss": 0.0051, "perceptual_loss": 0.52004, "temporal_loss": 0.66722, "temporal_accuracy": 0.6875,
     "codebook_perplexity": 20.86274},
    {"loss": 1.5885523557662964, "l1_loss": 0.82376, "l2_loss": 0.81127, "codebook_loss": 0.02017,
     "commitment_loss": 0.02017, "perceptual_loss": 0.36952, "adversarial_loss": -1.35054, "adversarial_weight": 0.13331,
     "temporal_loss": 0.71393, "temporal_accuracy": 0.4375, "codebook_perplexity": 18.42622,
     "discriminator_loss": 1.21858},
    {"loss": 2.1940195560455322, "l1_loss": 0.77102, "l2_loss": 0.71076, "codebook_loss": 0.02221,
     "commitment_loss": 0.02221, "perceptual_loss": 0.33407, "adversarial_loss": 7.44482, "adversarial_weight": 0.07878,
     "temporal_loss": 0.64589, "temporal_accuracy": 0.75, "codebook_perplexity": 12.64476,
     "discriminator_loss": 3.68201},
]  # fmt: skip


def test_gan_training_losses_are_those_of_the_vqgan_objective(tmp_path):
    """Three steps with every term on (perceptual, adaptive-weighted hinge from step 2, discriminator step, frame
    subsets): the loss and every logged term are the recorded ones (float tolerance: thread counts and CPUs change
    the last digits; the adaptive weight, a ratio of two gradient norms, by up to a few 1e-4 of itself)."""
    torch.manual_seed(0)
    model = TVQModel(TVQConfig(**TINY, use_adversarial_loss=True, discriminator_start_step=1))
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=3, learning_rate=1e-3, logging_steps=1,
        save_strategy="no", use_cpu=True, report_to="none", remove_unused_columns=False, disable_tqdm=True, seed=0,
        data_seed=0,
    )  # fmt: skip
    trainer = TVQTrainer(
        model=model, args=args, train_dataset=square_clip_rows(8, seed=1),
        data_collator=TVQDataCollator(MMVGVideoProcessor()), train_frames_per_clip=2,
    )  # fmt: skip
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == len(PINNED_GAN_LOGS)
    for logged, pinned in zip(logs, PINNED_GAN_LOGS):
        weight = {name: logged[name] for name in pinned if name == "adversarial_weight"}
        assert weight == pytest.approx({name: pinned[name] for name in weight}, rel=1e-3)
        assert {name: logged[name] for name in pinned if name not in weight} == pytest.approx(
            {name: value for name, value in pinned.items() if name not in weight}, rel=1e-4, abs=1e-5
        )
        assert ("adversarial_loss" in logged) == ("adversarial_loss" in pinned)


@pytest.mark.parametrize("script, flag", [("run_tvq.py", "--train_frames_per_clip"), ("run_mmvg.py", "--tvq_path")])
def test_example_scripts_are_the_command_lines_of_the_training_functions(script, flag, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "examples" / script), run_name="__main__")
    assert exit_info.value.code == 0
    assert flag in capsys.readouterr().out  # the package function's arguments, parsed from the command line
