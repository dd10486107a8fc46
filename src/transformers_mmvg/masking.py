"""Which frames are given, how they enter the encoder, and the adaptive per-frame mask probabilities.

Tasks are data: prediction, rewind and infilling are sets of given frame indices (`task_given_indices`), and one
code path serves them and any other set. Every function here is pure (tensors in, tensors out) so that each can be
tested alone.

- `given_mask_from_indices` / `task_given_indices`: the (N,) boolean "frame t is given" mask of a request.
- `span_runs` and `encoder_visual_layout`: the paper's masked video V-bar: the visual tokens of every given frame
  in time order, and ONE [SPAN] slot for each maximal run of hidden frames.
- `update_mask_probabilities`: the adaptive rule `p_t <- p_t + alpha * ((L_t / L_M) * sum(p) - p_t)`.
- `sample_given_frames` and `sample_token_mask`: the training masks (which frames are hidden; which tokens of the
  hidden frames the decoder must predict).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

TASKS = ("prediction", "rewind", "infilling")


def task_given_indices(task: str, num_frames: int, num_given: int | None = None) -> list[int]:
    """Given frame indices of a named task.

    - `prediction`: the first `num_given` frames (default 1);
    - `rewind`: the last `num_given` frames (default 1);
    - `infilling`: the first `ceil(num_given / 2)` and the last `floor(num_given / 2)` frames (default 2).
    """
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; expected one of {TASKS}.")
    default = 2 if task == "infilling" else 1
    num_given = default if num_given is None else num_given
    minimum = 2 if task == "infilling" else 1
    if not minimum <= num_given < num_frames:
        raise ValueError(
            f"Task {task!r} needs between {minimum} and {num_frames - 1} given frames for a {num_frames}-frame "
            f"clip, got {num_given}."
        )
    if task == "prediction":
        return list(range(num_given))
    if task == "rewind":
        return list(range(num_frames - num_given, num_frames))
    head = math.ceil(num_given / 2)
    return list(range(head)) + list(range(num_frames - (num_given - head), num_frames))


def given_mask_from_indices(indices, num_frames: int) -> torch.Tensor:
    """(N,) bool mask, True at the given frame `indices`. Rejects indices out of range and repeated indices."""
    indices = [int(index) for index in indices]
    for index in indices:
        if not 0 <= index < num_frames:
            raise ValueError(f"Given frame index {index} is out of range for a clip of {num_frames} frames.")
    if len(set(indices)) != len(indices):
        raise ValueError(f"Given frame indices must be distinct, got {indices}.")
    mask = torch.zeros(num_frames, dtype=torch.bool)
    mask[indices] = True
    return mask


def span_runs(given_mask: torch.Tensor) -> list[tuple[int, int]]:
    """Maximal runs of hidden frames of one clip, as `(first_frame, length)`; `given_mask` is (N,) bool."""
    runs, start = [], None
    for index, given in enumerate(given_mask.tolist()):
        if not given and start is None:
            start = index
        elif given and start is not None:
            runs.append((start, index - start))
            start = None
    if start is not None:
        runs.append((start, len(given_mask) - start))
    return runs


@dataclass
class EncoderVisualLayout:
    """The visual part of the encoder input of a batch, padded to its longest clip (L slots).

    Attributes:
        frame_index (`torch.LongTensor` of shape `(B, L)`): the frame of a token, or the first frame of a span.
        spatial_index (`torch.LongTensor` of shape `(B, L)`): the token's position `row * w + column` in its frame
            (0 for spans and padding).
        is_span (`torch.BoolTensor` of shape `(B, L)`): the slot is a [SPAN] token.
        attention_mask (`torch.BoolTensor` of shape `(B, L)`): the slot is real (not padding).
    """

    frame_index: torch.Tensor
    spatial_index: torch.Tensor
    is_span: torch.Tensor
    attention_mask: torch.Tensor

    def gather_token_ids(self, video_token_ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, N, tokens_per_frame) -> (B, L) ids of the visual slots (0 at spans and padding)."""
        batch_index = torch.arange(video_token_ids.shape[0], device=video_token_ids.device)[:, None]
        ids = video_token_ids[batch_index, self.frame_index, self.spatial_index]
        return ids.masked_fill(self.is_span | ~self.attention_mask, 0)


