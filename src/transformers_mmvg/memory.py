"""Refuse an MMVG request that cannot fit in memory, before anything large is allocated.

    check_memory(model.config, batch_size=8, device=model.device, training=False, guidance=True)  # or MemoryError

`estimate_mmvg_memory_bytes` is an upper estimate of the peak memory of one forward (and, in training, backward)
from the config sizes alone; `available_memory_bytes` reads what the device has free. Neither needs a model, so a
request is judged in microseconds and an absurd one (a batch of millions of clips, thousands of frames) fails with a
message saying what to reduce instead of swapping the machine to a halt or dying in the allocator.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from .configuration_mmvg import MMVGConfig

BYTES_PER_FLOAT = 4  # activations are counted in float32 (bf16 autocast only lowers the real peak)
GIB = 2**30
_UNKNOWN_AVAILABLE_BYTES = 2**62  # when no reading works: refuse nothing rather than refuse wrongly
_CGROUP_ROOT = Path("/sys/fs/cgroup")


# -- what the device has ---------------------------------------------------------------------------------------------


def _previous_frame_features(config) -> int:
    """Inputs of the decoder's previous-frame projection: one code vector, or a code vector and a known flag for each
    of the (2r + 1)^2 offsets."""
    radius, code_dim = config.previous_frame_radius, config.tvq_config.codebook_dim
    return code_dim if radius == 0 else (2 * radius + 1) ** 2 * (code_dim + 1)


def _read_proc_meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file gives kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_sysconf_available() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _read_cgroup_available(root: Path = _CGROUP_ROOT) -> int | None:
    """Room left under a cgroup v2 memory limit (containers): `memory.max - (memory.current - inactive_file)`; page
    cache that the kernel can drop is not counted as used. None without a limit."""
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((root / "memory.current").read_text())
        stat = dict(line.split() for line in (root / "memory.stat").read_text().splitlines() if line.strip())
        used -= int(stat.get("inactive_file", 0))
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def available_memory_bytes(device: torch.device | str | None = None) -> int:
    """Bytes a new allocation on `device` can still get.

    - CUDA: the driver's free memory (`torch.cuda.mem_get_info`) plus what PyTorch's caching allocator holds
      reserved but unused (it serves new tensors from that first; without it a second identical step would look
      like it no longer fits).
    - CPU: `MemAvailable` of `/proc/meminfo` (else free pages from `os.sysconf`), capped by the room under a cgroup v2
      memory limit when there is one.
    - Anything else, or when nothing can be read: a huge number, so that nothing is refused wrongly.
    """
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return _UNKNOWN_AVAILABLE_BYTES
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type != "cpu":
        return _UNKNOWN_AVAILABLE_BYTES
    system = _read_proc_meminfo_available()
    if system is None:
        system = _read_sysconf_available()
    readings = [value for value in (system, _read_cgroup_available()) if value is not None]
    return min(readings) if readings else _UNKNOWN_AVAILABLE_BYTES


# -- what a request needs ------------------------------------------------------------------------------------------


def _padded_window_tokens(config: MMVGConfig) -> int:
    """Tokens per clip of the decoder's window attention after padding to whole windows; a shifted layer pads by
    up to one more window in every dimension the window does not cover."""
    grid = (config.num_frames, config.latent_size, config.latent_size)
    total = 1
    for size, window in zip(grid, config.window_size):
        total *= (math.ceil(size / window) + (1 if window < size else 0)) * window
    return total


def _tvq_widths_and_sizes(config: MMVGConfig) -> list[tuple[int, int]]:
    """(channels, side) of every T-VQ level, from the full resolution down."""
    tvq = config.tvq_config
    return [(width, tvq.image_size // 2**level) for level, width in enumerate(tvq.level_channels)]


def mmvg_parameter_counts(config: MMVGConfig) -> tuple[int, int]:
    """(trainable, frozen) parameter counts of `MMVGForVideoCompletion(config)`, from the sizes (biases and norms
    included). Frozen: the T-VQ (its temporal head and 1x1 projections counted, its buffers not) and the base
    model's copy of its code vectors."""
    hidden, inner, code_dim = config.hidden_size, config.intermediate_size, config.tvq_config.codebook_dim
    window_t, window_h, window_w = config.window_size
    linear = lambda fan_in, fan_out: fan_in * fan_out + fan_out  # noqa: E731
    attention = 4 * linear(hidden, hidden)
    mlp = linear(hidden, inner) + linear(inner, hidden)
    encoder_layer = 2 * 2 * hidden + attention + mlp
    relative_bias = window_t * (2 * window_h - 1) * (2 * window_w - 1) * config.num_attention_heads
    decoder_layer = 3 * 2 * hidden + attention + relative_bias + attention + mlp  # window self-attn, cross, MLP
    trainable = (
        config.text_vocab_size * config.text_embedding_size + linear(config.text_embedding_size, hidden)
        + (config.max_text_length + 2 + config.num_frames + config.tokens_per_frame) * hidden
        + 2 * linear(code_dim, hidden)  # LP^v, decoder inputs
        + (linear(_previous_frame_features(config), hidden) if config.use_previous_frame_input else 0)
        + 4 * hidden  # [SPAN], [MASK], previous [MASK], "no previous frame"
        + config.num_encoder_layers * encoder_layer + config.num_decoder_layers * decoder_layer
        + 2 * 2 * hidden + linear(hidden, code_dim) + linear(hidden, config.codebook_size)
        + (linear(hidden, (2 * config.previous_frame_radius + 1) ** 2) if config.previous_frame_copy else 0)
        + (linear((2 * config.previous_frame_radius + 1) ** 2 * (code_dim + 1), hidden)  # next frame's input
           + linear(hidden, (2 * config.previous_frame_radius + 1) ** 2) if config.next_frame_copy else 0)
    )
    tvq = config.tvq_config
    conv = lambda fan_in, fan_out, kernel=3: kernel * kernel * fan_in * fan_out + fan_out  # noqa: E731
    widths = tvq.level_channels
    blocks = tvq.res_blocks_per_level
    resnet = lambda width: 2 * conv(width, width) + 4 * width  # noqa: E731
    levels = sum(blocks[index] * resnet(width) for index, width in enumerate(widths))
    pairs = list(zip(widths[:-1], widths[1:]))
    downsamples = sum(2 * wider_up + conv(wider_up, deeper) for wider_up, deeper in pairs)  # GN, strided conv
    upsamples = sum(2 * deeper + conv(deeper, wider_up) for wider_up, deeper in pairs)  # GN, conv
    encoder = conv(tvq.in_channels, widths[0]) + levels + downsamples + resnet(widths[-1]) + 2 * widths[-1] + conv(
        widths[-1], tvq.latent_channels)
    decoder = conv(tvq.latent_channels, widths[-1]) + resnet(widths[-1]) + levels + upsamples + 2 * widths[0] + conv(
        widths[0], tvq.in_channels)
    quantizer = (conv(tvq.latent_channels, tvq.codebook_dim, 1) + conv(tvq.codebook_dim, tvq.latent_channels, 1)
                 + tvq.codebook_size * tvq.codebook_dim)
    temporal = 0
    if tvq.use_temporal_loss:
        size = tvq.temporal_hidden_size
        temporal = linear(2 * tvq.codebook_dim * tvq.latent_size**2, size) + linear(size, size) + linear(size, 1)
    code_vectors = tvq.codebook_size * tvq.codebook_dim  # `model.embeddings.visual_token_embeddings`
    return trainable, encoder + decoder + quantizer + temporal + code_vectors


