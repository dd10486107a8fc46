"""Training speed, memory and compute efficiency of both stages (issue 7): train-speed (throughput and peak RSS, each
in a fresh process) and efficiency (achieved FLOP/s against the matmul peak in fp32 and bf16)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable

import torch
from builders import (
    CAPTION_LENGTH,
    COMPLETION_BATCH_SIZE,
    DEMO_MMVG_OVERRIDES,
    MMVG_TRAIN_BATCH_SIZE,
    TVQ_TRAIN_BATCH_SIZE,
    _mmvg_training_step,
    _prediction_inputs,
    _tvq_clips,
    _tvq_frames_per_clip,
)
from common import MIB, _best_seconds, _measure_in_subprocess, benchmark, header


def _trainable_parameters(config_kwargs: dict) -> int:
    from transformers_mmvg import MMVGConfig
    from transformers_mmvg.memory import mmvg_parameter_counts

    return mmvg_parameter_counts(MMVGConfig(**config_kwargs))[0]


@benchmark("train-speed")
def train_speed(
    args: argparse.Namespace,
    warmup: int = 2,
    repeats: int = 10,
    tvq_batch_size: int = TVQ_TRAIN_BATCH_SIZE,
    mmvg_batch_size: int = MMVG_TRAIN_BATCH_SIZE,
    completion_batch_size: int = COMPLETION_BATCH_SIZE,
) -> str:
    """Training throughput of both stages at their scripts' batch sizes, and the peak memory of a training step and
    of inference (completion; for the T-VQ, encode + decode), each in a fresh process."""
    from transformers_mmvg import MMVGConfig, TVQConfig, TVQModel
    from transformers_mmvg.memory import estimate_mmvg_memory_bytes

    rows = [
        "| model | trainable parameters | batch | step (ms) | samples/s | peak RSS, training (MiB) "
        "| peak RSS, inference (MiB) | inference (s) | memory.py estimate, training / completion (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    tvq = TVQModel(TVQConfig())
    clip_frames, frames_per_clip = _tvq_clips(tvq.config, 1).shape[1], _tvq_frames_per_clip()
    train = _measure_in_subprocess("_tvq_training_step", warmup, repeats, batch_size=tvq_batch_size)
    infer = _measure_in_subprocess("_tvq_inference", 1, 1, batch_size=completion_batch_size)
    rows.append(
        f"| T-VQ, `TVQConfig()` | {tvq.num_parameters() / 1e6:.2f}M "
        f"| {tvq_batch_size} clips x {frames_per_clip} frames "
        f"| {1000 * train['mean_seconds']:.0f} | {tvq_batch_size / train['mean_seconds']:.1f} clips "
        f"({frames_per_clip * tvq_batch_size / train['mean_seconds']:.0f} frames) | {train['peak_bytes'] / MIB:.0f} "
        f"| {infer['peak_bytes'] / MIB:.0f} (encode + decode, {completion_batch_size} clips x {clip_frames} frames) "
        f"| {infer['mean_seconds']:.2f} | - |"
    )
    baselines = [train["baseline_bytes"], infer["baseline_bytes"]]
    for name, overrides in (("MMVG, `MMVGConfig()`", {}), ("MMVG, demo checkpoint's config", DEMO_MMVG_OVERRIDES)):
        config = MMVGConfig(**overrides)
        train = _measure_in_subprocess("_mmvg_training_step", warmup, repeats, config_kwargs=overrides,
                                       batch_size=mmvg_batch_size)
        infer = _measure_in_subprocess("_mmvg_completion", 1, 1, config_kwargs=overrides,
                                       batch_size=completion_batch_size)
        baselines += [train["baseline_bytes"], infer["baseline_bytes"]]
        estimate_train = estimate_mmvg_memory_bytes(config, mmvg_batch_size, training=True)
        estimate_complete = estimate_mmvg_memory_bytes(config, completion_batch_size, training=False)
        rows.append(
            f"| {name} | {_trainable_parameters(overrides) / 1e6:.2f}M | {mmvg_batch_size} clips x "
            f"{config.num_frames} frames (cached tokens) | {1000 * train['mean_seconds']:.0f} "
            f"| {mmvg_batch_size / train['mean_seconds']:.1f} clips | {train['peak_bytes'] / MIB:.0f} "
            f"| {infer['peak_bytes'] / MIB:.0f} (completion, {completion_batch_size} clips, parallel 12 steps) "
            f"| {infer['mean_seconds']:.2f} | {estimate_train / MIB:.0f} / {estimate_complete / MIB:.0f} |"
        )
    body = (
        "## Training throughput and peak memory of both stages\n\n"
        f"Training: {warmup} warm-up steps, then the mean of {repeats} steps (forward, backward, gradient clipping, "
        "optimizer step; no data loading: T-VQ clips are random pixels, MMVG reads random cached tokens and "
        f"{CAPTION_LENGTH}-token captions). T-VQ as `examples/run_tvq.py` trains it (batch "
        f"{tvq_batch_size}, {frames_per_clip} random frames of each {clip_frames}-frame {tvq.config.image_size}x"
        f"{tvq.config.image_size} clip, Adam lr 1e-3, betas 0.5/0.9); MMVG as "
        f"`examples/run_mmvg.py` does (batch {mmvg_batch_size}, masks drawn by the model, AdamW lr 5e-4, "
        "betas 0.9/0.95, weight decay 0.01); untrained weights. The demo checkpoint's config is "
        f"`{json.dumps(DEMO_MMVG_OVERRIDES)}`. Inference: one call after one warm-up call.\n\n"
        "Peak RSS: every row's training and inference run in a fresh process each; the number is the peak resident "
        "memory (`VmHWM` of /proc/self/status, reset to the current RSS through /proc/self/clear_refs) over the "
        "measured calls minus the RSS after imports, model, optimizer and inputs were built (that baseline, "
        f"{min(baselines) / MIB:.0f} to {max(baselines) / MIB:.0f} MiB, is mostly the libraries; the weights are in "
        "it, gradients and Adam moments are not). `memory.py`'s estimate is the upper bound the model checks before "
        "a request; it also counts the weights.\n\n"
    )
    return body + header("train-speed", "python benchmarks/run.py --only train-speed") + "\n" + "\n".join(rows) + "\n"


def _attention_flops(query_shape, key_shape, value_shape, *args, backward: bool = False, **kwargs) -> int:
    """FLOPs of scaled dot-product attention over any leading dims: QK^T and PV, 2 FLOPs per multiply-add; the
    backward pass does twice the forward's matmuls (as torch's own count for the CUDA kernels)."""
    *leading, query_length, head_size = query_shape
    key_length, value_size = key_shape[-2], value_shape[-1]
    forward = 2 * math.prod(leading) * query_length * key_length * (head_size + value_size)
    return 2 * forward if backward else forward


def _count_flops(function: Callable[[], object]) -> int:
    """FLOPs of one call, counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions and
    attention). Its registry misses the CPU SDPA kernel, which is added here."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    cpu_attention = {
        aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops,
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
            lambda grad_out, query, key, value, *args, **kwargs: _attention_flops(query, key, value, backward=True),
    }
    with FlopCounterMode(display=False, custom_mapping=cpu_attention) as counter:
        function()
    return counter.get_total_flops()


