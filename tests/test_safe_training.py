"""What the training commands refuse and guarantee (issue 14): they never train into a used output folder unless told
to; a save is complete or absent, so a run stopped while saving leaves nothing that looks saved and is not, and
`--resume_from_checkpoint True` resumes from the last complete checkpoint; the Hub summary never unpickles
`training_args.bin`; and the same seed gives bit-identical gradients on several CPU threads."""

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from transformers_mmvg import MMVGVideoProcessor, TVQModel
from transformers_mmvg.hub import load_training_summary
from transformers_mmvg.trainer_tvq import TVQTrainer
from transformers_mmvg.training_runs import train_mmvg, train_tvq
from test_trainer_mmvg import TINY_MMVG
from test_trainer_tvq import TINY
from tiny_models import tiny_model

TVQ_RUN = ["--num_train_clips", "8", "--num_eval_clips", "4", "--per_device_train_batch_size", "4",
           "--per_device_eval_batch_size", "4", "--learning_rate", "1e-3", "--logging_steps", "1",
           "--disable_tqdm", "True", "--seed", "7", "--config_overrides", json.dumps(TINY)]  # fmt: skip
CHECKPOINT_FILES = {"config.json", "model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth",
                    "trainer_state.json", "training_args.bin", "video_preprocessor_config.json"}  # and the code files


def folder_contents(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


# ---------------------------------------------------------------- a used --output_dir


@pytest.mark.parametrize("stage", ["tvq", "mmvg"])
def test_training_refuses_a_used_output_dir_and_writes_nothing_into_it(stage, tmp_path, tvq_dir):
    used = tmp_path / "run"
    for step in (1, 2, 3):
        (used / f"checkpoint-{step}").mkdir(parents=True)
        (used / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"weights of step %d" % step)
    (used / "config.json").write_text("{}")
    before = folder_contents(used)
    argv = ["--output_dir", str(used), "--max_steps", "1", *TVQ_RUN]
    if stage == "mmvg":
        argv = ["--output_dir", str(used), "--tvq_path", str(tvq_dir), "--num_train_clips", "8", "--num_eval_clips",
                "4", "--max_steps", "1", "--num_completion_eval_clips", "0", "--disable_tqdm", "True",
                "--config_overrides", json.dumps(TINY_MMVG)]  # fmt: skip
    run = train_tvq if stage == "tvq" else train_mmvg
    with pytest.raises(ValueError) as error:
        run(argv)
    message = str(error.value)
    listed = "checkpoint-1, checkpoint-2, checkpoint-3, config.json"
    assert f"--output_dir {used} is not empty (it holds {listed})" in message
    assert "--overwrite_output_dir" in message and "--resume_from_checkpoint" in message
    assert folder_contents(used) == before  # not even the TextShapes data went in

    run([*argv, "--overwrite_output_dir", "True", "--save_strategy", "no"])  # when asked to, it trains there
    assert json.loads((used / "config.json").read_text())["model_type"] == stage
    assert (used / "checkpoint-3" / "model.safetensors").read_bytes() == b"weights of step 3"


def test_resume_from_checkpoint_true_needs_a_checkpoint_in_the_output_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("no checkpoint here")
    with pytest.raises(ValueError, match="--resume_from_checkpoint True resumes from the latest checkpoint-N folder"):
        train_tvq(["--output_dir", str(tmp_path), "--resume_from_checkpoint", "True", "--max_steps", "1", *TVQ_RUN])
    assert folder_contents(tmp_path) == {"notes.txt": b"no checkpoint here"}


# ---------------------------------------------------------------- saves are complete or absent


class FirstStep(TrainerCallback):
    """Records the global step a run starts from (after any checkpoint is loaded)."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.step = state.global_step


def stop_while_saving(monkeypatch, target, name: str, when) -> None:
    """`target.name(folder)` raises (as SIGTERM would stop the process) when `when(self, folder)` holds."""
    original = getattr(target, name)

    def stopping(self, folder, *args, **kwargs):
        if when(self, folder):
            raise KeyboardInterrupt(f"stopped in {name}")
        return original(self, folder, *args, **kwargs)

    monkeypatch.setattr(target, name, stopping)


def test_a_stopped_save_leaves_no_partial_checkpoint_and_resume_true_takes_the_last_complete_one(tmp_path, monkeypatch):
    run = ["--output_dir", str(tmp_path), "--max_steps", "3", "--save_strategy", "steps", "--save_steps", "1",
           "--eval_strategy", "steps", "--eval_steps", "1", "--load_best_model_at_end", "True",
           "--metric_for_best_model", "eval_psnr", *TVQ_RUN]  # fmt: skip
    # stopped after checkpoint-2's model, config and optimizer were written, before its RNG and trainer states
    with monkeypatch.context() as patch:
        stop_while_saving(patch, TVQTrainer, "_save_rng_state", lambda trainer, _: trainer.state.global_step == 2)
        with pytest.raises(KeyboardInterrupt):
            train_tvq(run)
    assert sorted(path.name for path in tmp_path.glob("checkpoint-*")) == ["checkpoint-1"]
    assert CHECKPOINT_FILES <= {path.name for path in (tmp_path / "checkpoint-1").iterdir()}

    # resumed from the latest complete checkpoint; now stopped in the final save, after the model's weights
    first_step = FirstStep()
    with monkeypatch.context() as patch:
        final_save = lambda _, folder: "checkpoint-" not in str(folder)  # noqa: E731
        stop_while_saving(patch, MMVGVideoProcessor, "save_pretrained", final_save)
        with pytest.raises(KeyboardInterrupt):
            train_tvq([*run, "--resume_from_checkpoint", "True"], callbacks=[first_step])
    assert first_step.step == 1
    assert not (tmp_path / "config.json").exists()  # no model folder whose files are not all there
    checkpoints = sorted(path.name for path in tmp_path.glob("checkpoint-*"))
    state = json.loads((tmp_path / checkpoints[-1] / "trainer_state.json").read_text())
    best = Path(state["best_model_checkpoint"])
    # rotation (--save_total_limit 2) kept the latest and the best checkpoint, which is named by its final path
    assert checkpoints[-1] == "checkpoint-3" and len(checkpoints) == 2 and best.parent == tmp_path
    assert best.name in checkpoints and best.name == f"checkpoint-{state['best_global_step']}"
    for name in checkpoints:
        assert CHECKPOINT_FILES <= {path.name for path in (tmp_path / name).iterdir()}

    # resumed from checkpoint-3: nothing left to train, the model is saved and evaluated
    first_step = FirstStep()
    train_tvq([*run, "--resume_from_checkpoint", "True"], callbacks=[first_step])
    assert first_step.step == 3
    assert isinstance(TVQModel.from_pretrained(tmp_path), TVQModel)
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".partial")]
    _, training_config = load_training_summary(tmp_path)  # the run's training_args.json
    assert training_config == {"learning_rate": 1e-3, "lr_scheduler_type": "linear", "warmup_steps": 0,
                               "weight_decay": 0.0, "per_device_train_batch_size": 4, "max_steps": 3, "seed": 7}


# ---------------------------------------------------------------- training_args.bin is never unpickled


class RunsCode:
    """A pickle that, when loaded, writes a file: what a hostile `training_args.bin` could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).write_text('ran')",)