def encoder_visual_layout(given_mask: torch.Tensor, tokens_per_frame: int) -> EncoderVisualLayout:
    """Lay out V-bar for a batch: for t = 0 .. N-1, the `tokens_per_frame` tokens of frame t if it is given, else
    one [SPAN] slot at the first frame of each run of hidden frames. `given_mask` is (B, N) bool. A clip with no
    given frame is a single [SPAN]; no clip is ever empty."""
    rows = []
    for clip in given_mask.bool().cpu():
        frames, spatial, spans = [], [], []
        span_starts = {start for start, _ in span_runs(clip)}
        for index, given in enumerate(clip.tolist()):
            if given:
                frames += [index] * tokens_per_frame
                spatial += list(range(tokens_per_frame))
                spans += [False] * tokens_per_frame
            elif index in span_starts:
                frames.append(index)
                spatial.append(0)
                spans.append(True)
        rows.append((frames, spatial, spans))
    length = max(len(frames) for frames, _, _ in rows)
    batch_size = len(rows)
    frame_index = torch.zeros(batch_size, length, dtype=torch.long)
    spatial_index = torch.zeros(batch_size, length, dtype=torch.long)
    is_span = torch.zeros(batch_size, length, dtype=torch.bool)
    attention_mask = torch.zeros(batch_size, length, dtype=torch.bool)
    for row, (frames, spatial, spans) in enumerate(rows):
        count = len(frames)
        frame_index[row, :count] = torch.tensor(frames, dtype=torch.long)
        spatial_index[row, :count] = torch.tensor(spatial, dtype=torch.long)
        is_span[row, :count] = torch.tensor(spans, dtype=torch.bool)
        attention_mask[row, :count] = True
    device = given_mask.device
    return EncoderVisualLayout(
        frame_index.to(device), spatial_index.to(device), is_span.to(device), attention_mask.to(device)
    )