def _matmul_flops_per_second(sizes: tuple[int, ...], dtype: torch.dtype = torch.float32,
                             repeats: int = 3) -> dict[int, float]:
    """Achieved FLOP/s of square matmuls `n x n @ n x n` (2 n^3 FLOPs) in `dtype`, best of `repeats`, per size n."""
    rates = {}
    for size in sizes:
        generator = torch.Generator().manual_seed(0)
        left, right = (torch.randn(size, size, generator=generator).to(dtype) for _ in range(2))
        out = torch.empty(size, size, dtype=dtype)
        seconds = _best_seconds(lambda: torch.mm(left, right, out=out), repeats=repeats)
        rates[size] = 2 * size**3 / seconds
    return rates


def _autocast(dtype: torch.dtype | None):
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else torch.autocast("cpu", enabled=False)


@benchmark("efficiency")
def efficiency(
    args: argparse.Namespace,
    matmul_sizes: tuple[int, ...] = (1024, 2048, 4096),
    slow_bf16_matmul_sizes: tuple[int, ...] = (512,),
    training_batch_size: int = MMVG_TRAIN_BATCH_SIZE,
    decoding_batch_size: int = COMPLETION_BATCH_SIZE,
) -> str:
    """Achieved FLOP/s of an MMVG training step (fp32 and under bf16 autocast) and of a parallel decoding step,
    against the machine's matmul peak in fp32 and in bf16, all measured on the same machine in the same run. Where
    the CPU has no native bf16 matrix products (`hardware.bf16_is_fast`), the bf16 peak is measured at
    `slow_bf16_matmul_sizes` only (a 2048 one would take a minute)."""
    from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion
    from transformers_mmvg.hardware import BF16_CPU_FLAGS, bf16_is_fast, cpu_flags
    from transformers_mmvg.modeling_mmvg import MMVGVideoLogits

    native_bf16 = bf16_is_fast("cpu")
    peaks = {
        torch.float32: _matmul_flops_per_second(matmul_sizes, torch.float32),
        torch.bfloat16: _matmul_flops_per_second(matmul_sizes if native_bf16 else slow_bf16_matmul_sizes,
                                                 torch.bfloat16),
    }  # fmt: skip
    peak = max(rate for rates in peaks.values() for rate in rates.values())

    training_step = _mmvg_training_step({}, training_batch_size, with_optimizer=False)
    training_flops = _count_flops(training_step)
    training = {}
    for dtype in (None, torch.bfloat16):
        def step():
            with _autocast(dtype):
                training_step()

        training[dtype] = _best_seconds(step, repeats=3)

    torch.manual_seed(0)
    model = MMVGForVideoCompletion(MMVGConfig()).eval()
    inputs = _prediction_inputs(model.config, decoding_batch_size)
    token_ids = inputs["video_token_ids"]
    with torch.no_grad():
        encoded = model.model.encode(inputs["input_ids"], None, token_ids, inputs["given_frames_mask"])
        logits_fn = MMVGVideoLogits(model, encoded.encoder_last_hidden_state, encoded.encoder_attention_mask)
        known = ~inputs["token_mask"]

        def decoding_step():
            logits_fn(token_ids, known)

        decoding_flops = _count_flops(decoding_step)
        decoding_seconds = _best_seconds(decoding_step, repeats=3)

    rows = ["| measured | GFLOP per call | best time (ms) | achieved GFLOP/s | share of the best matmul peak |",
            "|---|---|---|---|---|"]
    for dtype, rates in peaks.items():
        for size, rate in rates.items():
            rows.append(f"| {str(dtype).removeprefix('torch.')} matmul {size} x {size} | {2 * size**3 / 1e9:.2f} "
                        f"| {2000 * size**3 / rate:.1f} | {rate / 1e9:.1f} | {rate / peak:.1%} |")
    for name, flops, seconds in (
        (f"MMVG training step (forward + backward), batch {training_batch_size}, fp32", training_flops,
         training[None]),
        (f"MMVG training step (forward + backward), batch {training_batch_size}, bf16 autocast", training_flops,
         training[torch.bfloat16]),
        (f"MMVG parallel decoding step (decoder forward), batch {decoding_batch_size}, fp32", decoding_flops,
         decoding_seconds),
    ):
        rate = flops / seconds
        rows.append(f"| {name} | {flops / 1e9:.2f} | {1000 * seconds:.1f} | {rate / 1e9:.1f} | {rate / peak:.1%} |")
    flags = sorted(cpu_flags() & set(BF16_CPU_FLAGS)) or ["none"]
    best_fp32 = max(peaks[torch.float32].values())
    best_bf16 = max(peaks[torch.bfloat16].values())
    body = (
        "## MMVG compute efficiency: achieved FLOP/s against the machine's matmul peak in fp32 and bf16\n\n"
        "FLOPs counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls and attention, 2 per multiply-add; "
        "the CPU attention kernel, absent from its registry, counted as QK^T + PV and twice that backward; "
        "element-wise work, embeddings, softmax and layer norms are not counted). Default `MMVGConfig()` "
        f"({model.config.num_frames} frames, {model.config.tokens_per_frame} tokens per frame), untrained weights, "
        "prediction from frame 0 "
        "with a fixed token mask, times best of 3 after a warm-up. The training step is forward + backward (no "
        "optimizer), in fp32 and under `torch.autocast(\"cpu\", torch.bfloat16)`; the decoding step is one "
        "`model.decode` over the whole clip with the cross-attention keys and values cached, as "
        "`complete(decoding=\"parallel\")` calls it. The peaks are the best square `torch.mm` of each dtype "
        f"(best of 3) measured in the same run: **fp32 {best_fp32 / 1e9:.1f} GFLOP/s, bf16 {best_bf16 / 1e9:.1f} "
        f"GFLOP/s**; shares are of the larger. This CPU's native bf16 matrix units (/proc/cpuinfo flags among "
        f"{', '.join(BF16_CPU_FLAGS)}): **{', '.join(flags)}**"
        + ("" if native_bf16 else f" (so bf16 is measured at {', '.join(map(str, slow_bf16_matmul_sizes))} only)")
        + ".\n\n"
    )
    return body + header("efficiency", "python benchmarks/run.py --only efficiency") + "\n" + "\n".join(rows) + "\n"