def test_load_training_summary_never_unpickles_training_args_bin(tmp_path):
    folder, marker = tmp_path / "downloaded", tmp_path / "code-ran"
    folder.mkdir()
    (folder / "eval_results.json").write_text(json.dumps({"eval_loss": 1.5}))
    torch.save(RunsCode(marker), folder / "training_args.bin")  # a pickle, as the Trainer writes its arguments
    summary = load_training_summary(folder)
    assert not marker.exists()
    assert summary == ({"eval_loss": 1.5}, None)  # the card then says the training settings were not recorded


# ---------------------------------------------------------------- reproducible gradients


def relative_position_bias_gradients(model) -> dict[str, torch.Tensor]:
    """The gradients of one training step of `model` on fixed tokens and masks."""
    num_frames, size = model.config.num_frames, model.config.latent_size
    inputs = {"input_ids": torch.tensor([[49406, 320, 49407]] * 2),
              "video_token_ids": torch.randint(0, 32, (2, num_frames, size, size),
                                               generator=torch.Generator().manual_seed(0))}  # fmt: skip
    model.zero_grad(set_to_none=True)
    model(**model.draw_training_masks(**inputs, generator=torch.Generator().manual_seed(1))).loss.backward()
    return {name: parameter.grad.clone() for name, parameter in model.named_parameters() if parameter.grad is not None}


def test_equal_training_steps_give_bit_identical_gradients_on_two_threads():
    """The relative position bias is gathered for every (window, query, key) pair: with 16 frames in windows of 8 x 4
    x 4 tokens, enough pairs that its backward runs on both threads, where a scatter-add would sum in any order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = tiny_model(num_frames=16, window_size=[8, 4, 4], num_attention_heads=4).train()
        first = relative_position_bias_gradients(model)
        for _ in range(3):
            again = relative_position_bias_gradients(model)
            assert [name for name in first if not torch.equal(first[name], again[name])] == []
    finally:
        torch.set_num_threads(threads)
    assert first["model.decoder.layers.0.self_attn.relative_position_bias"].abs().sum() > 0

    # the bias is the table's entry at each (frame, row, column) offset, exactly
    attention = model.model.decoder.layers[0].self_attn
    with torch.no_grad():
        attention.relative_position_bias.normal_()
    coords = torch.tensor([[0, 0, 0], [1, 2, 3], [3, 1, 0]])
    bias = attention.attention_bias(coords, coords, torch.ones(3, dtype=torch.bool))  # (heads, 3, 3)
    table = attention.relative_position_bias
    assert torch.equal(bias[:, 1, 0], table[1, 2 + 3, 3 + 3])  # 1 frame back, 2 rows down, 3 columns right
    assert torch.equal(bias[:, 2, 1], table[2, -1 + 3, -3 + 3])
    assert torch.equal(bias[:, 0, 0], table[0, 3, 3])
    assert torch.isinf(bias[:, 0, 1]).all()  # a later frame is never attended
