"""Sampling and the parallel (MaskGIT) decoding schedule, apart from the model.

How one checkpoint serves every decoding mode: Dec^M is block-causal over frames (frame t attends to frames <= t)
and sees, at every token, the token itself when it is known or [MASK] (and the same token of the previous frame;
with `next_frame_copy`, a frame that still has masked tokens also reads the known tokens of frame t + 1).
Training masks tokens in two ways (`masking.sample_token_mask`): as one step of autoregressive decoding (earlier
frames known, the current frame partly masked, later ones fully masked) and as one step of parallel decoding (all
generated frames masked at one ratio). So:

- `autoregressive`: frames in order, and in each frame one token per step in raster order, with the key/value
  states of finished frames cached (N * h * w model calls; the order of the released code's GPT sampler);
- `parallel`: all missing tokens of all frames start as [MASK]; each step samples every masked token, keeps the
  most confident ones and re-masks the rest, fewer each step along the cosine schedule (`num_steps` model calls).
- `frame_by_frame`: one frame at a time, nearest to a given frame first (prediction forwards, rewind backwards,
  infilling from both ends inwards), each frame by the parallel schedule while the frames not yet reached stay
  [MASK] (`num_steps` model calls per frame). Each frame is finished before its neighbour is started, so a moving
  object is copied from one side only, as in autoregressive decoding, at a fraction of its calls.

The loops and classifier-free guidance talk to the model through one function, `LogitsFn`; the model builds it
(`modeling_mmvg.MMVGVideoLogits`) and knows nothing of schedules.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from .masking import cosine_mask_ratio


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_decoding_settings(**settings) -> None:
    """Refuse decoding settings that would sample from another distribution than the one asked for (a negative
    temperature flips it; `top_k=0` or `top_p=1.5` would be ignored; a NaN guidance scale yields NaN logits) with a
    `TypeError` (wrong type) or `ValueError` (wrong value) naming the setting. Only the settings given are checked;
    `None` means "not set" for `top_k`, `top_p` and `generator`.

    decoding: a name of `DECODING_MODES`; num_inference_steps: an integer >= 1; guidance_scale: a finite real;
    temperature: a finite real >= 0; top_k: an integer >= 1; top_p: a real in (0, 1]; generator: a
    `torch.Generator`; progress: a bool."""
    for name, value in settings.items():
        if name == "decoding":
            if not isinstance(value, str) or value not in DECODING_MODES:
                raise ValueError(f"Unknown `decoding` {value!r}; expected one of {sorted(DECODING_MODES)}.")
        elif name == "num_inference_steps":
            if not _is_integer(value):
                raise TypeError(f"`num_inference_steps` must be an integer, got {value!r}.")
            if value < 1:
                raise ValueError(f"`num_inference_steps` must be >= 1, got {value}.")
        elif name in ("guidance_scale", "temperature"):
            if not _is_real(value):
                raise TypeError(f"`{name}` must be a real number, got {value!r}.")
            if not math.isfinite(value) or (name == "temperature" and value < 0):
                bound = "a finite number >= 0 (0 is greedy)" if name == "temperature" else "a finite number"
                raise ValueError(f"`{name}` must be {bound}, got {value}.")
        elif name == "top_k":
            if value is None:
                continue
            if not _is_integer(value):
                raise TypeError(f"`top_k` must be an integer or None, got {value!r}.")
            if value < 1:
                raise ValueError(f"`top_k` must be >= 1 (None keeps every class), got {value}.")
        elif name == "top_p":
            if value is None:
                continue
            if not _is_real(value):
                raise TypeError(f"`top_p` must be a real number or None, got {value!r}.")
            if not 0.0 < value <= 1.0:
                raise ValueError(f"`top_p` must lie in (0, 1] (None or 1 keeps every class), got {value}.")
        elif name == "generator":
            if value is not None and not isinstance(value, torch.Generator):
                raise TypeError(f"`generator` must be a torch.Generator or None, got {type(value).__name__}.")
        elif name == "progress":
            if not isinstance(value, bool):
                raise TypeError(f"`progress` must be True or False, got {value!r}.")
        else:
            raise TypeError(f"Unknown decoding setting `{name}`.")


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to -inf every logit outside the `top_k` largest and outside the smallest set whose probability reaches
    `top_p` (nucleus); the most likely class always survives. Works on the last dimension."""
    if top_k is not None and top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # mass before this class already enough
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_tokens(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one class per row of `logits` (..., K). Returns `(ids (...), probability of each drawn id (...))` under
    the filtered, temperature-scaled distribution; `temperature == 0` takes the argmax."""
    logits = logits.float()
    if temperature == 0:
        probabilities = filter_logits(logits, top_k, top_p).softmax(dim=-1)
        ids = probabilities.argmax(dim=-1)
    else:
        probabilities = filter_logits(logits / temperature, top_k, top_p).softmax(dim=-1)
        flat = probabilities.reshape(-1, probabilities.shape[-1])
        ids = torch.multinomial(flat, 1, generator=generator).view(probabilities.shape[:-1])
    return ids, probabilities.gather(-1, ids.unsqueeze(-1)).squeeze(-1)


def guided_logits(logits: torch.Tensor, unconditional_logits: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: `uncond + scale * (cond - uncond)` (scale 1 is the conditional model)."""
    return unconditional_logits + guidance_scale * (logits - unconditional_logits)


def masked_after_step(num_unknown: torch.Tensor, step: int, num_steps: int) -> torch.Tensor:
    """How many of the initially unknown tokens stay masked after step `step` (0-based) of `num_steps`: the
    cosine schedule `floor(n * cos(pi/2 * (step + 1) / num_steps))`, at most `n - step - 1` so that at least `step + 1`
    tokens are committed after step `step`, and 0 after the last step."""
    if step >= num_steps - 1:
        return torch.zeros_like(num_unknown)
    ratio = cosine_mask_ratio(torch.tensor((step + 1) / num_steps, dtype=torch.float64)).item()
    scheduled = torch.floor(num_unknown.float() * ratio).long()
    return torch.minimum(scheduled, (num_unknown - step - 1).clamp(min=0))


LogitsFn = Callable[[torch.Tensor, torch.Tensor, "int | None"], torch.Tensor]
"""The one contract between a model and the decoding loops: `logits_fn(token_ids, known, frame)`.

- `token_ids`, `known` (B, N, h, w) (any (B, ...) layout for parallel decoding): the current tokens and which of them
  are known (the others are read as [MASK]);
- `frame=None`: the logits of every token (B, N, h, w, K);
- `frame=t`: the logits of frame t only (B, h, w, K), given frames < t, which the loops never change again (a model
  that caches keys/values may commit them when it first sees a call for a later frame).
"""


def classifier_free_guidance(logits_fn: LogitsFn, guidance_scale: float) -> LogitsFn:
    """Classifier-free guidance around a `logits_fn` whose batch is doubled: its first half reads the captions, its
    second half the empty prompt (the model's encoder states are built that way). The returned function takes and
    returns the undoubled batch: `uncond + scale * (cond - uncond)`."""

    def guided(token_ids: torch.Tensor, known: torch.Tensor, frame: int | None = None) -> torch.Tensor:
        logits = logits_fn(torch.cat([token_ids, token_ids]), torch.cat([known, known]), frame)
        conditional, unconditional = logits.chunk(2)
        return guided_logits(conditional, unconditional, guidance_scale)

    return guided


def maskgit_step(
    logits: torch.Tensor, token_ids: torch.Tensor, known: torch.Tensor, num_unknown: torch.Tensor, step: int,
    num_steps: int, **sampling,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step `step` of `num_steps` of the MaskGIT schedule on flat (B, L) ids and known flags, from the logits
    (B, L, K): sample every unknown token, commit the most confident so that `masked_after_step(num_unknown, ...)`
    stay masked. Returns the new ids and known flags; known tokens never change. `sampling`: `sample_tokens`'."""
    sampled, confidence = sample_tokens(logits, **sampling)
    sampled = torch.where(known, token_ids, sampled)
    confidence = confidence.masked_fill(known, float("inf"))
    ranks = confidence.argsort(dim=1).argsort(dim=1)
    keep_masked = ranks < masked_after_step(num_unknown, step, num_steps)[:, None]
    return torch.where(keep_masked, token_ids, sampled), ~keep_masked


def parallel_decode(
    logits_fn: LogitsFn,
    token_ids: torch.Tensor,
    known: torch.Tensor,
    num_steps: int = 12,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """MaskGIT-style confidence-based iterative decoding.

    Args:
        logits_fn: see `LogitsFn`; called with `frame=None` on ids and known masks of the shape of `token_ids`.
        token_ids (`torch.LongTensor` of shape `(B, ...)`): ids; only entries with `known` True are read.
        known (`torch.BoolTensor` of the same shape): tokens that are given (never changed).
        num_steps: model calls; after step s, `masked_after_step(n, s, num_steps)` tokens are still masked.

    Returns the completed ids (same shape); known entries are returned unchanged.
    """
    if num_steps < 1:
        raise ValueError(f"`num_steps` must be >= 1, got {num_steps}.")
    shape = token_ids.shape
    token_ids, known = token_ids.reshape(shape[0], -1).clone(), known.reshape(shape[0], -1).clone()
    num_unknown = (~known).sum(dim=1)
    for step in tqdm(range(num_steps), desc="parallel decoding", disable=not progress, leave=False):
        if known.all():
            break
        logits = logits_fn(token_ids.view(shape), known.view(shape), None).flatten(1, -2)
        token_ids, known = maskgit_step(logits, token_ids, known, num_unknown, step, num_steps, temperature=temperature,
                                        top_k=top_k, top_p=top_p, generator=generator)  # fmt: skip
    return token_ids.view(shape)


def autoregressive_decode(
    logits_fn: LogitsFn,
    token_ids: torch.Tensor,
    known: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Frames in order; in a frame, each unknown token in raster order, drawn from the logits of that frame given
    the tokens before it (`logits_fn(..., frame=t)`): one model call per generated token position.

    `token_ids`, `known` (B, N, h, w). Returns the completed ids; known entries are returned unchanged."""
    token_ids, known = token_ids.clone(), known.clone()
    num_frames, height, width = token_ids.shape[1:]
    positions = [(row, column) for row in range(height) for column in range(width)]
    frames_to_generate = [frame for frame in range(num_frames) if not known[:, frame].all()]
    bar = tqdm(total=len(frames_to_generate) * len(positions), desc="autoregressive decoding", disable=not progress,
               leave=False)  # fmt: skip
    for frame in frames_to_generate:
        for row, column in positions:
            unknown = ~known[:, frame, row, column]
            if unknown.any():
                logits = logits_fn(token_ids, known, frame)[:, row, column]
                sampled, _ = sample_tokens(logits, temperature, top_k, top_p, generator)
                token_ids[:, frame, row, column] = torch.where(unknown, sampled, token_ids[:, frame, row, column])
                known[:, frame, row, column] = True
            bar.update(1)
    bar.close()
    return token_ids


def decoding_order(known: torch.Tensor) -> torch.Tensor:
    """The order `frame_by_frame_decode` completes the frames of each clip in: (B, M) frame indices, M the largest
    number of frames with unknown tokens in a clip, padded with -1. Frames with unknown tokens are sorted by their
    distance to the nearest fully known frame (ties: the earlier frame first); with no such frame, in order.
    `known` (B, N, h, w)."""
    finished = known.flatten(2).all(dim=-1)  # (B, N)
    num_frames = finished.shape[1]
    frames = torch.arange(num_frames, device=known.device)
    distance = (frames[:, None] - frames[None, :]).abs()  # (N, N)
    far = num_frames  # farther than any frame: clips without a known frame go in frame order
    nearest = torch.where(finished[:, None, :], distance[None], far).amin(dim=-1)  # (B, N)
    key = torch.where(finished, 2 * far * num_frames, nearest * num_frames + frames)  # finished frames last
    order = key.argsort(dim=1)
    num_open = (~finished).sum(dim=1)
    width = int(num_open.max()) if num_frames else 0
    order = order[:, :width]
    return torch.where(torch.arange(width, device=known.device)[None] < num_open[:, None], order, -1)


def frame_by_frame_decode(
    logits_fn: LogitsFn,
    token_ids: torch.Tensor,
    known: torch.Tensor,
    num_steps: int = 2,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Frames one at a time in `decoding_order`, each by the MaskGIT schedule of `parallel_decode` over that frame's
    unknown tokens (`num_steps` calls of `logits_fn(..., frame=None)` per frame; the frames not yet reached are read
    as [MASK]).

    `token_ids`, `known` (B, N, h, w). Returns the completed ids; known entries are returned unchanged."""
    if num_steps < 1:
        raise ValueError(f"`num_steps` must be >= 1, got {num_steps}.")
    token_ids, known = token_ids.clone(), known.clone()
    order = decoding_order(known)
    batch = torch.arange(token_ids.shape[0], device=token_ids.device)
    bar = tqdm(total=order.shape[1] * num_steps, desc="frame-by-frame decoding", disable=not progress, leave=False)
    for rank in range(order.shape[1]):
        frame = order[:, rank].clamp(min=0)  # (B,); clips with no frame left at this rank change nothing
        active = order[:, rank] >= 0
        frame_known = known[batch, frame].flatten(1) | ~active[:, None]  # (B, h * w)
        num_unknown = (~frame_known).sum(dim=1)
        for step in range(num_steps):
            bar.update(1)
            if frame_known.all():
                continue
            logits = logits_fn(token_ids, known, None)[batch, frame].flatten(1, -2)
            frame_ids, frame_known = maskgit_step(logits, token_ids[batch, frame].flatten(1), frame_known, num_unknown,
                                                  step, num_steps, temperature=temperature, top_k=top_k, top_p=top_p,
                                                  generator=generator)  # fmt: skip
            token_ids[batch, frame] = frame_ids.view_as(token_ids[batch, frame])
            known[batch, frame] = known[batch, frame] | (frame_known & active[:, None]).view_as(known[batch, frame])
    bar.close()
    return token_ids


DECODING_MODES = {
    "parallel": parallel_decode,
    "frame_by_frame": frame_by_frame_decode,
    "autoregressive": autoregressive_decode,
}


def decode_tokens(
    logits_fn: LogitsFn,
    token_ids: torch.Tensor,
    known: torch.Tensor,
    decoding: str = "parallel",
    num_inference_steps: int = 12,
    guidance_scale: float = 1.0,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Complete `token_ids` (B, N, h, w) where `known` is False with the named decoding mode. With
    `guidance_scale != 1`, `logits_fn` must read a doubled batch (captions, then the empty prompt; see
    `classifier_free_guidance`)."""
    check_decoding_settings(decoding=decoding, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                            temperature=temperature, top_k=top_k, top_p=top_p, generator=generator,
                            progress=progress)  # fmt: skip
    if guidance_scale != 1.0:
        logits_fn = classifier_free_guidance(logits_fn, guidance_scale)
    sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator, progress=progress)
    if decoding == "parallel":
        return parallel_decode(logits_fn, token_ids, known, num_inference_steps, **sampling)
    if decoding == "frame_by_frame":
        return frame_by_frame_decode(logits_fn, token_ids, known, num_inference_steps, **sampling)
    return autoregressive_decode(logits_fn, token_ids, known, **sampling)


__all__ = [
    "DECODING_MODES",
    "LogitsFn",
    "autoregressive_decode",
    "check_decoding_settings",
    "classifier_free_guidance",
    "decode_tokens",
    "decoding_order",
    "filter_logits",
    "frame_by_frame_decode",
    "guided_logits",
    "masked_after_step",
    "maskgit_step",
    "parallel_decode",
    "sample_tokens",
]
