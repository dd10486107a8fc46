"""What the hardware does fast: whether bf16 matrix products run on matrix units here.

bf16 autocast is a speed-up only where the processor multiplies bf16 matrices natively: on CUDA GPUs of compute
capability 8 and above, and on x86 CPUs with AMX (`amx_bf16`) or AVX-512 BF16 (`avx512_bf16`). Elsewhere torch falls
back to a scalar kernel: on an AVX2-only AMD EPYC (2 threads, torch 2.14) a 2048 x 2048 bf16 matmul ran at
0.3 GFLOP/s against 147 GFLOP/s in fp32, and an MMVG training step took 18 s instead of 1 s
(`benchmarks/run.py --only efficiency` measures both dtypes on the machine it runs on).
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["BF16_CPU_FLAGS", "bf16_is_fast", "cpu_flags"]

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
"""/proc/cpuinfo flags of x86 CPUs that multiply bf16 matrices natively, fastest first."""


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The feature flags of the first processor in `cpuinfo` (empty where there is no such file)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def bf16_is_fast(device: torch.device | str | None = None, cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether bf16 matrix products run natively (faster than fp32) on `device` (default: the CPU)."""
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return bool(cpu_flags(cpuinfo) & set(BF16_CPU_FLAGS))
    return True  # other accelerators (MPS, XPU, ...): their own bf16 support decides; not second-guessed here