def estimate_mmvg_memory_bytes(config: MMVGConfig, batch_size: int, training: bool, guidance: bool = False) -> int:
    r"""Upper estimate of the peak memory (bytes) of one `MMVGForVideoCompletion` forward on `batch_size` clips:
    `model(...)` plus backward when `training`, else `model.complete(..., decoding="parallel")` (the autoregressive
    mode needs less: it runs one frame at a time). Activations in float32, without activation checkpointing (with it,
    or with bf16 autocast, the real peak is lower).

    Sizes: B clips (2B with `guidance`: the caption and the empty prompt run side by side), N = num_frames,
    P = tokens_per_frame, D = hidden_size, I = intermediate_size, H = heads, K = codebook_size, c = codebook_dim,
    S_e = max_text_length + N * P (the longest encoder sequence: every frame given), M = B N P decoder tokens,
    M_w = B x (tokens of a clip padded to whole windows, one extra window per shifted dimension), L_w = tokens per
    window (wt * wh * ww). In floats:

    - encoder layer: B S_e (10 D + 2 I) activations;
    - decoder layer: M_w (4 D) window tokens and M (12 D + 2 I) other activations, and the window attention bias with
      its index tensors (per window pair ~ 2 H floats + 120 bytes of int64/bool coordinates, independent of B);
    - attention scores: the padding-masked attentions (encoder, cross-attention) and the window attention in
      completion run a fused SDPA kernel that stores no score matrix (measured on CPU; CUDA's memory-efficient
      kernel is the same). In training the window bias needs a gradient, which forces the math kernel: 4 M_w H L_w
      (scores, softmax, their gradient, the bias gradient per clip); with dropout > 0 the masked ones too: 3 B H S_e^2
      per encoder layer and 3 M H S_e per decoder layer;
    - logits: M K floats for each of the head's matmul, its free term, their sum, the guided mix and the sampling's
      temperature-scaled, filtered and softmaxed copies: 8 M K in completion; 6 M K in training (head, log-softmax,
      their gradients);
    - T-VQ (tokenizing and decoding B N frames, no gradient): 4 x max over levels of (channels x side^2) per frame,
      plus 3 copies of the pixels (in, decoded, merged);
    - resident: the encoder states and every decoder layer's cross-attention keys and values, (2 L_d + 1) B S_e D.

    Completion (no autograd) keeps one layer alive at a time: peak = resident + T-VQ + max(encoder layer, decoder
    layer, logits). Training keeps every layer's activations for backward and one layer again for the backward pass:
    peak = resident + T-VQ + sum of layers + max layer + logits. The T-VQ term is added, not maxed, because the CPU
    allocator keeps the blocks freed by one stage (measured). Parameters: the weights (4 bytes each) in both cases,
    plus gradients and two Adam moments of the trainable ones in training.

    Calibration: measured = peak RSS growth of a fresh process over one request (`VmHWM` after resetting it via
    `/proc/self/clear_refs`, after a batch-1 warm-up) plus the resident weights (and, in training, gradients and Adam
    moments); 2-core CPU, torch 2.14, float32, one thread, `num_inference_steps=2`, prediction (frame 0 given).
    `default` is `MMVGConfig()` (64x64, 4x4 tokens, N=8, D=256); `8x8-tok` adds `channel_multipliers=[1, 2, 4, 4]`
    and N=16; `wide` is N=16, D=512, I=2048, 8 heads. In MiB, estimate / measured:

    ==================================  ========  ========  =====
    request                             measured  estimate  ratio
    ==================================  ========  ========  =====
    default, B=16, completion                244       270   1.10
    default, B=16, guided completion         278       356   1.28
    default, B=16, training step             529       785   1.48
    default, B=64, completion                740       967   1.31
    default, B=64, training step            1695      2688   1.59
    8x8-tok, B=4, completion                 139       298   2.15
    8x8-tok, B=4, training step              767      1596   2.08
    8x8-tok, B=8, completion                 255       510   2.00
    wide, B=8, completion                    318       401   1.26
    wide, B=8, guided completion             302       547   1.81
    wide, B=8, training step                1045      1432   1.37
    ==================================  ========  ========  =====

    Repeated measurements of one request vary by about 10% (the allocator's reuse of freed blocks).
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    clips = batch_size * (2 if guidance else 1)
    hidden, inner, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    num_frames, tokens_per_frame, classes = config.num_frames, config.tokens_per_frame, config.codebook_size
    encoder_length = config.max_text_length + num_frames * tokens_per_frame
    tokens = clips * num_frames * tokens_per_frame
    window_tokens = math.prod(config.window_size)
    padded_per_clip = _padded_window_tokens(config)
    padded = clips * padded_per_clip

    # score matrices: the padding-masked attentions run a fused SDPA kernel (none stored) unless dropout forces the
    # math kernel in training; the window attention's bias needs a gradient in training, which forces it always
    fused = not (training and config.dropout > 0)
    score_copies = 0 if fused else 3
    window_score_copies = 4 if training else 0  # scores, softmax, its gradient, the bias gradient per clip
    encoder_layer = (
        clips * encoder_length * (10 * hidden + 2 * inner) + score_copies * clips * heads * encoder_length**2
    )
    window_pairs = padded_per_clip * window_tokens  # (windows, L_w, L_w) entries of the bias, shared by the batch
    decoder_layer = (
        padded * 4 * hidden + tokens * (12 * hidden + 2 * inner)
        + window_score_copies * padded * heads * window_tokens + score_copies * tokens * heads * encoder_length
        + window_pairs * 2 * heads + window_pairs * 120 // BYTES_PER_FLOAT
    )
    logits = (6 if training else 8) * tokens * classes
    tvq_per_frame = 4 * max(width * side**2 for width, side in _tvq_widths_and_sizes(config))
    pixels = config.tvq_config.in_channels * config.image_size**2
    tvq = batch_size * num_frames * (tvq_per_frame + 3 * pixels)
    resident = (2 * config.num_decoder_layers + 1) * clips * encoder_length * hidden

    trainable, frozen = mmvg_parameter_counts(config)
    if training:
        layers = config.num_encoder_layers * encoder_layer + config.num_decoder_layers * decoder_layer
        activations = resident + tvq + layers + max(encoder_layer, decoder_layer) + logits
        parameters = 4 * trainable + frozen  # weights, gradients, Adam's two moments; the T-VQ is frozen
    else:
        activations = resident + tvq + max(encoder_layer, decoder_layer, logits)
        parameters = trainable + frozen
    return int((activations + parameters) * BYTES_PER_FLOAT)


def check_memory(
    config: MMVGConfig,
    batch_size: int,
    device: torch.device | str | None,
    training: bool,
    guidance: bool = False,
    safety: float = 0.9,
) -> None:
    """Raise `MemoryError` when `estimate_mmvg_memory_bytes` exceeds `safety` x `available_memory_bytes(device)`.
    The message names the request (batch size, frames, resolution, training or completion, guidance), the
    estimate and the available memory in GiB, and what to reduce. Nothing is allocated."""
    estimate = estimate_mmvg_memory_bytes(config, batch_size, training, guidance)
    available = available_memory_bytes(device)
    if estimate <= safety * available:
        return
    mode = "training step" if training else "completion" + (" with classifier-free guidance" if guidance else "")
    advice = "Reduce the batch size"
    if guidance:
        advice += ", use guidance_scale=1.0 (guidance doubles the decoder's batch)"
    if training:
        advice += ", enable activation checkpointing (`model.activation_checkpointing_enable()`)"
    advice += ", or use a model with fewer frames or a smaller image size."
    raise MemoryError(
        f"MMVG {mode} of batch size {batch_size} x {config.num_frames} frames at {config.image_size}x"
        f"{config.image_size} ({config.tokens_per_frame} tokens per frame) needs an estimated "
        f"{estimate / GIB:.2f} GiB, but {available / GIB:.2f} GiB is available on "
        f"{torch.device('cpu' if device is None else device)} and at most {safety:.0%} of it may be used. {advice}"
    )


def check_model_size(config: MMVGConfig, device: torch.device | str | None = None, safety: float = 0.9) -> None:
    """Refuse, before anything is allocated, a config whose model could not even complete one clip here: raise
    `MemoryError` when its weights plus the completion of one clip (`estimate_mmvg_memory_bytes(config, 1,
    training=False)`) exceed `safety` x `available_memory_bytes(device)`. Catches impossible sizes from a config file
    (`num_frames: 10000000`, `num_decoder_layers: 1000000`) in milliseconds instead of gigabytes or minutes later."""
    estimate = estimate_mmvg_memory_bytes(config, 1, training=False)
    available = available_memory_bytes(device)
    if estimate <= safety * available:
        return
    trainable, frozen = mmvg_parameter_counts(config)
    raise MemoryError(
        f"This MMVG config ({trainable + frozen:,} parameters; num_frames={config.num_frames}, "
        f"image_size={config.image_size}, hidden_size={config.hidden_size}, "
        f"num_encoder_layers={config.num_encoder_layers}, num_decoder_layers={config.num_decoder_layers}) needs an "
        f"estimated {estimate / GIB:.2f} GiB to hold its weights and complete one clip, but "
        f"{available / GIB:.2f} GiB is available on {torch.device('cpu' if device is None else device)} and at most "
        f"{safety:.0%} of it may be used. Check the config's sizes."
    )


__all__ = [
    "available_memory_bytes",
    "check_memory",
    "check_model_size",
    "estimate_mmvg_memory_bytes",
    "mmvg_parameter_counts",
]
