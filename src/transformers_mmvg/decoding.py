"""Sampling and the parallel (MaskGIT) decoding schedule, apart from the model.

How one checkpoint serves both decoding modes: Dec^M is block-causal over frames (frame t attends to frames <= t)
and sees, at every token, the token itself when it is known or [MASK] (and the same token of the previous frame).
Training masks tokens in two ways (`masking.sample_token_mask`): as one step of autoregressive decoding (earlier
frames known, the current frame partly masked, later ones fully masked) and as one step of parallel decoding (all
generated frames masked at one ratio). So:

- `autoregressive`: frames in order, and in each frame one token per step in raster order, with the key/value
  states of finished frames cached (N * h * w model calls; the order of the released code's GPT sampler);
- `parallel`: all missing tokens of all frames start as [MASK]; each step samples every masked token, keeps the
  most confident ones and re-masks the rest, fewer each step along the cosine schedule (`num_steps` model calls).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from .masking import cosine_mask_ratio


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


def parallel_decode(
    logits_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
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
        logits_fn: `(token_ids (B, M), known (B, M)) -> logits (B, M, K)`, the model on the current tokens.
        token_ids (`torch.LongTensor` of shape `(B, M)`): ids; only entries with `known` True are read.
        known (`torch.BoolTensor` of shape `(B, M)`): tokens that are given (never changed).
        num_steps: model calls; after step s, `masked_after_step(n, s, num_steps)` tokens are still masked.

    Returns the completed (B, M) ids; known entries are returned unchanged.
    """
    if num_steps < 1:
        raise ValueError(f"`num_steps` must be >= 1, got {num_steps}.")
    token_ids, known = token_ids.clone(), known.clone()
    num_unknown = (~known).sum(dim=1)
    for step in tqdm(range(num_steps), desc="parallel decoding", disable=not progress, leave=False):
        if known.all():
            break
        sampled, confidence = sample_tokens(logits_fn(token_ids, known), temperature, top_k, top_p, generator)
        sampled = torch.where(known, token_ids, sampled)
        confidence = confidence.masked_fill(known, float("inf"))
        still_masked = masked_after_step(num_unknown, step, num_steps)
        ranks = confidence.argsort(dim=1).argsort(dim=1)
        keep_masked = ranks < still_masked[:, None]
        token_ids = torch.where(keep_masked, token_ids, sampled)
        known = ~keep_masked
    return token_ids


__all__ = ["filter_logits", "guided_logits", "masked_after_step", "parallel_decode", "sample_tokens"]
