"""MMVG: multimodal masked video generation for text-guided video completion (stage 2; PAPER.md).

    model = MMVGForVideoCompletion.from_tvq(tvq_model, hidden_size=256)        # frozen T-VQ inside
    outputs = model(input_ids, attention_mask, pixel_values_videos)          # training: masks drawn, loss, L_t
    completion = model.complete(input_ids, attention_mask, pixel_values_videos, given_frames_mask,
                                decoding="parallel", num_inference_steps=12)  # completion.frames (B, N, C, H, W)

Layout of this file: embeddings, attention (plain and 3D window), encoder and decoder layers, the decoder cache,
then the model. Which frames are given and the training masks live in `masking.py`; the sampling and the parallel
schedule in `decoding.py`.

Shapes: B clips, N frames, h x w tokens per frame (P = h * w), K codebook classes, D = hidden_size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from tqdm.auto import tqdm
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .configuration_mmvg import MMVGConfig
from .decoding import guided_logits, parallel_decode, sample_tokens
from .masking import encoder_visual_layout, sample_given_frames, sample_token_mask, update_mask_probabilities
from .memory import check_memory
from .modeling_tvq import TVQModel


@dataclass
class MMVGOutput(ModelOutput):
    """
    Output of [`MMVGForVideoCompletion.forward`].

    Args:
        loss (`torch.FloatTensor`): mean of the per-frame losses L_t over the frame positions that had masked tokens.
        logits (`torch.FloatTensor` of shape `(B, N, h, w, K)`): next-token logits of every visual token.
        frame_losses (`torch.FloatTensor` of shape `(N,)`): L_t, the mean cross-entropy of the masked tokens of
            frame position t over the batch (0 where `frame_loss_mask` is False).
        frame_loss_mask (`torch.BoolTensor` of shape `(N,)`): positions that had masked tokens in this batch.
        frame_token_counts (`torch.LongTensor` of shape `(N,)`): masked tokens behind each L_t (for p_t under DDP).
        given_frames_mask (`torch.BoolTensor` of shape `(B, N)`): the frames given to the model.
        token_mask (`torch.BoolTensor` of shape `(B, N, h, w)`): the tokens replaced by [MASK] and predicted.
        encoder_last_hidden_state (`torch.FloatTensor` of shape `(B, L, D)`): the encoder states {h}.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    frame_losses: torch.FloatTensor | None = None
    frame_loss_mask: torch.BoolTensor | None = None
    frame_token_counts: torch.LongTensor | None = None
    given_frames_mask: torch.BoolTensor | None = None
    token_mask: torch.BoolTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None


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
# Building blocks
# ----------------------------------------------------------------------------------------------------------------


class MMVGMLP(nn.Module):
    def __init__(self, config: MMVGConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(F.gelu(self.fc1(hidden_states))))


def _split_heads(states: torch.Tensor, num_heads: int) -> torch.Tensor:
    return rearrange(states, "... l (n d) -> ... n l d", n=num_heads)


def _merge_heads(states: torch.Tensor) -> torch.Tensor:
    return rearrange(states, "... n l d -> ... l (n d)")


