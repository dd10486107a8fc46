"""MMVG: multimodal masked video generation for text-guided video completion (stage 2; PAPER.md).

    model = MMVGForVideoCompletion.from_tvq(tvq_model, hidden_size=256)        # frozen T-VQ inside
    inputs = model.draw_training_masks(input_ids, attention_mask, pixel_values_videos)   # given frames, token masks
    outputs = model(**inputs)                                                 # loss, logits, per-frame L_t
    completion = model.complete(input_ids, attention_mask, pixel_values_videos, given_frames_mask,
                                decoding="parallel", num_inference_steps=12)  # completion.frames (B, N, C, H, W)

Layout of this file, as in transformers' model files: attention (through transformers' attention interface, so
`config._attn_implementation` picks eager or sdpa), encoder and decoder layers, the decoder cache, the embeddings,
then `MMVGEncoder` (Enc^M), `MMVGDecoder` (Dec^M), `MMVGModel` (the base model: token ids in, hidden states out) and
`MMVGForVideoCompletion` (the frozen T-VQ so pixels go in and out, the token head, the loss and completion). Which
frames are given and the training masks live in `masking.py`; sampling, the decoding loops and guidance in
`decoding.py`.

Shapes: B clips, N frames, h x w tokens per frame (P = h * w), K codebook classes, D = hidden_size, L encoder length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from safetensors import safe_open
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithCrossAttentions
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_mmvg import MMVGConfig
from .decoding import check_decoding_settings, decode_tokens
from .masking import encoder_visual_layout, sample_given_frames, sample_token_mask, update_mask_probabilities
from .memory import check_memory, check_model_size
from .modeling_tvq import TVQModel


PIXEL_RANGE_TOLERANCE = 1e-3
"""How far outside [-1, 1] pixel values may lie (float rounding of the processor's v / 127.5 - 1) before they are
refused as not normalised."""


@dataclass
class MMVGModelOutput(ModelOutput):
    """
    Output of [`MMVGModel.forward`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, N * h * w, D)`): Dec^M's final states of every token,
            in (frame, row, column) order.
        encoder_last_hidden_state (`torch.FloatTensor` of shape `(B, L, D)`): the encoder states {h}.
        encoder_attention_mask (`torch.BoolTensor` of shape `(B, L)`): real positions of {h}.
        encoder_hidden_states, decoder_hidden_states (`tuple(torch.FloatTensor)`, *optional*): the input of the
            first layer and the output of every layer, with `output_hidden_states=True`.
        encoder_attentions (`tuple(torch.FloatTensor)`, *optional*): per layer (B, heads, L, L).
        decoder_attentions (`tuple(torch.FloatTensor)`, *optional*): per layer, the window self-attention weights
            (B, windows * heads, window tokens, window tokens), windows of the padded (N, h, w) grid in raster order
            (the decoder's own layout: each token attends only within its 3D window).
        cross_attentions (`tuple(torch.FloatTensor)`, *optional*): per layer (B, heads, N * h * w, L).
            Attention weights need `attn_implementation="eager"` and `output_attentions=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    encoder_attention_mask: torch.BoolTensor | None = None
    encoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    encoder_attentions: tuple[torch.FloatTensor, ...] | None = None
    decoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    decoder_attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MMVGOutput(ModelOutput):
    """
    Output of [`MMVGForVideoCompletion.forward`].

    Args:
        loss (`torch.FloatTensor`): mean of the per-frame losses L_t over the frame positions that had masked tokens.
        logits (`torch.FloatTensor` of shape `(B, N, h, w, K)`): class logits of every visual token.
        frame_losses (`torch.FloatTensor` of shape `(N,)`): L_t, the mean cross-entropy of the masked tokens of
            frame position t over the batch (0 where no token of position t was masked).
        frame_token_counts (`torch.LongTensor` of shape `(N,)`): masked tokens behind each L_t (positions with 0 take
            no part in the loss nor in the p_t update; under DDP the counts weigh each process's L_t).
        encoder_last_hidden_state (`torch.FloatTensor` of shape `(B, L, D)`): the encoder states {h}.
        encoder_hidden_states, encoder_attentions, decoder_hidden_states, decoder_attentions, cross_attentions:
            as in [`MMVGModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    frame_losses: torch.FloatTensor | None = None
    frame_token_counts: torch.LongTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    encoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    encoder_attentions: tuple[torch.FloatTensor, ...] | None = None
    decoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    decoder_attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MMVGCompletionOutput(ModelOutput):
    """
    Output of [`MMVGForVideoCompletion.complete`].

    Args:
        frames (`torch.FloatTensor` of shape `(B, N, C, H, W)`): the completed clips in [-1, 1]; given frames are
            the input pixels, unchanged.
        token_ids (`torch.LongTensor` of shape `(B, N, h, w)`): the visual tokens of the clips.
        given_frames_mask (`torch.BoolTensor` of shape `(B, N)`).
    """

    frames: torch.FloatTensor | None = None
    token_ids: torch.LongTensor | None = None
    given_frames_mask: torch.BoolTensor | None = None


# ----------------------------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------------------------


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention written out, returning its weights. `query` (B, heads, Lq, d), `key`/`value` (B, heads, Lk, d);
    `attention_mask` boolean (True where a key may be attended) or additive, broadcastable to (B, heads, Lq, Lk).
    Returns `(output (B, Lq, heads, d), weights (B, heads, Lq, Lk))`, the layout of transformers' interface."""
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-2, -1)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        else:
            scores = scores + attention_mask
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def attention_function(config: MMVGConfig):
    """The attention of `config._attn_implementation`: ours written out for "eager", transformers' for the others."""
    implementation = config._attn_implementation or "sdpa"
    return eager_attention_forward if implementation == "eager" else ALL_ATTENTION_FUNCTIONS[implementation]


class MMVGMLP(nn.Module):
    def __init__(self, config: MMVGConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(F.gelu(self.fc1(hidden_states))))


