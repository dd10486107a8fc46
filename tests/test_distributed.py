"""Both stages train under DDP: two CPU processes (gloo), started by `torchrun` and by `accelerate launch` with
`examples/accelerate_cpu_2proc.yaml`. Every process must end with the same weights, buffers included (the T-VQ
codebook, restarted from each process's own vectors and broadcast, and MMVG's p_t, updated from all-reduced L_t).
`tests/ddp_launcher.py` runs the example scripts and writes each process's state dict."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


from test_trainer_mmvg import TINY_MMVG
from test_trainer_tvq import TINY

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch",
              "--config_file", str(ROOT / "examples" / "accelerate_cpu_2proc.yaml")]  # fmt: skip
# 8 clips in global batches of 2 processes x 4 clips: one step an epoch
COMMON = ["--ddp_backend", "gloo", "--use_cpu", "True", "--num_train_clips", "8", "--num_eval_clips", "4",
          "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--max_steps", "3",
          "--learning_rate", "1e-3", "--warmup_steps", "0", "--logging_steps", "1", "--save_strategy", "no",
          "--disable_tqdm", "True"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(launcher: list[str], stage: str, output_dir: Path, *args: str) -> None:
    command = [*launcher, str(ROOT / "tests" / "ddp_launcher.py"), stage, "--output_dir", str(output_dir), *COMMON, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"


def identical_ranks(output_dir: Path) -> dict[str, torch.Tensor]:
    """Asserts that both processes trained (3 steps made 3 epochs of the 8 clips, as only 2 processes can) and
    ended with the same state dict, which is also the saved model's; returns it."""
    assert json.loads((output_dir / "eval_results.json").read_text())["epoch"] == 3.0
    rank0 = load_file(output_dir / "rank0.safetensors")
    rank1 = load_file(output_dir / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    assert [name for name in rank0 if not torch.equal(rank0[name], rank1[name])] == []
    saved = load_file(output_dir / "model.safetensors")
    assert [name for name in saved if not torch.equal(saved[name], rank0[name])] == []
    return rank0



def test_tvq_under_torchrun_keeps_processes_identical(tmp_path):
    # codes unused for one step restart from each process's own vectors: only the broadcast keeps codebooks equal
    overrides = json.dumps({**TINY, "dead_code_restart_steps": 1})
    launch(TORCHRUN + ["--master_port", str(free_port())], "tvq", tmp_path, "--config_overrides", overrides)
    state = identical_ranks(tmp_path)
    assert state["quantizer.codebook_initialized"].item() == 1  # data init ran (and was broadcast)


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_mmvg_keeps_processes_identical(launcher, tmp_path, tvq_dir):
    overrides = json.dumps({**TINY_MMVG, "mask_probability_alpha": 0.5})  # p_t moves visibly in 3 steps
    command = TORCHRUN + ["--master_port", str(free_port())] if launcher == "torchrun" else ACCELERATE
    launch(command, "mmvg", tmp_path, "--tvq_path", str(tvq_dir), "--num_completion_eval_clips", "0",
           "--config_overrides", overrides)  # fmt: skip
    p_t = identical_ranks(tmp_path)["mask_probabilities"]
    assert not torch.allclose(p_t, torch.full_like(p_t, 0.6))
