"""Memory admission: the estimate of a request from the config, what the device has, and the refusal of requests
that cannot fit, before anything large is allocated (directly and through `complete` / training `forward`)."""

import importlib.util
from pathlib import Path

import pytest
import torch

from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion
from transformers_mmvg import memory
from transformers_mmvg.memory import (
    available_memory_bytes,
    check_memory,
    estimate_mmvg_memory_bytes,
    mmvg_parameter_counts,
)

from tiny_models import tiny_config, tiny_model

GIB = 2**30


@pytest.fixture
def available(monkeypatch):
    """Pretend the device has `set(n)` bytes free, so that the tests do not depend on the machine."""

    def set_available(num_bytes):
        monkeypatch.setattr(memory, "available_memory_bytes", lambda device=None: num_bytes)

    return set_available


def tiny_inputs(config, batch_size):
    input_ids = torch.randint(0, 1000, (batch_size, 5), generator=torch.Generator().manual_seed(0))
    pixels = torch.zeros(batch_size, config.num_frames, 3, config.image_size, config.image_size)
    return input_ids, pixels


# -- the estimate --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(use_previous_frame_input=False, num_encoder_layers=0), dict(window_size=[2, 4, 4], num_frames=5),
     dict(previous_frame_radius=1)],
)
def test_parameter_counts_match_the_model(overrides):
    model = MMVGForVideoCompletion(tiny_config(**overrides))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert mmvg_parameter_counts(model.config) == (trainable, frozen)


@pytest.mark.parametrize("training, guidance", [(False, False), (False, True), (True, False)])
def test_estimate_is_affine_in_batch_size(training, guidance):
    config = tiny_config()
    sizes = [estimate_mmvg_memory_bytes(config, batch_size, training, guidance) for batch_size in (1, 2, 3, 10)]
    step = sizes[1] - sizes[0]
    assert step > 0
    assert sizes[2] - sizes[1] == step and sizes[3] - sizes[0] == 9 * step


def test_estimate_grows_about_linearly_in_frames_and_orders_the_modes():
    def estimate(num_frames, **kwargs):
        return estimate_mmvg_memory_bytes(tiny_config(num_frames=num_frames), batch_size=64, **kwargs)

    for num_frames in (24, 48, 96):
        ratio = estimate(2 * num_frames, training=False) / estimate(num_frames, training=False)
        assert 1.7 < ratio < 2.3
    assert estimate(24, training=False) < estimate(24, training=False, guidance=True) < estimate(24, training=True)
    config = tiny_config()
    # guidance doubles the transformer's batch, not the T-VQ's
    assert estimate_mmvg_memory_bytes(config, 4, False, guidance=True) < estimate_mmvg_memory_bytes(config, 8, False)