def update_mask_probabilities(
    probabilities: torch.Tensor,
    frame_losses: torch.Tensor,
    alpha: float,
    valid: torch.Tensor | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """The paper's adaptive masking rule, `p_t <- p_t + alpha * ((L_t / L_M) * sum(p) - p_t)` with
    `L_M = sum_t L_t`, then clamped to `bounds`.

    `probabilities` and `frame_losses` are (N,). Only positions with `valid` True (default: all) take part: a
    position that was never generated in a batch has no loss, and leaving it in would read as "easy". Returns a new
    tensor; with no valid position or `L_M == 0` the probabilities come back unchanged (clamped)."""
    probabilities = probabilities.detach().float()
    frame_losses = frame_losses.detach().float().to(probabilities.device)
    valid = torch.ones_like(probabilities, dtype=torch.bool) if valid is None else valid.to(probabilities.device)
    updated = probabilities.clone()
    total_loss = frame_losses[valid].sum()
    if valid.any() and total_loss > 0:
        share = frame_losses[valid] / total_loss
        current = probabilities[valid]
        updated[valid] = current + alpha * (share * current.sum() - current)
    return updated.clamp(*bounds)


def sample_given_frames(
    mask_probabilities: torch.Tensor,
    batch_size: int,
    task_probability: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Training draw of the given frames: (B, N) bool, True = given.

    Each frame t is hidden with probability `mask_probabilities[t]`; with probability `task_probability` a clip
    instead gets the given frames of a task drawn uniformly from prediction / rewind / infilling (one or two end
    frames). Every clip keeps at least one hidden frame (else it has nothing to learn)."""
    device = mask_probabilities.device
    num_frames = mask_probabilities.shape[0]
    hidden = torch.rand(batch_size, num_frames, generator=generator, device=device) < mask_probabilities
    if num_frames > 1 and task_probability > 0:
        use_task = torch.rand(batch_size, generator=generator, device=device) < task_probability
        task = torch.randint(len(TASKS), (batch_size,), generator=generator, device=device)
        for row in torch.nonzero(use_task).flatten().tolist():
            name = TASKS[int(task[row])]
            if name == "infilling" and num_frames < 3:
                name = "prediction"
            given = given_mask_from_indices(task_given_indices(name, num_frames), num_frames).to(device)
            hidden[row] = ~given
    none_hidden = ~hidden.any(dim=1)
    if none_hidden.any():
        pick = torch.randint(num_frames, (batch_size,), generator=generator, device=device)
        hidden[none_hidden, pick[none_hidden]] = True
    return ~hidden


def cosine_mask_ratio(progress: torch.Tensor) -> torch.Tensor:
    """MaskGIT's cosine schedule: the share of tokens still masked at `progress` in [0, 1] (1 at 0, 0 at 1)."""
    return torch.cos(progress * math.pi / 2)


def _mask_lowest(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per row of `scores` (R, M), True at the `counts[r]` smallest entries."""
    ranks = scores.argsort(dim=-1).argsort(dim=-1)
    return ranks < counts[:, None]


def sample_token_mask(
    given_mask: torch.Tensor,
    tokens_per_frame: int,
    sequential_probability: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Training draw of the decoder's masked tokens: (B, N, tokens_per_frame) bool, True = the token is replaced by
    [MASK] in the decoder input and predicted. Given frames are never masked; every clip with a hidden frame masks
    at least one token.

    Two kinds of clip, so that one checkpoint learns both decoding modes (see `decoding.py`):
    - parallel (probability `1 - sequential_probability`): one ratio r from the cosine schedule for the clip; that
      share of all tokens of the hidden frames is masked (a step of parallel decoding);
    - sequential: a random hidden frame t*; hidden frames before t* are fully known, t* is masked at ratio r, later
      hidden frames are fully masked (a step of autoregressive decoding at frame t*).
    A clip with every frame given masks nothing.
    """
    device = given_mask.device
    batch_size, num_frames = given_mask.shape
    hidden = ~given_mask.bool()
    ratio = cosine_mask_ratio(torch.rand(batch_size, generator=generator, device=device))
    scores = torch.rand(batch_size, num_frames, tokens_per_frame, generator=generator, device=device)

    # parallel: ceil(r * number of hidden tokens) masked, chosen uniformly among the hidden tokens
    hidden_tokens = hidden[:, :, None].expand(-1, -1, tokens_per_frame).reshape(batch_size, -1)
    counts = torch.ceil(ratio * hidden_tokens.sum(dim=1)).long().clamp(min=1)
    flat_scores = scores.reshape(batch_size, -1).masked_fill(~hidden_tokens, 2.0)  # given tokens rank last
    parallel = (_mask_lowest(flat_scores, counts) & hidden_tokens).view(batch_size, num_frames, tokens_per_frame)

    # sequential: frame t* drawn uniformly among the hidden frames
    pick = torch.rand(batch_size, num_frames, generator=generator, device=device).masked_fill(~hidden, -1.0)
    current = pick.argmax(dim=1)
    frame = torch.arange(num_frames, device=device)[None, :]
    later = hidden & (frame > current[:, None])
    current_counts = torch.ceil(ratio * tokens_per_frame).long().clamp(min=1)
    rows = torch.arange(batch_size, device=device)
    current_tokens = _mask_lowest(scores[rows, current], current_counts) & hidden[rows, current][:, None]
    sequential = later[:, :, None].expand(-1, -1, tokens_per_frame).clone()
    sequential[rows, current] = current_tokens

    use_sequential = torch.rand(batch_size, generator=generator, device=device) < sequential_probability
    return torch.where(use_sequential[:, None, None], sequential, parallel)


__all__ = [
    "TASKS",
    "EncoderVisualLayout",
    "cosine_mask_ratio",
    "encoder_visual_layout",
    "given_mask_from_indices",
    "sample_given_frames",
    "sample_token_mask",
    "span_runs",
    "task_given_indices",
    "update_mask_probabilities",
]
