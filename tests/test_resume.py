"""Training is resumable and reproducible: a run resumed from a checkpoint logs the same losses and ends with the
same weights (p_t and the T-VQ codebook included) as the run that was never stopped, and two runs with the same
seed are identical. (Completions with the same `torch.Generator` seed are checked in test_mmvg.py,
`test_completion_keeps_given_frames_exactly_and_is_reproducible`.)"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from transformers_mmvg.training_runs import train_mmvg as run_mmvg_training
from transformers_mmvg.training_runs import train_tvq as run_tvq_training
from test_trainer_mmvg import TINY_MMVG
from test_trainer_tvq import TINY

# p_t moves visibly in a few steps (alpha 0.01 by default), so comparing it says something
MMVG_OVERRIDES = json.dumps({**TINY_MMVG, "mask_probability_alpha": 0.5})
COMMON = ["--num_train_clips", "8", "--num_eval_clips", "4", "--per_device_train_batch_size", "4",
          "--per_device_eval_batch_size", "4", "--learning_rate", "1e-3", "--warmup_steps", "0",
          "--logging_steps", "1", "--save_steps", "3", "--disable_tqdm", "True", "--seed", "7"]  # fmt: skip



@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("textshapes")  # written by the first run, read by the others


def train_mmvg(output_dir: Path, tvq_dir: Path, data_dir: Path, *extra: str) -> None:
    run_mmvg_training(
        COMMON + ["--tvq_path", str(tvq_dir), "--data_dir", str(data_dir), "--output_dir", str(output_dir),
                  "--num_completion_eval_clips", "0", "--config_overrides", MMVG_OVERRIDES, *extra]
    )  # fmt: skip


def step_logs(output_dir: Path) -> dict[int, dict]:
    """The training log of every step (loss, grad norm, learning rate, every L_t and p_t), by step."""
    entries = [json.loads(line) for line in (output_dir / "train_log.jsonl").read_text().splitlines()]
    return {entry["step"]: entry for entry in entries if "loss" in entry}


def assert_same_weights(first: Path, second: Path) -> None:
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, different


def test_resumed_mmvg_run_matches_the_uninterrupted_one(tmp_path, tvq_dir, data_dir):
    train_mmvg(tmp_path / "full", tvq_dir, data_dir, "--max_steps", "6")
    checkpoint = tmp_path / "full" / "checkpoint-3"
    train_mmvg(tmp_path / "resumed", tvq_dir, data_dir, "--max_steps", "6", "--resume_from_checkpoint", str(checkpoint))

    full, resumed = step_logs(tmp_path / "full"), step_logs(tmp_path / "resumed")
    assert sorted(full) == sorted(resumed) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert resumed[step] == full[step], step
    p_t = load_file(tmp_path / "full" / "model.safetensors")["mask_probabilities"]
    assert not torch.allclose(p_t, torch.full_like(p_t, 0.6))  # p_t moved, so its match below means something
    assert_same_weights(tmp_path / "full", tmp_path / "resumed")


def test_two_mmvg_runs_with_the_same_seed_are_identical(tmp_path, tvq_dir, data_dir):
    train_mmvg(tmp_path / "first", tvq_dir, data_dir, "--max_steps", "3", "--save_strategy", "no")
    train_mmvg(tmp_path / "second", tvq_dir, data_dir, "--max_steps", "3", "--save_strategy", "no")
    assert step_logs(tmp_path / "first") == step_logs(tmp_path / "second")
    assert_same_weights(tmp_path / "first", tmp_path / "second")
    # another training seed on the same data (data seed = seed + offset = 7): only the step's draws differ
    train_mmvg(tmp_path / "other", tvq_dir, data_dir, "--max_steps", "3", "--save_strategy", "no", "--seed", "8",
               "--data_seed_offset", "-1")  # fmt: skip
    assert step_logs(tmp_path / "other")[1]["loss"] != step_logs(tmp_path / "first")[1]["loss"]


def train_tvq(output_dir: Path, max_steps: int, overrides: dict, *extra: str) -> list[dict]:
    """A tiny T-VQ run saving every 3 steps; the log of every step (loss and every term)."""
    run_tvq_training(COMMON + ["--output_dir", str(output_dir), "--max_steps", str(max_steps), "--save_strategy", "steps",
                           "--config_overrides", json.dumps(overrides), *extra])  # fmt: skip
    return json.loads((output_dir / f"checkpoint-{max_steps}" / "trainer_state.json").read_text())["log_history"]


def test_resumed_tvq_run_matches_the_uninterrupted_one(tmp_path):
    full = train_tvq(tmp_path / "full", 4, TINY)
    resumed = train_tvq(tmp_path / "resumed", 4, TINY, "--resume_from_checkpoint", str(tmp_path / "full" / "checkpoint-3"))
    assert [entry["step"] for entry in resumed] == [1, 2, 3, 4]
    assert resumed[3] == full[3]  # step 4: the loss and every term (codebook perplexity among them)
    assert_same_weights(tmp_path / "full", tmp_path / "resumed")


def test_resumed_tvq_run_restarts_the_same_dead_codes(tmp_path):
    """With codes restarted after 2 unused steps, a resumed run restarts the codes the uninterrupted one does only if
    the unused-step counters came back from the checkpoint: several steps after resuming are compared."""
    overrides = {**TINY, "dead_code_restart_steps": 2}
    full = train_tvq(tmp_path / "full", 9, overrides, "--save_total_limit", "3")
    counters = load_file(tmp_path / "full" / "checkpoint-3" / "model.safetensors")["quantizer.steps_since_used"]
    assert counters.max() >= 1  # codes part-way to a restart when the checkpoint was written
    resumed = train_tvq(tmp_path / "resumed", 9, overrides,
                        "--resume_from_checkpoint", str(tmp_path / "full" / "checkpoint-3"))
    assert [entry["step"] for entry in resumed] == list(range(1, 10))
    assert resumed[3:] == full[3:]  # steps 4 to 9
    assert_same_weights(tmp_path / "full", tmp_path / "resumed")