def load_benchmarks():
    """benchmarks/common.py, whose fresh-process peak-RSS measurement the train-speed table uses."""
    path = Path(__file__).parent.parent / "benchmarks" / "common.py"
    spec = importlib.util.spec_from_file_location("benchmarks_common", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("training", [True, False])
def test_estimate_bounds_the_measured_peak_and_is_not_loose(training):
    """The estimate is an upper bound of what a request really takes (peak RSS of a fresh process above its RSS
    once the model and inputs are built; default MMVGConfig, batch 16), and at most 2.5x it: a looser bound would
    refuse requests that fit. Measured 2026-11-30: training 455 MiB vs 785 estimated, completion 218 vs 270."""
    benchmarks = load_benchmarks()
    batch_size = 16
    if training:
        measured = benchmarks._measure_in_subprocess("_mmvg_training_step", warmup=1, repeats=1, config_kwargs={},
                                                     batch_size=batch_size)
    else:
        measured = benchmarks._measure_in_subprocess("_mmvg_completion", warmup=1, repeats=1, config_kwargs={},
                                                     batch_size=batch_size, num_inference_steps=2)
    estimate = estimate_mmvg_memory_bytes(MMVGConfig(), batch_size, training=training)
    assert measured["peak_bytes"] <= estimate <= 2.5 * measured["peak_bytes"], (measured, estimate / 2**20)


def test_estimate_rejects_a_batch_of_nothing():
    with pytest.raises(ValueError, match="batch_size"):
        estimate_mmvg_memory_bytes(tiny_config(), 0, training=False)


# -- what the device has -------------------------------------------------------------------------------------------


def test_available_cpu_memory_is_positive_and_below_the_total():
    total = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    assert 0 < available_memory_bytes("cpu") <= total
    assert 0 < available_memory_bytes(None) <= total


def test_available_memory_falls_back_and_never_refuses_wrongly(monkeypatch):
    monkeypatch.setattr(memory, "_read_proc_meminfo_available", lambda: None)
    monkeypatch.setattr(memory, "_read_cgroup_available", lambda: None)
    monkeypatch.setattr(memory, "_read_sysconf_available", lambda: 123 * GIB)
    assert available_memory_bytes("cpu") == 123 * GIB
    monkeypatch.setattr(memory, "_read_sysconf_available", lambda: None)
    assert available_memory_bytes("cpu") >= 2**60  # nothing readable: nothing is refused
    assert available_memory_bytes("meta") >= 2**60


def test_cgroup_limit_caps_the_available_memory(tmp_path, monkeypatch):
    (tmp_path / "memory.max").write_text(f"{4 * GIB}\n")
    (tmp_path / "memory.current").write_text(f"{3 * GIB}\n")
    (tmp_path / "memory.stat").write_text(f"anon 123\ninactive_file {GIB // 2}\n")
    assert memory._read_cgroup_available(tmp_path) == 4 * GIB - (3 * GIB - GIB // 2)
    (tmp_path / "memory.max").write_text("max\n")
    assert memory._read_cgroup_available(tmp_path) is None
    assert memory._read_cgroup_available(tmp_path / "absent") is None

    monkeypatch.setattr(memory, "_read_proc_meminfo_available", lambda: 100 * GIB)
    monkeypatch.setattr(memory, "_read_cgroup_available", lambda: 2 * GIB)
    assert available_memory_bytes("cpu") == 2 * GIB


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_available_cuda_memory_counts_the_allocator_cache():
    free, total = torch.cuda.mem_get_info()
    cached = torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
    assert available_memory_bytes("cuda") >= free + cached - 64 * 2**20
    assert available_memory_bytes("cuda") <= total


# -- the check -----------------------------------------------------------------------------------------------------


def test_check_memory_refuses_an_absurd_request_naming_it():
    # a real reading of this machine: no machine holds ten million clips
    with pytest.raises(MemoryError) as error:
        check_memory(tiny_config(), batch_size=10**7, device="cpu", training=False, guidance=True)
    message = str(error.value)
    assert "batch size 10000000 x 6 frames at 16x16" in message
    estimate = estimate_mmvg_memory_bytes(tiny_config(), 10**7, training=False, guidance=True)
    assert f"needs an estimated {estimate / GIB:.2f} GiB" in message
    assert "guidance_scale=1.0" in message and "Reduce the batch size" in message


def test_check_memory_refuses_thousands_of_frames(available):
    available(16 * GIB)
    config = MMVGConfig(num_frames=4096)  # only a config: no position table of 4096 frames is built
    with pytest.raises(MemoryError, match=r"training step of batch size 8 x 4096 frames at 64x64 .* 16\.00 GiB"):
        check_memory(config, batch_size=8, device="cpu", training=True)
    check_memory(MMVGConfig(), batch_size=8, device="cpu", training=True)


def test_check_memory_threshold_is_safety_times_available(available):
    config = tiny_config()
    estimate = estimate_mmvg_memory_bytes(config, 4, training=False)
    available(estimate * 2)
    check_memory(config, 4, "cpu", training=False, safety=0.5)
    available(estimate * 2 - 2)
    with pytest.raises(MemoryError, match="at most 50% of it"):
        check_memory(config, 4, "cpu", training=False, safety=0.5)


def test_normal_tiny_requests_pass_on_this_machine():
    config = tiny_config()
    check_memory(config, batch_size=4, device="cpu", training=False, guidance=True)
    check_memory(config, batch_size=4, device="cpu", training=True)


# -- wired into the model ------------------------------------------------------------------------------------------


def test_complete_refuses_before_tokenizing(available, monkeypatch):
    model = tiny_model()
    config = model.config
    input_ids, pixels = tiny_inputs(config, batch_size=3)
    given = torch.zeros(3, config.num_frames, dtype=torch.bool)

    def no_work(*args, **kwargs):
        raise AssertionError("the request was tokenized before the memory check")

    monkeypatch.setattr(model, "tokenize_video", no_work)
    available(2**20)
    with pytest.raises(MemoryError, match=r"completion with classifier-free guidance of batch size 3 x 6 frames"):
        model.complete(input_ids, None, pixels, given, guidance_scale=2.0)
    with pytest.raises(MemoryError, match=r"completion of batch size 3 x 6 frames"):
        model.complete(input_ids, None, pixels, given, decoding="autoregressive")


def test_complete_refuses_a_huge_batch_without_allocating_it(monkeypatch):
    # ten million clips as zero-copy views of one, judged against this machine's real memory
    model = tiny_model()
    monkeypatch.setattr(model, "tokenize_video", lambda *args: pytest.fail("tokenized before the memory check"))
    config = model.config
    input_ids, pixels = tiny_inputs(config, batch_size=1)
    huge = 10**7
    with pytest.raises(MemoryError, match="batch size 10000000"):
        model.complete(input_ids.expand(huge, -1), None, pixels.expand(huge, -1, -1, -1, -1),
                       torch.zeros(1, config.num_frames, dtype=torch.bool).expand(huge, -1))


def test_training_is_checked_where_it_starts_and_forward_never_is(available, tmp_path):
    from transformers import TrainingArguments

    from transformers_mmvg.trainer_mmvg import MMVGTrainer

    model = tiny_model()
    input_ids, pixels = tiny_inputs(model.config, batch_size=2)
    available(2**20)
    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=2, max_steps=1, use_cpu=True,
                             report_to="none")
    with pytest.raises(MemoryError, match="training step of batch size 2"):
        MMVGTrainer(model=model, args=args, train_dataset=[{}]).train()
    model.train()  # forward is pure: no check, no refusal, whatever the memory says
    assert torch.isfinite(model(**model.draw_training_masks(input_ids, None, pixels)).loss)