class MMVGAttention(nn.Module):
    """Multi-head attention: the encoder's self-attention and the decoder's cross-attention to {h}.
    `attention_mask` is boolean, True where a key may be attended, broadcastable to (B, heads, Lq, Lk)."""

    def __init__(self, config: MMVGConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.scaling = (config.hidden_size // config.num_attention_heads) ** -0.5
        self.dropout = config.dropout
        self.is_causal = False
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def _split_heads(self, states: torch.Tensor) -> torch.Tensor:
        return rearrange(states, "b l (n d) -> b n l d", n=self.num_heads)

    def key_value(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) -> keys and values (B, heads, L, D / heads), cacheable for cross-attention."""
        return self._split_heads(self.k_proj(states)), self._split_heads(self.v_proj(states))

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Queries from `hidden_states` (B, Lq, D), keys and values from `key_value_states` (B, Lk, D) unless
        `key_value` gives them already projected. Returns `(output (B, Lq, D), weights or None)`."""
        query = self._split_heads(self.q_proj(hidden_states))
        key, value = key_value if key_value is not None else self.key_value(key_value_states)
        attended, weights = attention_function(self.config)(
            self, query, key, value, attention_mask, dropout=self.dropout if self.training else 0.0,
            scaling=self.scaling,
        )  # fmt: skip
        return self.o_proj(attended.flatten(-2)), weights


class MMVGWindowSelfAttention(nn.Module):
    """Block-causal 3D window self-attention of Video Swin, with a relative position bias.

    Tokens at (frame, row, column) are grouped into windows of `config.window_size`, shifted by half a window in
    every dimension smaller than the grid when `shifted`. A token attends to the tokens of its window in its own
    frame and in earlier frames (never later ones), so frame t depends only on frames <= t and the decoder can run
    frame by frame with cached keys. Windows are formed by padding (not rolling), so no window wraps around.

    The windows of a clip go to the attention function as extra heads (B, windows * heads, window tokens, d), so
    the bias, which differs per window and head but not per clip, broadcasts over the batch without a copy.
    """

    def __init__(self, config: MMVGConfig, shifted: bool):
        super().__init__()
        grid = (config.num_frames, config.latent_size, config.latent_size)
        self.config = config
        self.window = tuple(config.window_size)
        self.shift = tuple(w // 2 if shifted and w < g else 0 for w, g in zip(self.window, grid))
        self.num_heads = config.num_attention_heads
        self.scaling = (config.hidden_size // config.num_attention_heads) ** -0.5
        self.dropout = config.dropout
        self.is_causal = False
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)
        window_t, window_h, window_w = self.window
        # offsets: frames 0 .. wt-1 back (causal), rows and columns -(w-1) .. w-1
        self.relative_position_bias = nn.Parameter(
            torch.zeros(window_t, 2 * window_h - 1, 2 * window_w - 1, config.num_attention_heads)
        )

    def attention_bias(
        self, query_coords: torch.Tensor, key_coords: torch.Tensor, key_valid: torch.Tensor
    ) -> torch.Tensor:
        """Additive attention bias (..., heads, Lq, Lk): the relative position bias where a key may be attended
        (same window, not a later frame, a real token; a token always sees itself), -inf elsewhere.
        `query_coords` (..., Lq, 3) and `key_coords` (..., Lk, 3) are (frame, row, column); `key_valid` (..., Lk)."""
        window = torch.tensor(self.window, device=query_coords.device)
        shift = torch.tensor(self.shift, device=query_coords.device)
        query_window = torch.div(query_coords + shift, window, rounding_mode="floor")
        key_window = torch.div(key_coords + shift, window, rounding_mode="floor")
        same_window = (query_window[..., :, None, :] == key_window[..., None, :, :]).all(dim=-1)
        offset = query_coords[..., :, None, :] - key_coords[..., None, :, :]  # (..., Lq, Lk, 3)
        is_self = (offset == 0).all(dim=-1)
        allowed = (same_window & (offset[..., 0] >= 0) & key_valid[..., None, :]) | is_self
        frame_offset = offset[..., 0].clamp(0, self.window[0] - 1)
        row_offset = (offset[..., 1] + self.window[1] - 1).clamp(0, 2 * self.window[1] - 2)
        column_offset = (offset[..., 2] + self.window[2] - 1).clamp(0, 2 * self.window[2] - 2)
        # an embedding lookup into the flattened table rather than advanced indexing: the backward of indexing
        # scatter-adds from several CPU threads in no fixed order (equal runs differed by ~1e-8), while embedding's
        # sums each entry's gradient in index order, so training with the same seed is bit-reproducible
        _, table_rows, table_columns, _ = self.relative_position_bias.shape
        table_index = (frame_offset * table_rows + row_offset) * table_columns + column_offset
        bias = F.embedding(table_index, self.relative_position_bias.flatten(0, 2))  # (..., Lq, Lk, heads)
        bias = bias.masked_fill(~allowed[..., None], float("-inf"))
        return bias.movedim(-1, -3)

    def _attend(self, query, key, value, bias) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`query` (B, G, Lq, d), `key`/`value` (B, G, Lk, d), `bias` (G, Lq, Lk) -> (B, Lq, G, d), weights."""
        return attention_function(self.config)(
            self, query, key, value, bias[None].to(query.dtype), dropout=self.dropout if self.training else 0.0,
            scaling=self.scaling,
        )  # fmt: skip

    def forward(
        self,
        hidden_states: torch.Tensor,
        frame_index: int | None = None,
        cache: list | None = None,
        commit: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All frames at once: tokens (B, N * h * w, D) in (frame, row, column) order -> same shape, cost linear
        in N; or, with `frame_index`, the h * w tokens of one frame (B, h * w, D) given this layer's `cache` of
        earlier frames (see `forward_frame`)."""
        if frame_index is not None:
            return self.forward_frame(hidden_states, frame_index, cache, commit)
        height = width = self.config.latent_size
        hidden_states = rearrange(hidden_states, "b (t h w) d -> b t h w d", h=height, w=width)
        num_frames = hidden_states.shape[1]
        sizes = (num_frames, height, width)
        pads = [(s, (-(n + s)) % w) for n, s, w in zip(sizes, self.shift, self.window)]
        padded = F.pad(hidden_states, (0, 0, *pads[2], *pads[1], *pads[0]))
        axes = [torch.arange(n + before + after, device=hidden_states.device) - before for n, (before, after) in
                zip(sizes, pads)]  # fmt: skip
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (Tp, Hp, Wp, 3)
        valid = ((coords >= 0) & (coords < torch.tensor(sizes, device=coords.device))).all(dim=-1)
        pattern = "(nt wt) (nh wh) (nw ww) c -> (nt nh nw) (wt wh ww) c"
        window_t, window_h, window_w = self.window
        window_coords = rearrange(coords, pattern, wt=window_t, wh=window_h, ww=window_w)
        window_valid = rearrange(valid[..., None], pattern, wt=window_t, wh=window_h, ww=window_w)[..., 0]
        bias = self.attention_bias(window_coords, window_coords, window_valid)  # (windows, heads, l, l)

        windows = rearrange(
            padded, "b (nt wt) (nh wh) (nw ww) d -> b (nt nh nw) (wt wh ww) d", wt=window_t, wh=window_h, ww=window_w
        )
        query, key, value = (
            rearrange(part, "b g l (n d) -> b (g n) l d", n=self.num_heads) for part in self.qkv(windows).chunk(3, -1)
        )
        attended, weights = self._attend(query, key, value, bias.flatten(0, 1))
        attended = self.o_proj(rearrange(attended, "b l (g n) d -> b g l (n d)", n=self.num_heads))
        grid_t, grid_h, grid_w = (n + before + after for n, (before, after) in zip(sizes, pads))
        attended = rearrange(
            attended,
            "b (nt nh nw) (wt wh ww) d -> b (nt wt) (nh wh) (nw ww) d",
            nt=grid_t // window_t, nh=grid_h // window_h, wt=window_t, wh=window_h, ww=window_w,
        )  # fmt: skip
        (t0, _), (h0, _), (w0, _) = pads
        attended = attended[:, t0 : t0 + num_frames, h0 : h0 + height, w0 : w0 + width]
        return rearrange(attended, "b t h w d -> b (t h w) d"), weights

    def forward_frame(
        self, hidden_states: torch.Tensor, frame_index: int, cache: list, commit: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One frame given the cached keys/values of earlier frames: (B, h * w, D) -> (B, h * w, D).

        `cache` is this layer's list of `(frame_index, key, value)`; with `commit` this frame's keys and values are
        appended (and frames that can no longer share a window with a later frame are dropped)."""
        height = width = self.config.latent_size
        tokens = hidden_states
        query, key, value = (
            rearrange(part, "b l (n d) -> b n l d", n=self.num_heads) for part in self.qkv(tokens).chunk(3, dim=-1)
        )
        rows, columns = torch.meshgrid(
            torch.arange(height, device=tokens.device), torch.arange(width, device=tokens.device), indexing="ij"
        )
        spatial = torch.stack([rows.flatten(), columns.flatten()], dim=-1)

        def frame_coords(index: int) -> torch.Tensor:
            return torch.cat([torch.full_like(spatial[:, :1], index), spatial], dim=-1)

        entries = [*cache, (frame_index, key, value)]
        key_coords = torch.cat([frame_coords(index) for index, _, _ in entries])
        bias = self.attention_bias(
            frame_coords(frame_index), key_coords, torch.ones(len(key_coords), dtype=torch.bool, device=tokens.device)
        )
        attended, weights = self._attend(
            query, torch.cat([k for _, k, _ in entries], dim=-2), torch.cat([v for _, _, v in entries], dim=-2), bias
        )
        if commit:
            cache.append((frame_index, key, value))
            del cache[: max(0, len(cache) - (self.window[0] - 1))]
        return self.o_proj(attended.flatten(-2)), weights


class MMVGEncoderLayer(GradientCheckpointingLayer):
    """Pre-norm transformer layer of Enc^M over words, visual tokens of the given frames and [SPAN] tokens."""

    def __init__(self, config: MMVGConfig):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = MMVGAttention(config)
        self.mlp_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = MMVGMLP(config)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, D) with the key mask (B, 1, 1, L) -> (B, L, D)."""
        normed = self.self_attn_layer_norm(hidden_states)
        hidden_states = hidden_states + self.self_attn(normed, normed, attention_mask)[0]
        return hidden_states + self.mlp(self.mlp_layer_norm(hidden_states))


class MMVGDecoderLayer(GradientCheckpointingLayer):
    """Video Swin block of Dec^M: block-causal 3D window self-attention (shifted windows on odd layers),
    cross-attention to {h}, MLP (pre-norm)."""

    def __init__(self, config: MMVGConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.self_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = MMVGWindowSelfAttention(config, shifted=layer_idx % 2 == 1)
        self.cross_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.cross_attn = MMVGAttention(config)
        self.mlp_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = MMVGMLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        cache: MMVGDecoderCache | None = None,
        frame_index: int | None = None,
        commit: bool = False,
    ) -> torch.Tensor:
        """The tokens of all frames (B, N * h * w, D), or with `frame_index` of one frame (B, h * w, D) against
        `cache` (whose cross-attention keys/values are computed once); same shape out. `encoder_attention_mask`
        (B, 1, 1, L)."""
        normed = self.self_attn_layer_norm(hidden_states)
        self_cache = cache.self_attention[self.layer_idx] if cache is not None else None
        hidden_states = hidden_states + self.self_attn(normed, frame_index, self_cache, commit)[0]
        key_value = None if cache is None else cache.cross_key_value(self.layer_idx, self.cross_attn, encoder_hidden_states)
        hidden_states = hidden_states + self.cross_attn(
            self.cross_attn_layer_norm(hidden_states), encoder_hidden_states, encoder_attention_mask, key_value
        )[0]
        return hidden_states + self.mlp(self.mlp_layer_norm(hidden_states))


class MMVGDecoderCache:
    """What completion keeps between decoder calls over fixed encoder states: every layer's cross-attention
    keys/values (computed at the first call) and, per layer, the self-attention keys/values of the last finished
    frames (at most `window_size[0] - 1`, since no later frame can share a window with older ones)."""

    def __init__(self, num_layers: int):
        self.cross_key_values: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.self_attention: list[list] = [[] for _ in range(num_layers)]

    def cross_key_value(self, layer_idx: int, attention: MMVGAttention, encoder_hidden_states: torch.Tensor):
        if layer_idx not in self.cross_key_values:
            self.cross_key_values[layer_idx] = attention.key_value(encoder_hidden_states)
        return self.cross_key_values[layer_idx]


def adjacent_frame(
    token_ids: torch.LongTensor, known: torch.BoolTensor, step: int, frame_index: int | None = None
) -> tuple[torch.LongTensor, torch.BoolTensor]:
    """The ids and known flags of frame t + `step` (-1: the previous frame, +1: the next) aligned with every frame t
    (B, N, h, w), or with frame `frame_index` (B, 1, h, w); the flags are False where that frame does not exist. The
    next frame is read only by frames with masked tokens of their own (its flags are False at fully known frames): a
    finished frame is context for later frames and never waits for its future, so what autoregressive decoding
    caches when a frame is finished equals what the whole clip's pass computes."""
    if step == -1:
        ids = torch.cat([torch.zeros_like(token_ids[:, :1]), token_ids[:, :-1]], dim=1)
        flags = torch.cat([torch.zeros_like(known[:, :1]), known[:, :-1]], dim=1)
    elif step == 1:
        ids = torch.cat([token_ids[:, 1:], torch.zeros_like(token_ids[:, :1])], dim=1)
        flags = torch.cat([known[:, 1:], torch.zeros_like(known[:, :1])], dim=1)
        flags = flags & ~known.flatten(2).all(dim=-1)[:, :, None, None]
    else:
        raise ValueError(f"`step` must be -1 or +1, got {step}.")
    if frame_index is not None:
        ids, flags = ids[:, frame_index, None], flags[:, frame_index, None]
    return ids, flags


def neighbourhood(codes: torch.Tensor, known: torch.BoolTensor, radius: int) -> torch.Tensor:
    """(B, T, h, w, C) code vectors and (B, T, h, w) known flags -> (B, T, h, w, (2r + 1)^2 * (C + 1)): at every
    position, `[code * known, known]` of each position (row + dy, column + dx), dy and dx in -r..r (row-major), with
    zeros off the grid."""
    height, width = known.shape[-2:]
    features = torch.cat([codes * known[..., None], known[..., None].to(codes.dtype)], dim=-1)
    padded = F.pad(features, (0, 0, radius, radius, radius, radius))  # last dims first: channels, columns, rows
    offsets = range(2 * radius + 1)
    return torch.cat([padded[:, :, dy : dy + height, dx : dx + width] for dy in offsets for dx in offsets], dim=-1)


def neighbourhood_ids(
    token_ids: torch.LongTensor, known: torch.BoolTensor, radius: int
) -> tuple[torch.LongTensor, torch.BoolTensor]:
    """The ids and known flags of the (2r + 1)^2 positions around each position of `token_ids`, `known` (B, T, h, w):
    (B, T, h, w, (2r + 1)^2) each, offsets row-major as in `neighbourhood`; off the grid the flag is False."""
    height, width = known.shape[-2:]
    padded_ids = F.pad(token_ids, (radius, radius, radius, radius))
    padded_known = F.pad(known, (radius, radius, radius, radius))  # False off the grid
    offsets = [(dy, dx) for dy in range(2 * radius + 1) for dx in range(2 * radius + 1)]
    ids = torch.stack([padded_ids[..., dy : dy + height, dx : dx + width] for dy, dx in offsets], dim=-1)
    flags = torch.stack([padded_known[..., dy : dy + height, dx : dx + width] for dy, dx in offsets], dim=-1)
    return ids, flags


class MMVGEmbeddings(nn.Module):
    """The inputs of Enc^M and Dec^M.

    - Enc^M reads `[LP^w(words), LP^v(tokens of the given frames) / one [SPAN] per run of hidden frames]` with
      modality, frame and spatial position embeddings. LP^v acts on the frozen T-VQ code vectors
      (`visual_token_embeddings`, a copy of the T-VQ's codebook), so similar patches start with similar embeddings.
    - Dec^M reads every visual token (or [MASK]) plus the same token of the previous frame (or [MASK], or "no
      previous frame" at frame 0) or its neighbourhood (`previous_frame_radius`), with `next_frame_copy` also the
      next frame's neighbourhood, with the same frame and spatial positions.
    """

    def __init__(self, config: MMVGConfig):
        super().__init__()
        hidden, code_dim = config.hidden_size, config.tvq_config.codebook_dim
        self.tokens_per_frame = config.tokens_per_frame
        # LP^w (factorised) and the text positions
        self.word_embeddings = nn.Embedding(config.text_vocab_size, config.text_embedding_size)
        self.word_embeddings.unit_init = True  # followed by a projection with `initializer_range`
        self.word_projection = nn.Linear(config.text_embedding_size, hidden)
        self.text_position_embeddings = nn.Embedding(config.max_text_length, hidden)
        # the frozen code vectors, LP^v for the encoder, [SPAN], and positions shared by encoder and decoder
        self.visual_token_embeddings = nn.Embedding(config.codebook_size, code_dim)
        self.visual_token_embeddings.weight.requires_grad_(False)
        self.visual_projection = nn.Linear(code_dim, hidden)
        self.span_embedding = nn.Parameter(torch.zeros(hidden))
        self.modality_embeddings = nn.Embedding(2, hidden)  # 0 text, 1 video
        self.frame_position_embeddings = nn.Embedding(config.num_frames, hidden)
        self.spatial_position_embeddings = nn.Embedding(config.tokens_per_frame, hidden)
        # decoder inputs: the token itself or [MASK], plus the previous frame's token, [MASK] or "no frame"
        self.decoder_token_projection = nn.Linear(code_dim, hidden)
        self.mask_embedding = nn.Parameter(torch.zeros(hidden))
        self.previous_frame_radius = radius = config.previous_frame_radius
        previous_features = code_dim if radius == 0 else (2 * radius + 1) ** 2 * (code_dim + 1)
        self.previous_token_projection = (
            nn.Linear(previous_features, hidden) if config.use_previous_frame_input else None
        )
        self.previous_mask_embedding = nn.Parameter(torch.zeros(hidden))
        self.previous_start_embedding = nn.Parameter(torch.zeros(hidden))
        # the next frame's neighbourhood (`next_frame_copy`); zero at the start, so a model trained without it
        # continues unchanged
        self.next_token_projection = None
        if config.next_frame_copy:
            self.next_token_projection = nn.Linear((2 * radius + 1) ** 2 * (code_dim + 1), hidden)
            self.next_token_projection.zero_init = True

    def code_vectors(self) -> torch.Tensor:
        """The frozen T-VQ code vectors (K, codebook_dim)."""
        return self.visual_token_embeddings.weight.detach()

    def encoder_inputs(
        self, input_ids: torch.LongTensor, video_token_ids: torch.LongTensor, given_frames_mask: torch.BoolTensor
    ) -> tuple[torch.Tensor, torch.BoolTensor]:
        """`[words, V-bar]` embedded (B, L, D), and which of its visual positions are real (B, L - text length)."""
        text_positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        text = self.word_projection(self.word_embeddings(input_ids))
        text = text + self.text_position_embeddings(text_positions) + self.modality_embeddings.weight[0]

        flat_ids = rearrange(video_token_ids, "b t h w -> b t (h w)")
        layout = encoder_visual_layout(given_frames_mask, self.tokens_per_frame)
        codes = F.embedding(layout.gather_token_ids(flat_ids), self.code_vectors())
        visual = torch.where(layout.is_span[..., None], self.span_embedding, self.visual_projection(codes))
        visual = visual + self.frame_position_embeddings(layout.frame_index) + self.modality_embeddings.weight[1]
        visual = visual + self.spatial_position_embeddings(layout.spatial_index) * (~layout.is_span[..., None])
        return torch.cat([text, visual], dim=1), layout.attention_mask

    def decoder_inputs(
        self, token_ids: torch.LongTensor, known: torch.BoolTensor, frame_index: int | None = None
    ) -> torch.Tensor:
        """Embeddings of the decoder inputs, in (frame, row, column) order: of all frames (B, N * h * w, D), or of
        frame `frame_index` (B, h * w, D). `token_ids`, `known` (B, N, h, w): the clip's tokens and which of them are
        known (the others are [MASK])."""
        if frame_index is None:
            frames = torch.arange(token_ids.shape[1], device=token_ids.device)
            own_ids, own_known = token_ids, known
        else:
            frames = torch.tensor([frame_index], device=token_ids.device)
            own_ids, own_known = token_ids[:, frame_index, None], known[:, frame_index, None]
        codes = self.code_vectors()
        own = self.decoder_token_projection(F.embedding(own_ids, codes))
        hidden_states = torch.where(own_known[..., None], own, self.mask_embedding)
        radius = self.previous_frame_radius
        if self.previous_token_projection is not None:
            previous_ids, previous_known = adjacent_frame(token_ids, known, -1, frame_index)
            previous_codes = F.embedding(previous_ids, codes)
            if radius > 0:
                previous = self.previous_token_projection(neighbourhood(previous_codes, previous_known, radius))
            else:
                previous = self.previous_token_projection(previous_codes)
                previous = torch.where(previous_known[..., None], previous, self.previous_mask_embedding)
            is_first = (frames == 0)[None, :, None, None, None]
            hidden_states = hidden_states + torch.where(is_first, self.previous_start_embedding, previous)
        if self.next_token_projection is not None:
            next_ids, next_known = adjacent_frame(token_ids, known, 1, frame_index)
            hidden_states = hidden_states + self.next_token_projection(
                neighbourhood(F.embedding(next_ids, codes), next_known, radius)
            )
        height, width = token_ids.shape[2:]
        spatial = self.spatial_position_embeddings.weight.view(height, width, -1)
        hidden_states = hidden_states + self.frame_position_embeddings(frames)[None, :, None, None] + spatial
        return rearrange(hidden_states, "b t h w d -> b (t h w) d")


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


class MMVGPreTrainedModel(PreTrainedModel):
    config: MMVGConfig
    config_class = MMVGConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    input_modalities = ("text", "video")
    accepts_loss_kwargs = False
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = ["MMVGEncoderLayer", "MMVGDecoderLayer", "TVQModel"]
    _keys_to_ignore_on_load_unexpected = [r"tvq\.temporal_head\..*"]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """As `PreTrainedModel.from_pretrained`; when the saved weights do not fit the requested config, the error
        names the weights whose shapes differ and the config fields that the overrides (`num_frames=`,
        `tvq_config=`, `config=`) change, or says that no override explains it: then the folder's config.json does
        not describe its weights (transformers' own error only points at a logged report, which a quiet logger
        hides)."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except RuntimeError as error:
            if "ignore_mismatched_sizes" not in str(error):
                raise
            config_kwargs = {key: value for key, value in kwargs.items() if key != "config"}
            saved = cls.config_class.from_pretrained(pretrained_model_name_or_path)
            requested = kwargs.get("config") or cls.config_class.from_pretrained(
                pretrained_model_name_or_path, return_unused_kwargs=True, **config_kwargs
            )[0]
            weights = _weight_shape_mismatches(cls, pretrained_model_name_or_path, requested)
            differences = _config_differences(saved.to_dict(), requested.to_dict())
            if differences:
                cause = f"the overrides change {'; '.join(differences)}. Load it without these overrides"
            else:
                cause = (
                    "no override explains it: its config.json does not describe its weights (edited, or saved with "
                    "other weights). Restore the config.json saved with these weights"
                )
            raise RuntimeError(
                f"{pretrained_model_name_or_path} holds weights of another shape than the requested config"
                f"{weights}; {cause}, or pass `ignore_mismatched_sizes=True` to re-initialise the mismatched weights."
            ) from error

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            if getattr(module, "zero_init", False):
                init.zeros_(module.weight)
            else:
                init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0 if getattr(module, "unit_init", False) else std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, MMVGWindowSelfAttention):
            init.zeros_(module.relative_position_bias)
        elif isinstance(module, MMVGEmbeddings):
            for name in ("span_embedding", "mask_embedding", "previous_mask_embedding", "previous_start_embedding"):
                init.normal_(getattr(module, name), mean=0.0, std=std)
        elif isinstance(module, MMVGForVideoCompletion):  # after its children: the T-VQ's codes are set
            init.constant_(module.mask_probabilities, self.config.mask_probability)
            init.copy_(module.model.embeddings.visual_token_embeddings.weight, module.tvq.quantizer.codebook_vectors())


def _weight_shape_mismatches(cls, folder, config: MMVGConfig, shown: int = 3) -> str:
    """` (model.x: checkpoint (6, 32), model (12, 32); ... and N more)` for the weights whose saved shape differs
    from `cls(config)`'s, read from the safetensors headers of a local folder without loading any weight; empty when
    `folder` is not a local folder."""
    files = sorted(Path(folder).glob("*.safetensors")) if Path(folder).is_dir() else []
    if not files:
        return ""
    with torch.device("meta"):  # shapes only: nothing is allocated
        expected = {name: tuple(tensor.shape) for name, tensor in cls(config).state_dict().items()}
    mismatches = []
    for file in files:
        with safe_open(file, framework="pt") as weights:
            for name in weights.keys():
                saved_shape = tuple(weights.get_slice(name).get_shape())
                if name in expected and expected[name] != saved_shape:
                    mismatches.append(f"{name}: checkpoint {saved_shape}, model {expected[name]}")
    if not mismatches:
        return ""
    more = f" and {len(mismatches) - shown} more" if len(mismatches) > shown else ""
    return f" ({'; '.join(mismatches[:shown])}{more})"


def _config_differences(saved: dict, requested: dict, prefix: str = "") -> list[str]:
    """`field: checkpoint value -> requested value` for every (nested) config field that differs."""
    differences = []
    for key in sorted(saved.keys() | requested.keys(), key=str):
        if str(key).startswith("_") or key in ("transformers_version", "architectures", "dtype"):
            continue
        old, new = saved.get(key), requested.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differences += _config_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            differences.append(f"{prefix}{key}: checkpoint {old!r}, requested {new!r}")
    return differences


class MMVGEncoder(MMVGPreTrainedModel):
    """Enc^M: full self-attention over the embedded `[words, V-bar]` (see `MMVGEmbeddings.encoder_inputs`)."""

    _can_record_outputs = {"hidden_states": MMVGEncoderLayer, "attentions": MMVGAttention}

    def __init__(self, config: MMVGConfig):
        super().__init__(config)
        self.layers = nn.ModuleList([MMVGEncoderLayer(config) for _ in range(config.num_encoder_layers)])
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    @capture_outputs(tie_last_hidden_states=False)
    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.BoolTensor, **kwargs) -> BaseModelOutput:
        """`inputs_embeds` (B, L, D), `attention_mask` (B, L) True at real positions -> {h} (B, L, D)."""
        hidden_states = inputs_embeds
        layer_mask = attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            hidden_states = layer(hidden_states, layer_mask)
        return BaseModelOutput(last_hidden_state=self.layer_norm(hidden_states))


class MMVGDecoder(MMVGPreTrainedModel):
    """Dec^M: Video Swin blocks, block-causal over frames, cross-attending to {h} (see `MMVGDecoderLayer`)."""

    _can_record_outputs = {
        "hidden_states": MMVGDecoderLayer,
        "attentions": OutputRecorder(MMVGWindowSelfAttention, index=1),
        "cross_attentions": OutputRecorder(MMVGAttention, index=1, layer_name="cross_attn"),
    }

    def __init__(self, config: MMVGConfig):
        super().__init__(config)
        self.layers = nn.ModuleList([MMVGDecoderLayer(config, index) for index in range(config.num_decoder_layers)])
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        inputs_embeds: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.BoolTensor,
        cache: MMVGDecoderCache | None = None,
        frame_index: int | None = None,
        commit: bool = False,
        **kwargs,
    ) -> BaseModelOutputWithCrossAttentions:
        """`inputs_embeds` of all frames (B, N * h * w, D), or of frame `frame_index` (B, h * w, D) with the keys and
        values of earlier frames in `cache` (`commit` adds this frame's); `encoder_hidden_states` {h} (B, L, D) and
        its mask (B, L). Returns the final states, same shape as `inputs_embeds`."""
        hidden_states = inputs_embeds
        layer_mask = encoder_attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            hidden_states = layer(
                hidden_states, encoder_hidden_states, layer_mask, cache=cache, frame_index=frame_index, commit=commit
            )
        return BaseModelOutputWithCrossAttentions(last_hidden_state=self.layer_norm(hidden_states))


class MMVGModel(MMVGPreTrainedModel):
    """The base model: captions and the visual token ids of a clip in, hidden states out.

    Enc^M reads the caption and the given frames (as V-bar); Dec^M reads every visual token, [MASK] where
    `token_mask` is True, and returns one state per token (B, N * h * w, D). Pixels, the token head and the loss are
    [`MMVGForVideoCompletion`]'s.
    """

    def __init__(self, config: MMVGConfig):
        # impossible sizes are refused before anything is allocated (the estimate covers the whole
        # MMVGForVideoCompletion, T-VQ included, which builds this first)
        check_model_size(config)
        super().__init__(config)
        self.embeddings = MMVGEmbeddings(config)
        self.encoder = MMVGEncoder(config)
        self.decoder = MMVGDecoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def encode(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None,
        video_token_ids: torch.LongTensor,
        given_frames_mask: torch.BoolTensor,
        **kwargs,
    ) -> MMVGModelOutput:
        """Enc^M over `[words, V-bar]`: `encoder_last_hidden_state` {h} (B, L, D) and `encoder_attention_mask`
        (B, L) bool (and the encoder's hidden states / attentions when asked for)."""
        if input_ids.shape[1] > self.config.max_text_length:
            raise ValueError(
                f"`input_ids` has {input_ids.shape[1]} tokens; the model reads at most {self.config.max_text_length} "
                "(`config.max_text_length`). Tokenize with the processor, which truncates."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs_embeds, visual_mask = self.embeddings.encoder_inputs(input_ids, video_token_ids, given_frames_mask)
        encoder_attention_mask = torch.cat([attention_mask.bool(), visual_mask], dim=1)
        encoded = self.encoder(inputs_embeds, encoder_attention_mask, **kwargs)
        return MMVGModelOutput(
            encoder_last_hidden_state=encoded.last_hidden_state,
            encoder_attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoded.get("hidden_states"),
            encoder_attentions=encoded.get("attentions"),
        )

    def decode(
        self,
        video_token_ids: torch.LongTensor,
        known: torch.BoolTensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.BoolTensor,
        cache: MMVGDecoderCache | None = None,
        frame_index: int | None = None,
        commit: bool = False,
        **kwargs,
    ) -> BaseModelOutputWithCrossAttentions:
        """Dec^M: final states of all frames (B, N * h * w, D), or of frame `frame_index` (B, h * w, D) with `cache`
        (see `MMVGDecoder`). `known` (B, N, h, w) is False where the decoder reads [MASK]."""
        inputs_embeds = self.embeddings.decoder_inputs(video_token_ids, known, frame_index)
        return self.decoder(
            inputs_embeds, encoder_hidden_states, encoder_attention_mask, cache=cache, frame_index=frame_index,
            commit=commit, **kwargs,
        )  # fmt: skip

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        video_token_ids: torch.LongTensor,
        given_frames_mask: torch.BoolTensor,
        token_mask: torch.BoolTensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> MMVGModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, L_text)`): CLIP token ids of the captions.
            video_token_ids (`torch.LongTensor` of shape `(B, N, h, w)`): T-VQ tokens of the clips.
            given_frames_mask (`torch.BoolTensor` of shape `(B, N)`): frames given to the encoder.
            token_mask (`torch.BoolTensor` of shape `(B, N, h, w)`): tokens the decoder reads as [MASK].
            attention_mask (`torch.Tensor` of shape `(B, L_text)`, *optional*): 1 for real tokens, 0 for padding.
        """
        encoded = self.encode(input_ids, attention_mask, video_token_ids, given_frames_mask, **kwargs)
        decoded = self.decode(
            video_token_ids, ~token_mask.bool(), encoded.encoder_last_hidden_state, encoded.encoder_attention_mask,
            **kwargs,
        )  # fmt: skip
        return MMVGModelOutput(
            last_hidden_state=decoded.last_hidden_state,
            encoder_last_hidden_state=encoded.encoder_last_hidden_state,
            encoder_attention_mask=encoded.encoder_attention_mask,
            encoder_hidden_states=encoded.encoder_hidden_states,
            encoder_attentions=encoded.encoder_attentions,
            decoder_hidden_states=decoded.get("hidden_states"),
            decoder_attentions=decoded.get("attentions"),
            cross_attentions=decoded.get("cross_attentions"),
        )


class MMVGTokenHead(nn.Module):
    """Final states (..., D) -> class logits (..., K): a query scored against the frozen code vectors, plus a free,
    zero-initialised per-class term; with `previous_frame_copy` (and `next_frame_copy`), plus a zero-initialised
    weight per offset of the previous (next) frame's neighbourhood, added to the logit of the token found there
    (when it is known)."""

    def __init__(self, config: MMVGConfig):
        super().__init__()
        self.code_query = nn.Linear(config.hidden_size, config.tvq_config.codebook_dim)
        self.class_logits = nn.Linear(config.hidden_size, config.codebook_size)
        self.class_logits.zero_init = True
        self.copy_radius = config.previous_frame_radius
        offsets = (2 * self.copy_radius + 1) ** 2
        self.copy_weights = self.next_copy_weights = None
        if config.previous_frame_copy:
            self.copy_weights = nn.Linear(config.hidden_size, offsets)
            self.copy_weights.zero_init = True
        if config.next_frame_copy:
            self.next_copy_weights = nn.Linear(config.hidden_size, offsets)
            self.next_copy_weights.zero_init = True

    def forward(
        self,
        hidden_states: torch.Tensor,
        code_vectors: torch.Tensor,
        token_ids: torch.LongTensor | None = None,
        known: torch.BoolTensor | None = None,
        frame_index: int | None = None,
    ) -> torch.Tensor:
        """`hidden_states` (B, L, D) of all frames or of frame `frame_index`, in (frame, row, column) order ->
        logits (B, L, K). `token_ids` and `known` (B, N, h, w), the decoder's inputs, are needed for the copy terms."""
        logits = self.code_query(hidden_states) @ code_vectors.t() + self.class_logits(hidden_states)
        for step, copy_weights in ((-1, self.copy_weights), (1, self.next_copy_weights)):
            if copy_weights is None:
                continue
            ids, flags = neighbourhood_ids(*adjacent_frame(token_ids, known, step, frame_index), self.copy_radius)
            weights = copy_weights(hidden_states).to(logits.dtype)
            zero = torch.zeros((), dtype=logits.dtype, device=logits.device)
            logits = logits.scatter_add(-1, ids.flatten(1, 3), torch.where(flags.flatten(1, 3), weights, zero))
        return logits


class MMVGForVideoCompletion(MMVGPreTrainedModel):
    """MMVG: completes a clip of N frames from any given frames and a caption.

    - `model` ([`MMVGModel`]): embeddings, Enc^M and Dec^M over token ids.
    - `tvq`: the frozen T-VQ, turning pixels into h x w tokens per frame and back.
    - `head` ([`MMVGTokenHead`]): each token's class logits.
    - `mask_probabilities` (buffer, saved with the model): the adaptive p_t, drawn from by `draw_training_masks`
      and updated by `update_mask_probabilities`.
    """

    def __init__(self, config: MMVGConfig):
        super().__init__(config)
        self.model = MMVGModel(config)  # built first: it refuses impossible sizes before anything is allocated
        self.tvq = TVQModel(config.tvq_config)
        self.tvq.requires_grad_(False)
        self.head = MMVGTokenHead(config)
        self.register_buffer("mask_probabilities", torch.full((config.num_frames,), config.mask_probability))
        self.post_init()

    # -- construction ------------------------------------------------------------------------------------------

    @classmethod
    def from_tvq(cls, tvq: TVQModel | str, **config_kwargs) -> MMVGForVideoCompletion:
        """A new MMVG around a trained T-VQ (a `TVQModel` or a path / repo id of one); `config_kwargs` set the other
        `MMVGConfig` fields. The T-VQ weights are copied in and frozen."""
        if not isinstance(tvq, TVQModel):
            tvq = TVQModel.from_pretrained(tvq)
        model = cls(MMVGConfig(tvq_config=tvq.config.to_dict(), **config_kwargs))
        model.tvq.load_state_dict(tvq.state_dict())
        model.copy_tvq_codebook()
        return model

    @torch.no_grad()
    def copy_tvq_codebook(self) -> None:
        """Copy the T-VQ's code vectors (as its lookup uses them) into the base model's frozen visual token
        embeddings, so that `model` reads tokens as the T-VQ that made them. Call it after replacing `tvq`."""
        self.model.embeddings.visual_token_embeddings.weight.copy_(self.tvq.quantizer.codebook_vectors())

    def _check_codebook(self) -> None:
        # the base model reads tokens through its copy of the T-VQ's code vectors: a changed `tvq` must be copied in
        if not torch.equal(self.model.embeddings.code_vectors(), self.tvq.quantizer.codebook_vectors().detach()):
            raise ValueError(
                "`model.tvq`'s codebook differs from the code vectors the base model reads tokens with "
                "(`model.model.embeddings.visual_token_embeddings`); after changing the T-VQ, call "
                "`model.copy_tvq_codebook()`."
            )

    def train(self, mode: bool = True):
        """As `nn.Module.train`, but the frozen T-VQ always stays in eval mode."""
        super().train(mode)
        self.tvq.eval()
        return self

    # -- inputs ------------------------------------------------------------------------------------------------

    def _check_pixels(self, pixel_values_videos: torch.Tensor) -> None:
        config = self.config
        expected = (config.num_frames, config.tvq_config.in_channels, config.image_size, config.image_size)
        if pixel_values_videos.ndim != 5 or tuple(pixel_values_videos.shape[1:]) != expected:
            raise ValueError(
                f"`pixel_values_videos` must have shape (batch, {', '.join(map(str, expected))}), got "
                f"{tuple(pixel_values_videos.shape)}."
            )
        if not torch.isfinite(pixel_values_videos).all():
            raise ValueError("`pixel_values_videos` contains NaN or infinite values.")
        low, high = (value.item() for value in torch.aminmax(pixel_values_videos))
        if low < -1 - PIXEL_RANGE_TOLERANCE or high > 1 + PIXEL_RANGE_TOLERANCE:
            raise ValueError(
                f"`pixel_values_videos` must lie in [-1, 1] (uint8 value v as v / 127.5 - 1, as `MMVGProcessor` "
                f"gives them), got values in [{low:.4g}, {high:.4g}]."
            )

    @torch.no_grad()
    def tokenize_video(self, pixel_values_videos: torch.Tensor) -> torch.LongTensor:
        """Frames (B, N, C, H, W) in [-1, 1] -> visual tokens (B, N, h, w) with the frozen T-VQ."""
        self._check_pixels(pixel_values_videos)
        return self.tvq.encode(pixel_values_videos).token_ids

    def _visual_token_ids(self, pixel_values_videos, video_token_ids) -> torch.LongTensor:
        if video_token_ids is None:
            if pixel_values_videos is None:
                raise ValueError("Pass `pixel_values_videos` or `video_token_ids`.")
            return self.tokenize_video(pixel_values_videos)
        config = self.config
        expected = (config.num_frames, config.latent_size, config.latent_size)
        if video_token_ids.ndim != 4 or tuple(video_token_ids.shape[1:]) != expected:
            raise ValueError(
                f"`video_token_ids` must have shape (batch, {', '.join(map(str, expected))}), got "
                f"{tuple(video_token_ids.shape)}."
            )
        if video_token_ids.min() < 0 or video_token_ids.max() >= config.codebook_size:
            raise ValueError(f"`video_token_ids` must lie in [0, {config.codebook_size}).")
        return video_token_ids

    def _null_text(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The empty prompt `[bos, eos]` for every clip of the batch (the unconditional input of guidance), padded
        with eos (attention mask 0) to the width of `input_ids`, at least 2."""
        batch_size, width = input_ids.shape[0], max(input_ids.shape[1], 2)
        ids = torch.full((batch_size, width), self.config.text_eos_token_id, device=input_ids.device)
        ids[:, 0] = self.config.text_bos_token_id
        mask = torch.zeros(batch_size, width, dtype=torch.long, device=input_ids.device)
        mask[:, :2] = 1
        return ids, mask

    def video_logits(
        self,
        video_token_ids: torch.LongTensor,
        known: torch.BoolTensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.BoolTensor,
        cache: MMVGDecoderCache | None = None,
        frame_index: int | None = None,
        commit: bool = False,
    ) -> torch.Tensor:
        """Class logits of all frames (B, N, h, w, K), or of frame `frame_index` (B, h, w, K); see `MMVGModel.decode`."""
        decoded = self.model.decode(
            video_token_ids, known, encoder_hidden_states, encoder_attention_mask, cache, frame_index, commit
        )
        logits = self.head(
            decoded.last_hidden_state, self.model.embeddings.code_vectors(), video_token_ids, known, frame_index
        )
        shape = video_token_ids.shape if frame_index is None else video_token_ids[:, 0].shape
        return logits.view(*shape, -1)

    # -- training ----------------------------------------------------------------------------------------------

    @torch.no_grad()
    def draw_training_masks(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_token_ids: torch.LongTensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """The random part of a training step, drawn outside `forward` (which is a pure function of its inputs):

        - the given frames, each frame t hidden with probability p_t (`mask_probabilities`), or a named task's
          (`masking.sample_given_frames`);
        - the masked tokens of the hidden frames (`masking.sample_token_mask`);
        - captions replaced by the empty prompt with probability `text_drop_probability` (for classifier-free
          guidance).

        Returns the keyword arguments of `forward`: the inputs given, with `given_frames_mask` and `token_mask` added
        and the dropped captions replaced. `MMVGTrainer` calls it inside each step, then updates p_t from the output
        (`update_mask_probabilities`)."""
        config = self.config
        batch_size = input_ids.shape[0]
        visual = video_token_ids if video_token_ids is not None else pixel_values_videos
        if visual is None:
            raise ValueError("Pass `pixel_values_videos` (B, N, C, H, W) or `video_token_ids` (B, N, h, w).")
        device = visual.device
        given_frames_mask = sample_given_frames(
            self.mask_probabilities.to(device), batch_size, task_probability=config.task_masking_probability,
            generator=generator,
        )  # fmt: skip
        token_mask = sample_token_mask(
            given_frames_mask, config.tokens_per_frame, config.sequential_masking_probability, generator=generator
        ).view(batch_size, -1, config.latent_size, config.latent_size)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if config.text_drop_probability > 0:
            drop = torch.rand(batch_size, generator=generator, device=device) < config.text_drop_probability
            if drop.any():
                null_ids, null_mask = self._null_text(input_ids)
                width = input_ids.shape[1]
                input_ids = torch.where(drop[:, None], null_ids[:, :width], input_ids)
                attention_mask = torch.where(drop[:, None], null_mask[:, :width], attention_mask)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "given_frames_mask": given_frames_mask,
                  "token_mask": token_mask}  # fmt: skip
        if video_token_ids is not None:
            inputs["video_token_ids"] = video_token_ids
        else:
            inputs["pixel_values_videos"] = pixel_values_videos
        return inputs

    @torch.no_grad()
    def update_mask_probabilities(self, frame_losses: torch.Tensor, frame_token_counts: torch.Tensor) -> None:
        """The adaptive rule on the buffer p_t, from the per-frame losses L_t of a batch and the number of masked
        tokens behind each (positions without any take no part; `masking.update_mask_probabilities`). Under DDP,
        pass the losses and counts of the global batch, so that every process keeps the same p_t."""
        config = self.config
        updated = update_mask_probabilities(
            self.mask_probabilities, frame_losses, config.mask_probability_alpha, valid=frame_token_counts > 0,
            bounds=tuple(config.mask_probability_range),
        )  # fmt: skip
        self.mask_probabilities.copy_(updated)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_token_ids: torch.LongTensor | None = None,
        given_frames_mask: torch.BoolTensor | None = None,
        token_mask: torch.BoolTensor | None = None,
        **kwargs,
    ) -> MMVGOutput:
        r"""
        Masked video generation loss: a pure function of its inputs (same inputs, same outputs; no buffer changes).

        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): CLIP token ids of the captions.
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 for real tokens, 0 for padding.
            pixel_values_videos (`torch.FloatTensor` of shape `(B, N, C, H, W)`): frames in [-1, 1]; or
            video_token_ids (`torch.LongTensor` of shape `(B, N, h, w)`): their T-VQ tokens (e.g. cached).
            given_frames_mask (`torch.BoolTensor` of shape `(B, N)`): frames given to the model.
            token_mask (`torch.BoolTensor` of shape `(B, N, h, w)`): decoder tokens replaced by [MASK] and predicted;
                False on given frames. Both masks come from `draw_training_masks` in training (or any other rule).
            output_attentions, output_hidden_states (`bool`, *optional*): also return the attention weights (with
                `attn_implementation="eager"`) and the hidden states of every layer.
        """
        if given_frames_mask is None or token_mask is None:
            raise ValueError(
                "Pass `given_frames_mask` (B, N) and `token_mask` (B, N, h, w): draw them for training with "
                "`model.draw_training_masks(input_ids, attention_mask, video_token_ids=...)`, which returns every "
                "input of `forward`."
            )
        self._check_codebook()
        token_ids = self._visual_token_ids(pixel_values_videos, video_token_ids)
        device = token_ids.device
        given_frames_mask = given_frames_mask.to(device=device, dtype=torch.bool)
        token_mask = token_mask.to(device=device, dtype=torch.bool)
        if token_mask.shape != token_ids.shape or given_frames_mask.shape != token_ids.shape[:2]:
            raise ValueError(
                f"`token_mask` must have shape {tuple(token_ids.shape)} and `given_frames_mask` "
                f"{tuple(token_ids.shape[:2])}; got {tuple(token_mask.shape)} and {tuple(given_frames_mask.shape)}."
            )
        if (token_mask & given_frames_mask[:, :, None, None]).any():
            raise ValueError("`token_mask` masks tokens of given frames; given frames are never predicted.")

        outputs = self.model(
            input_ids, token_ids, given_frames_mask, token_mask, attention_mask=attention_mask, **kwargs
        )
        known = ~token_mask  # what the decoder saw: every token but the masked ones
        logits = self.head(outputs.last_hidden_state, self.model.embeddings.code_vectors(), token_ids, known)
        logits = logits.view(*token_ids.shape, -1)

        token_losses = F.cross_entropy(rearrange(logits, "b t h w k -> b k t h w").float(), token_ids,
                                       reduction="none")  # fmt: skip
        loss_sums = (token_losses * token_mask).sum(dim=(0, 2, 3))
        counts = token_mask.sum(dim=(0, 2, 3))
        frame_losses = loss_sums / counts.clamp(min=1)
        return MMVGOutput(
            loss=frame_losses[counts > 0].mean(),
            logits=logits,
            frame_losses=frame_losses.detach(),
            frame_token_counts=counts,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
        )

    # -- completion --------------------------------------------------------------------------------------------

    @torch.no_grad()
    def complete(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        given_frames_mask: torch.BoolTensor | None = None,
        video_token_ids: torch.LongTensor | None = None,
        decoding: str = "parallel",
        num_inference_steps: int = 12,
        guidance_scale: float = 1.0,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> MMVGCompletionOutput:
        r"""
        Complete clips from their given frames and captions.

        Args:
            input_ids, attention_mask: tokenized captions (B, L); an empty prompt is allowed.
            pixel_values_videos (`torch.FloatTensor` of shape `(B, N, C, H, W)`): frames in [-1, 1]; only the given
                frames are read (the others may hold anything in that range, e.g. zeros).
            given_frames_mask (`torch.BoolTensor` of shape `(B, N)`): True at the given frames (any set, also none).
            video_token_ids (`torch.LongTensor` of shape `(B, N, h, w)`, *optional*): tokens instead of pixels; then
                the output frames are all decoded from tokens.
            decoding (`str`): `"parallel"` (MaskGIT, `num_inference_steps` model calls), `"frame_by_frame"` (one
                frame at a time, nearest to a given frame first, each by MaskGIT: `num_inference_steps` calls per
                frame) or `"autoregressive"` (frame by frame, token by token in raster order, with cached
                keys/values: N * h * w calls); `decoding.py`.
            guidance_scale (`float`): classifier-free guidance; 1 uses the caption only, > 1 also runs the empty
                prompt and extrapolates away from it.
            temperature, top_k, top_p: sampling; `temperature=0` is greedy.
            generator (`torch.Generator`, *optional*): for reproducible sampling.
            progress (`bool`): show a progress bar over the decoding steps.
        """
        check_decoding_settings(decoding=decoding, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                                temperature=temperature, top_k=top_k, top_p=top_p, generator=generator,
                                progress=progress)  # fmt: skip
        check_memory(self.config, input_ids.shape[0], self.device, training=False, guidance=guidance_scale != 1.0)
        if given_frames_mask is None:
            raise ValueError("Pass `given_frames_mask` (B, N): True at the frames that are given.")
        self._check_codebook()
        token_ids = self._visual_token_ids(pixel_values_videos, video_token_ids)
        batch_size, num_frames = token_ids.shape[:2]
        given_frames_mask = given_frames_mask.to(device=token_ids.device, dtype=torch.bool)
        if tuple(given_frames_mask.shape) != (batch_size, num_frames):
            raise ValueError(
                f"`given_frames_mask` must have shape ({batch_size}, {num_frames}), got {tuple(given_frames_mask.shape)}."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        known = given_frames_mask[:, :, None, None].expand_as(token_ids)

        if guidance_scale != 1.0:  # one encoder pass over the captions and the empty prompt, as a doubled batch
            null_ids, null_mask = self._null_text(input_ids)
            padding = null_ids.shape[1] - input_ids.shape[1]
            input_ids = torch.cat([F.pad(input_ids, (0, padding), value=self.config.text_eos_token_id), null_ids])
            attention_mask = torch.cat([F.pad(attention_mask, (0, padding), value=0), null_mask])
            encoded = self.model.encode(
                input_ids, attention_mask, torch.cat([token_ids, token_ids]), given_frames_mask.repeat(2, 1)
            )
        else:
            encoded = self.model.encode(input_ids, attention_mask, token_ids, given_frames_mask)

        token_ids = decode_tokens(
            MMVGVideoLogits(self, encoded.encoder_last_hidden_state, encoded.encoder_attention_mask), token_ids,
            known, decoding=decoding, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            temperature=temperature, top_k=top_k, top_p=top_p, generator=generator, progress=progress,
        )  # fmt: skip

        output_frames = self.tvq.decode(token_ids).float()
        if pixel_values_videos is not None:
            given = given_frames_mask[:, :, None, None, None]
            output_frames = torch.where(given, pixel_values_videos.to(output_frames.dtype), output_frames)
        return MMVGCompletionOutput(frames=output_frames, token_ids=token_ids, given_frames_mask=given_frames_mask)


class MMVGVideoLogits:
    """The `decoding.LogitsFn` of a model over fixed encoder states. `frame=None` runs Dec^M over all frames (with
    the cross-attention keys/values computed once); `frame=t` runs frame t alone, after committing to the cache the
    keys/values of the frames before t that it does not hold yet (they are final once a later frame is asked for)."""

    def __init__(self, model: MMVGForVideoCompletion, encoder_hidden_states: torch.Tensor,
                 encoder_attention_mask: torch.BoolTensor):  # fmt: skip
        self.model = model
        self.encoder_hidden_states = encoder_hidden_states
        self.encoder_attention_mask = encoder_attention_mask
        self.cache = MMVGDecoderCache(model.config.num_decoder_layers)
        self.committed_frames = 0

    def __call__(self, token_ids: torch.Tensor, known: torch.Tensor, frame: int | None = None) -> torch.Tensor:
        states = (self.encoder_hidden_states, self.encoder_attention_mask, self.cache)
        if frame is None:
            return self.model.video_logits(token_ids, known, *states)
        for earlier in range(self.committed_frames, frame):
            self.model.model.decode(token_ids, known, *states, frame_index=earlier, commit=True)
        self.committed_frames = max(self.committed_frames, frame)
        return self.model.video_logits(token_ids, known, *states, frame_index=frame)


# saved folders carry this code and an `auto_map`, so they load with `trust_remote_code=True` without the package
MMVGForVideoCompletion.register_for_auto_class("AutoModel")

__all__ = [
    "MMVGCompletionOutput",
    "MMVGDecoder",
    "MMVGEncoder",
    "MMVGForVideoCompletion",
    "MMVGModel",
    "MMVGModelOutput",
    "MMVGOutput",
    "MMVGPreTrainedModel",
    "MMVGVideoLogits",
]
