"""`hardware.bf16_is_fast` reads the CPU's bf16 matrix units from /proc/cpuinfo, and `--bf16` where they are missing
is warned about before training starts (issue 15: on an AVX2-only CPU bf16 autocast made a training step 18x
slower)."""

import logging
from types import SimpleNamespace

import pytest
import torch

from transformers_mmvg import training_runs
from transformers_mmvg.hardware import bf16_is_fast, cpu_flags

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\nprocessor\t: 1\nflags\t\t: fpu sse2 avx avx2 fma\n"


@pytest.mark.parametrize(
    "flags, fast",
    [("fpu sse2 avx avx2 fma", False), ("avx2 avx512f avx512_bf16", True), ("avx2 avx512f amx_tile amx_bf16", True),
     ("avx2 avx512f avx512_vnni", False)],
)
def test_bf16_is_fast_only_with_native_bf16_matrix_products(tmp_path, flags, fast):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n")
    assert cpu_flags(cpuinfo) == set(flags.split())
    assert bf16_is_fast("cpu", cpuinfo) is fast


def test_no_cpuinfo_means_no_claim_of_fast_bf16(tmp_path):
    assert cpu_flags(tmp_path / "missing") == set()
    assert bf16_is_fast(None, tmp_path / "missing") is False


def test_bf16_training_on_a_cpu_without_bf16_units_is_warned_about(tmp_path, monkeypatch, caplog):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(AVX2_ONLY)
    monkeypatch.setattr(training_runs, "bf16_is_fast", lambda device: bf16_is_fast(device, cpuinfo))
    with caplog.at_level(logging.WARNING, logger=training_runs.__name__):
        training_runs._warn_about_slow_bf16(SimpleNamespace(bf16=False, device=torch.device("cpu")))
        assert caplog.records == []
        training_runs._warn_about_slow_bf16(SimpleNamespace(bf16=True, device=torch.device("cpu")))
    assert len(caplog.records) == 1
    assert "--bf16 on cpu, which has no native bf16 matrix products" in caplog.records[0].getMessage()