class MMVGAttention(nn.Module):
    """Multi-head attention with SDPA, for the encoder's self-attention and the decoder's cross-attention.
    `attention_mask` is boolean, True where a key may be attended, broadcastable to (B, heads, Lq, Lk)."""

    def __init__(self, config: MMVGConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.dropout = config.dropout
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def key_value(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) -> keys and values (B, heads, L, D / heads), cacheable for cross-attention."""
        return _split_heads(self.k_proj(states), self.num_heads), _split_heads(self.v_proj(states), self.num_heads)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        query = _split_heads(self.q_proj(hidden_states), self.num_heads)
        key, value = key_value
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.o_proj(_merge_heads(attended))


class MMVGWindowSelfAttention(nn.Module):
    """Block-causal 3D window self-attention of Video Swin, with a relative position bias.

    Tokens at (frame, row, column) are grouped into windows of `config.window_size`, shifted by half a window in
    every dimension smaller than the grid when `shifted`. A token attends to the tokens of its window in its own
    frame and in earlier frames (never later ones), so frame t depends only on frames <= t and the decoder can run
    frame by frame with cached keys. Windows are formed by padding (not rolling), so no window wraps around.
    """

    def __init__(self, config: MMVGConfig, shifted: bool):
        super().__init__()
        grid = (config.num_frames, config.latent_size, config.latent_size)
        self.window = tuple(config.window_size)
        self.shift = tuple(w // 2 if shifted and w < g else 0 for w, g in zip(self.window, grid))
        self.num_heads = config.num_attention_heads
        self.dropout = config.dropout
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
        bias = self.relative_position_bias[frame_offset, row_offset, column_offset]  # (..., Lq, Lk, heads)
        bias = bias.masked_fill(~allowed[..., None], float("-inf"))
        return bias.movedim(-1, -3)

    def _attend(self, query, key, value, bias):
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=bias.to(query.dtype), dropout_p=self.dropout if self.training else 0.0
        )
        return self.o_proj(_merge_heads(attended))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """All frames at once: (B, N, h, w, D) -> (B, N, h, w, D). Cost grows linearly with N."""
        _, num_frames, height, width, _ = hidden_states.shape
        sizes = (num_frames, height, width)
        pads = [(s, (-(n + s)) % w) for n, s, w in zip(sizes, self.shift, self.window)]
        padded = F.pad(hidden_states, (0, 0, *pads[2], *pads[1], *pads[0]))
        axes = [torch.arange(n + before + after, device=hidden_states.device) - before for n, (before, after) in
                zip(sizes, pads)]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (Tp, Hp, Wp, 3)
        valid = ((coords >= 0) & (coords < torch.tensor(sizes, device=coords.device))).all(dim=-1)
        pattern = "(nt wt) (nh wh) (nw ww) c -> (nt nh nw) (wt wh ww) c"
        window_t, window_h, window_w = self.window
        window_coords = rearrange(coords, pattern, wt=window_t, wh=window_h, ww=window_w)
        window_valid = rearrange(valid[..., None], pattern, wt=window_t, wh=window_h, ww=window_w)[..., 0]
        bias = self.attention_bias(window_coords, window_coords, window_valid)  # (windows, heads, L, L)

        windows = rearrange(
            padded, "b (nt wt) (nh wh) (nw ww) d -> b (nt nh nw) (wt wh ww) d", wt=window_t, wh=window_h, ww=window_w
        )
        query, key, value = (_split_heads(part, self.num_heads) for part in self.qkv(windows).chunk(3, dim=-1))
        attended = self._attend(query, key, value, bias)
        grid_t, grid_h, grid_w = (n + before + after for n, (before, after) in zip(sizes, pads))
        attended = rearrange(
            attended,
            "b (nt nh nw) (wt wh ww) d -> b (nt wt) (nh wh) (nw ww) d",
            nt=grid_t // window_t, nh=grid_h // window_h, wt=window_t, wh=window_h, ww=window_w,
        )
        (t0, _), (h0, _), (w0, _) = pads
        return attended[:, t0 : t0 + num_frames, h0 : h0 + height, w0 : w0 + width]

    def forward_frame(
        self, hidden_states: torch.Tensor, frame_index: int, cache: list, commit: bool
    ) -> torch.Tensor:
        """One frame given the cached keys/values of earlier frames: (B, h, w, D) -> (B, h, w, D).

        `cache` is this layer's list of `(frame_index, key, value)`; with `commit` this frame's keys and values are
        appended (and frames that can no longer share a window with a later frame are dropped)."""
        batch_size, height, width, _ = hidden_states.shape
        tokens = rearrange(hidden_states, "b h w d -> b (h w) d")
        query, key, value = (_split_heads(part, self.num_heads) for part in self.qkv(tokens).chunk(3, dim=-1))
        rows, columns = torch.meshgrid(
            torch.arange(height, device=tokens.device), torch.arange(width, device=tokens.device), indexing="ij"
        )
        spatial = torch.stack([rows.flatten(), columns.flatten()], dim=-1)

        def frame_coords(index: int) -> torch.Tensor:
            return torch.cat([torch.full_like(spatial[:, :1], index), spatial], dim=-1)

        keys, values, key_coords = [], [], []
        for cached_index, cached_key, cached_value in cache:
            keys.append(cached_key)
            values.append(cached_value)
            key_coords.append(frame_coords(cached_index))
        keys.append(key)
        values.append(value)
        key_coords.append(frame_coords(frame_index))
        key_coords = torch.cat(key_coords)
        bias = self.attention_bias(
            frame_coords(frame_index), key_coords, torch.ones(len(key_coords), dtype=torch.bool, device=tokens.device)
        )
        attended = self._attend(query, torch.cat(keys, dim=-2), torch.cat(values, dim=-2), bias)
        if commit:
            cache.append((frame_index, key, value))
            del cache[: max(0, len(cache) - (self.window[0] - 1))]
        return rearrange(attended, "b (h w) d -> b h w d", h=height)


class MMVGEncoderLayer(GradientCheckpointingLayer):
    """Pre-norm transformer layer of Enc^M over words, visual tokens of the given frames and [SPAN] tokens."""

    def __init__(self, config: MMVGConfig):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = MMVGAttention(config)
        self.mlp_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = MMVGMLP(config)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        normed = self.self_attn_layer_norm(hidden_states)
        hidden_states = hidden_states + self.self_attn(normed, self.self_attn.key_value(normed), attention_mask)
        return hidden_states + self.mlp(self.mlp_layer_norm(hidden_states))


class MMVGDecoderLayer(GradientCheckpointingLayer):
    """Video Swin block of Dec^M: block-causal 3D window self-attention, cross-attention to {h}, MLP (pre-norm)."""

    def __init__(self, config: MMVGConfig, shifted: bool):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = MMVGWindowSelfAttention(config, shifted=shifted)
        self.cross_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.cross_attn = MMVGAttention(config)
        self.mlp_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = MMVGMLP(config)

    def _cross_and_mlp(self, hidden_states, encoder_key_value, encoder_attention_mask):
        normed = self.cross_attn_layer_norm(hidden_states)
        hidden_states = hidden_states + self.cross_attn(normed, encoder_key_value, encoder_attention_mask)
        return hidden_states + self.mlp(self.mlp_layer_norm(hidden_states))

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_key_value: tuple[torch.Tensor, torch.Tensor],
        encoder_attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        """(B, N, h, w, D) -> (B, N, h, w, D)."""
        hidden_states = hidden_states + self.self_attn(self.self_attn_layer_norm(hidden_states))
        batch_size, num_frames, height = hidden_states.shape[:3]
        tokens = rearrange(hidden_states, "b t h w d -> b (t h w) d")
        tokens = self._cross_and_mlp(tokens, encoder_key_value, encoder_attention_mask)
        return rearrange(tokens, "b (t h w) d -> b t h w d", t=num_frames, h=height)

    def forward_frame(self, hidden_states, frame_index, cache, commit, encoder_key_value, encoder_attention_mask):
        """One frame (B, h, w, D) with this layer's self-attention `cache` (see `MMVGWindowSelfAttention`)."""
        hidden_states = hidden_states + self.self_attn.forward_frame(
            self.self_attn_layer_norm(hidden_states), frame_index, cache, commit
        )
        height = hidden_states.shape[1]
        tokens = self._cross_and_mlp(
            rearrange(hidden_states, "b h w d -> b (h w) d"), encoder_key_value, encoder_attention_mask
        )
        return rearrange(tokens, "b (h w) d -> b h w d", h=height)


class MMVGDecoderCache:
    """What frame-by-frame decoding keeps: the encoder's cross-attention keys/values of every decoder layer (computed
    once) and, per layer, the self-attention keys/values of the last finished frames (at most `window_size[0] - 1`,
    since no later frame can share a window with older ones)."""

    def __init__(self, cross_key_values: list, encoder_attention_mask: torch.Tensor):
        self.cross_key_values = cross_key_values
        self.encoder_attention_mask = encoder_attention_mask
        self.self_attention: list[list] = [[] for _ in cross_key_values]


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


class MMVGPreTrainedModel(PreTrainedModel):
    config: MMVGConfig
    config_class = MMVGConfig
    base_model_prefix = "mmvg"
    main_input_name = "input_ids"
    input_modalities = ("text", "video")
    accepts_loss_kwargs = False
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["MMVGEncoderLayer", "MMVGDecoderLayer", "TVQModel"]
    _keys_to_ignore_on_load_unexpected = [r"tvq\.temporal_head\..*"]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """As `PreTrainedModel.from_pretrained`; when the saved weights do not fit the requested config (e.g.
        `num_frames=` or `tvq_config=` overrides), the error names the config fields that differ from the checkpoint
        (transformers' own error only points at a logged report, which a quiet logger hides)."""
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
            differences = _config_differences(saved.to_dict(), requested.to_dict())
            raise RuntimeError(
                f"{pretrained_model_name_or_path} holds weights of another shape than the requested config: "
                f"{'; '.join(differences) or 'no config field differs'}. Load it without these overrides, or pass "
                "`ignore_mismatched_sizes=True` to re-initialise the mismatched weights."
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
            # the factorised word table is followed by a projection with `std`: unit entries give words the same
            # scale as the position embeddings
            word_std = 1.0 if module is getattr(self, "word_embeddings", None) else std
            init.normal_(module.weight, mean=0.0, std=word_std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, MMVGWindowSelfAttention):
            init.zeros_(module.relative_position_bias)
        elif isinstance(module, MMVGForVideoCompletion):
            for name in ("span_embedding", "mask_embedding", "previous_mask_embedding", "previous_start_embedding"):
                init.normal_(getattr(module, name), mean=0.0, std=std)
            init.constant_(module.mask_probabilities, self.config.mask_probability)


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


class MMVGForVideoCompletion(MMVGPreTrainedModel):
    """MMVG: completes a clip of N frames from any given frames and a caption.

    - The frozen T-VQ (`self.tvq`) turns pixels into h x w tokens per frame and back.
    - Enc^M reads `[LP^w(words), LP^v(tokens of the given frames) / one [SPAN] per run of hidden frames]` with
      modality, frame and spatial position embeddings (LP^v acts on the T-VQ code vectors, so similar patches
      start with similar embeddings).
    - Dec^M (Video Swin blocks, block-causal over frames) reads every visual token (or [MASK]) plus the same token of
      the previous frame, cross-attends to {h}, and predicts each token's class; the output head scores a query
      against the frozen code vectors plus a free, zero-initialised per-class term.
    - `mask_probabilities` (buffer, saved with the model) is the adaptive p_t.
    """

    def __init__(self, config: MMVGConfig):
        super().__init__(config)
        hidden, code_dim = config.hidden_size, config.tvq_config.codebook_dim
        self.tvq = TVQModel(config.tvq_config)
        self.tvq.requires_grad_(False)

        # LP^w (factorised) and the text positions
        self.word_embeddings = nn.Embedding(config.text_vocab_size, config.text_embedding_size)
        self.word_projection = nn.Linear(config.text_embedding_size, hidden)
        self.text_position_embeddings = nn.Embedding(config.max_text_length, hidden)
        # LP^v for the encoder, [SPAN], and positions shared by encoder and decoder
        self.visual_projection = nn.Linear(code_dim, hidden)
        self.span_embedding = nn.Parameter(torch.zeros(hidden))
        self.modality_embeddings = nn.Embedding(2, hidden)  # 0 text, 1 video
        self.frame_position_embeddings = nn.Embedding(config.num_frames, hidden)
        self.spatial_position_embeddings = nn.Embedding(config.tokens_per_frame, hidden)
        self.encoder_layers = nn.ModuleList([MMVGEncoderLayer(config) for _ in range(config.num_encoder_layers)])
        self.encoder_layer_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)

        # decoder inputs: the token itself or [MASK], plus the previous frame's token, [MASK] or "no frame"
        self.decoder_token_projection = nn.Linear(code_dim, hidden)
        self.mask_embedding = nn.Parameter(torch.zeros(hidden))
        self.previous_token_projection = nn.Linear(code_dim, hidden) if config.use_previous_frame_input else None
        self.previous_mask_embedding = nn.Parameter(torch.zeros(hidden))
        self.previous_start_embedding = nn.Parameter(torch.zeros(hidden))
        self.decoder_layers = nn.ModuleList(
            [MMVGDecoderLayer(config, shifted=index % 2 == 1) for index in range(config.num_decoder_layers)]
        )
        self.decoder_layer_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.code_query = nn.Linear(hidden, code_dim)
        self.class_logits = nn.Linear(hidden, config.codebook_size)
        self.class_logits.zero_init = True

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
        return model

    def train(self, mode: bool = True):
        """As `nn.Module.train`, but the frozen T-VQ always stays in eval mode."""
        super().train(mode)
        self.tvq.eval()
        return self

    # -- inputs ------------------------------------------------------------------------------------------------

    def _code_vectors(self) -> torch.Tensor:
        """The frozen T-VQ code vectors (K, codebook_dim)."""
        return self.tvq.quantizer.codebook_vectors().detach()

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

    # -- encoder -----------------------------------------------------------------------------------------------

    def encode(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None,
        video_token_ids: torch.LongTensor,
        given_frames_mask: torch.BoolTensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Enc^M over `[words, V-bar]`. Returns `({h} (B, L, D), key mask (B, L) bool)`."""
        config = self.config
        if input_ids.shape[1] > config.max_text_length:
            raise ValueError(
                f"`input_ids` has {input_ids.shape[1]} tokens; the model reads at most {config.max_text_length} "
                "(`config.max_text_length`). Tokenize with the processor, which truncates."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        text_positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        text = self.word_projection(self.word_embeddings(input_ids))
        text = text + self.text_position_embeddings(text_positions) + self.modality_embeddings.weight[0]

        flat_ids = rearrange(video_token_ids, "b t h w -> b t (h w)")
        layout = encoder_visual_layout(given_frames_mask, config.tokens_per_frame)
        codes = F.embedding(layout.gather_token_ids(flat_ids), self._code_vectors())
        visual = torch.where(layout.is_span[..., None], self.span_embedding, self.visual_projection(codes))
        visual = visual + self.frame_position_embeddings(layout.frame_index) + self.modality_embeddings.weight[1]
        visual = visual + self.spatial_position_embeddings(layout.spatial_index) * (~layout.is_span[..., None])

        hidden_states = torch.cat([text, visual], dim=1)
        key_mask = torch.cat([attention_mask.bool(), layout.attention_mask], dim=1)
        layer_mask = key_mask[:, None, None, :]
        for layer in self.encoder_layers:
            hidden_states = layer(hidden_states, layer_mask)
        return self.encoder_layer_norm(hidden_states), key_mask

    # -- decoder -----------------------------------------------------------------------------------------------

    def _decoder_inputs(
        self, token_ids: torch.Tensor, known: torch.Tensor, previous_ids: torch.Tensor, previous_known: torch.Tensor,
        frame_indices: torch.Tensor,
    ) -> torch.Tensor:
        """Embeddings (B, T', h, w, D) of decoder inputs at frames `frame_indices` (T',): each token or [MASK], plus
        the previous frame's token, [MASK], or "no previous frame" at frame 0; plus frame and spatial positions."""
        codes = self._code_vectors()
        own = self.decoder_token_projection(F.embedding(token_ids, codes))
        hidden_states = torch.where(known[..., None], own, self.mask_embedding)
        if self.previous_token_projection is not None:
            previous = self.previous_token_projection(F.embedding(previous_ids, codes))
            previous = torch.where(previous_known[..., None], previous, self.previous_mask_embedding)
            is_first = (frame_indices == 0)[None, :, None, None, None]
            hidden_states = hidden_states + torch.where(is_first, self.previous_start_embedding, previous)
        height, width = token_ids.shape[2:]
        spatial = self.spatial_position_embeddings.weight.view(height, width, -1)
        return hidden_states + self.frame_position_embeddings(frame_indices)[None, :, None, None] + spatial

    def _logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Final states (..., D) -> logits (..., K): the query against the frozen code vectors, plus a free term."""
        hidden_states = self.decoder_layer_norm(hidden_states)
        return self.code_query(hidden_states) @ self._code_vectors().t() + self.class_logits(hidden_states)

    def _cross_key_values(self, encoder_states: torch.Tensor) -> list:
        return [layer.cross_attn.key_value(encoder_states) for layer in self.decoder_layers]

    def decode(
        self,
        token_ids: torch.LongTensor,
        known: torch.BoolTensor,
        encoder_states: torch.Tensor,
        encoder_mask: torch.Tensor,
        cross_key_values: list | None = None,
    ) -> torch.Tensor:
        """Dec^M over all frames: ids and known mask (B, N, h, w) -> logits (B, N, h, w, K)."""
        num_frames = token_ids.shape[1]
        previous_ids = torch.cat([torch.zeros_like(token_ids[:, :1]), token_ids[:, :-1]], dim=1)
        previous_known = torch.cat([torch.zeros_like(known[:, :1]), known[:, :-1]], dim=1)
        frames = torch.arange(num_frames, device=token_ids.device)
        hidden_states = self._decoder_inputs(token_ids, known, previous_ids, previous_known, frames)
        cross_key_values = cross_key_values or self._cross_key_values(encoder_states)
        layer_mask = encoder_mask[:, None, None, :]
        for layer, key_value in zip(self.decoder_layers, cross_key_values):
            hidden_states = layer(hidden_states, key_value, layer_mask)
        return self._logits(hidden_states)

    def decode_frame(
        self,
        token_ids: torch.LongTensor,
        known: torch.BoolTensor,
        previous_ids: torch.LongTensor,
        previous_known: torch.BoolTensor,
        frame_index: int,
        cache: MMVGDecoderCache,
        commit: bool = False,
    ) -> torch.Tensor:
        """Dec^M on one frame with cached earlier frames: (B, h, w) ids -> logits (B, h, w, K). With `commit` the
        frame is final and its keys/values join `cache`. Gives the same logits as `decode` on the whole clip."""
        frames = torch.tensor([frame_index], device=token_ids.device)
        hidden_states = self._decoder_inputs(
            token_ids[:, None], known[:, None], previous_ids[:, None], previous_known[:, None], frames
        )[:, 0]
        layer_mask = cache.encoder_attention_mask[:, None, None, :]
        for layer, layer_cache, key_value in zip(self.decoder_layers, cache.self_attention, cache.cross_key_values):
            hidden_states = layer.forward_frame(hidden_states, frame_index, layer_cache, commit, key_value, layer_mask)
        return self._logits(hidden_states)

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

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_token_ids: torch.LongTensor | None = None,
        given_frames_mask: torch.BoolTensor | None = None,
        token_mask: torch.BoolTensor | None = None,
        return_dict: bool | None = None,
    ) -> MMVGOutput | tuple:
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
        """
        if given_frames_mask is None or token_mask is None:
            raise ValueError(
                "Pass `given_frames_mask` (B, N) and `token_mask` (B, N, h, w): draw them for training with "
                "`model.draw_training_masks(input_ids, attention_mask, video_token_ids=...)`, which returns every "
                "input of `forward`."
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
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
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)

        encoder_states, encoder_mask = self.encode(input_ids, attention_mask, token_ids, given_frames_mask)
        logits = self.decode(token_ids, ~token_mask, encoder_states, encoder_mask)

        token_losses = F.cross_entropy(rearrange(logits, "b t h w k -> b k t h w").float(), token_ids,
                                       reduction="none")
        loss_sums = (token_losses * token_mask).sum(dim=(0, 2, 3))
        counts = token_mask.sum(dim=(0, 2, 3))
        frame_loss_mask = counts > 0
        frame_losses = loss_sums / counts.clamp(min=1)
        loss = frame_losses[frame_loss_mask].mean()
        output = MMVGOutput(
            loss=loss,
            logits=logits,
            frame_losses=frame_losses.detach(),
            frame_loss_mask=frame_loss_mask,
            frame_token_counts=counts,
            given_frames_mask=given_frames_mask,
            token_mask=token_mask,
            encoder_last_hidden_state=encoder_states,
        )
        return output if return_dict else output.to_tuple()

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
                frames are read (the others may hold anything finite, e.g. zeros).
            given_frames_mask (`torch.BoolTensor` of shape `(B, N)`): True at the given frames (any set, also none).
            video_token_ids (`torch.LongTensor` of shape `(B, N, h, w)`, *optional*): tokens instead of pixels; then
                the output frames are all decoded from tokens.
            decoding (`str`): `"parallel"` (MaskGIT, `num_inference_steps` model calls) or `"autoregressive"` (frame
                by frame, token by token in raster order, with cached keys/values: N * h * w calls).
            guidance_scale (`float`): classifier-free guidance; 1 uses the caption only, > 1 also runs the empty
                prompt and extrapolates away from it.
            temperature, top_k, top_p: sampling; `temperature=0` is greedy.
            generator (`torch.Generator`, *optional*): for reproducible sampling.
            progress (`bool`): show a progress bar over the decoding steps.
        """
        if decoding not in ("parallel", "autoregressive"):
            raise ValueError(f"Unknown `decoding` {decoding!r}; expected 'parallel' or 'autoregressive'.")
        check_memory(self.config, input_ids.shape[0], self.device, training=False, guidance=guidance_scale != 1.0)
        if given_frames_mask is None:
            raise ValueError("Pass `given_frames_mask` (B, N): True at the frames that are given.")
        token_ids = self._visual_token_ids(pixel_values_videos, video_token_ids).clone()
        batch_size, num_frames = token_ids.shape[:2]
        given_frames_mask = given_frames_mask.to(device=token_ids.device, dtype=torch.bool)
        if tuple(given_frames_mask.shape) != (batch_size, num_frames):
            raise ValueError(
                f"`given_frames_mask` must have shape ({batch_size}, {num_frames}), got {tuple(given_frames_mask.shape)}."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        known = given_frames_mask[:, :, None, None].expand_as(token_ids).clone()

        guided = guidance_scale != 1.0
        if guided:  # one encoder pass over the captions and the empty prompt, as a doubled batch
            null_ids, null_mask = self._null_text(input_ids)
            padding = null_ids.shape[1] - input_ids.shape[1]
            input_ids = torch.cat([F.pad(input_ids, (0, padding), value=self.config.text_eos_token_id), null_ids])
            attention_mask = torch.cat([F.pad(attention_mask, (0, padding), value=0), null_mask])
            encoder_states, encoder_mask = self.encode(
                input_ids, attention_mask, torch.cat([token_ids, token_ids]), given_frames_mask.repeat(2, 1)
            )
        else:
            encoder_states, encoder_mask = self.encode(input_ids, attention_mask, token_ids, given_frames_mask)

        def combine(logits: torch.Tensor) -> torch.Tensor:
            if not guided:
                return logits
            conditional, unconditional = logits.chunk(2)
            return guided_logits(conditional, unconditional, guidance_scale)

        def twice(tensor: torch.Tensor) -> torch.Tensor:
            return torch.cat([tensor, tensor]) if guided else tensor

        if decoding == "parallel":
            cross_key_values = self._cross_key_values(encoder_states)
            shape = token_ids.shape

            def logits_fn(flat_ids, flat_known):
                ids, is_known = flat_ids.view(shape), flat_known.view(shape)
                logits = self.decode(twice(ids), twice(is_known), encoder_states, encoder_mask, cross_key_values)
                return combine(logits).flatten(1, 3)

            token_ids = parallel_decode(
                logits_fn, token_ids.flatten(1), known.flatten(1), num_inference_steps, temperature, top_k, top_p,
                generator, progress,
            ).view(shape)
        else:
            token_ids = self._autoregressive_decode(
                token_ids, known, encoder_states, encoder_mask, combine, twice, temperature, top_k, top_p, generator,
                progress,
            )

        output_frames = self.tvq.decode(token_ids).float()
        if pixel_values_videos is not None:
            given = given_frames_mask[:, :, None, None, None]
            output_frames = torch.where(given, pixel_values_videos.to(output_frames.dtype), output_frames)
        return MMVGCompletionOutput(frames=output_frames, token_ids=token_ids, given_frames_mask=given_frames_mask)

    def _autoregressive_decode(
        self, token_ids, known, encoder_states, encoder_mask, combine, twice, temperature, top_k, top_p, generator,
        progress,
    ) -> torch.LongTensor:
        """Frames in order; in a frame, each unknown token in raster order from the logits given the tokens before
        it; a finished frame's keys/values are cached."""
        num_frames, height, width = token_ids.shape[1:]
        cache = MMVGDecoderCache(self._cross_key_values(encoder_states), encoder_mask)
        positions = [(row, column) for row in range(height) for column in range(width)]
        steps = int((~known).flatten(2).any(dim=2).any(dim=0).sum()) * len(positions)
        bar = tqdm(total=steps, desc="autoregressive decoding", disable=not progress, leave=False)
        for frame in range(num_frames):
            previous_ids = token_ids[:, frame - 1] if frame > 0 else torch.zeros_like(token_ids[:, 0])
            previous_known = known[:, frame - 1] if frame > 0 else torch.zeros_like(known[:, 0])
            if not known[:, frame].all():
                for row, column in positions:
                    unknown = ~known[:, frame, row, column]
                    if unknown.any():
                        logits = self.decode_frame(
                            twice(token_ids[:, frame]), twice(known[:, frame]), twice(previous_ids),
                            twice(previous_known), frame, cache,
                        )
                        sampled, _ = sample_tokens(
                            combine(logits)[:, row, column], temperature, top_k, top_p, generator
                        )
                        token_ids[:, frame, row, column] = torch.where(unknown, sampled,
                                                                       token_ids[:, frame, row, column])
                        known[:, frame, row, column] = True
                    bar.update(1)
            if frame < num_frames - 1:
                self.decode_frame(
                    twice(token_ids[:, frame]), twice(known[:, frame]), twice(previous_ids), twice(previous_known),
                    frame, cache, commit=True,
                )
        bar.close()
        return token_ids


# saved folders carry this code and an `auto_map`, so they load with `trust_remote_code=True` without the package
MMVGForVideoCompletion.register_for_auto_class("AutoModel")

__all__ = [
    "MMVGCompletionOutput",
    "MMVGForVideoCompletion",
    "MMVGOutput",
    "MMVGPreTrainedModel",
]
