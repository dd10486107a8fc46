"""MMVG model configuration (stage 2; holds the stage-1 T-VQ configuration)."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .configuration_tvq import TVQConfig


@strict
class MMVGConfig(PreTrainedConfig):
    r"""
    Configuration of [`MMVGForVideoCompletion`] (Multimodal Masked Video Generation, PAPER.md "Stage 2").

    A composite config: `tvq_config` is the frozen stage-1 tokenizer; the rest sizes the multimodal encoder Enc^M, the
    Video-Swin decoder Dec^M, the masking and the classifier-free guidance. It is also the key under which
    `AutoProcessor` / `AutoVideoProcessor` find [`MMVGProcessor`] / [`MMVGVideoProcessor`].

    Video:
        tvq_config (`TVQConfig` or `dict`, *optional*): the T-VQ; its `image_size`, `latent_size` (h = w tokens per
            frame side) and `codebook_size` (K classes of the output head) fix the visual token grid.
        num_frames (`int`, defaults to 8): frames per clip N (the default TextShapes preset).
        image_size (`int`, *optional*): frame height and width in pixels; must equal `tvq_config.image_size`
            (filled from it when left out; without a `tvq_config`, the default T-VQ is built at this size).

    Text:
        text_vocab_size (`int`, defaults to 49408): size of the CLIP BPE vocabulary.
        max_text_length (`int`, defaults to 77): caption tokens, `<|startoftext|>` and `<|endoftext|>` included.
        text_embedding_size (`int`, defaults to 64): LP^w is factorised as a `text_vocab_size x
            text_embedding_size` table followed by a linear map to `hidden_size`; it keeps the 49,408-word table
            small (a full-width table would be most of a small model's weights).
        text_bos_token_id / text_eos_token_id (`int`, defaults to 49406 / 49407): CLIP's start and end tokens; the
            "no text" input of classifier-free guidance is the empty prompt `[bos, eos]`.

    Transformer:
        hidden_size (`int`, defaults to 256), num_attention_heads (`int`, defaults to 4),
        intermediate_size (`int`, defaults to 1024): widths shared by encoder and decoder.
        num_encoder_layers (`int`, defaults to 2): layers of Enc^M (full attention over words, visual tokens of the
            given frames and [SPAN] tokens, with a padding mask).
        num_decoder_layers (`int`, defaults to 4): Video-Swin blocks of Dec^M (block-causal 3D window
            self-attention with a relative position bias, cross-attention to the encoder states {h}, MLP);
            every second block shifts its windows by half a window.
        window_size (`list[int]`, *optional*): the 3D window `(frames, rows, columns)` of Dec^M; defaults to
            `(min(4, num_frames), h, w)`. The decoder's cost grows linearly with `num_frames` at a fixed window.
        use_previous_frame_input (`bool`, defaults to `True`): the decoder input at token (t, i) also embeds token
            (t - 1, i) when it is known, so copying the previous frame (most of motion) is the starting point.
        previous_frame_radius (`int`, defaults to 0): with `use_previous_frame_input`, 0 embeds that one token;
            r >= 1 embeds the (2r + 1) x (2r + 1) tokens of frame t - 1 around it, each offset with its own weights
            (a code vector and a "known" flag per offset, zeros off the grid), so a camera pan of up to r tokens a
            frame is a copy from a fixed offset, which the caption selects (TextCam).
        previous_frame_copy (`bool`, defaults to `False`): with `use_previous_frame_input`, the token head also
            adds to the logit of each known token of that (2r + 1) x (2r + 1) neighbourhood a weight the final state
            gives its offset (a pointer to the previous frame): copying a token from the offset the caption selects
            is then a choice among (2r + 1)^2, not a 1-in-K class the network must rebuild from embeddings.
        next_frame_copy (`bool`, defaults to `False`): with `previous_frame_copy`, the same neighbourhood of frame
            t + 1 as well (its known tokens, read only by frames that still have masked tokens), as a decoder input
            and as a second pointer in the token head: a frame generated before a known later frame (rewind,
            infilling) copies from it at the offset the caption selects, as frames after a known frame copy from
            frame t - 1. Its weights start at zero, so a model trained without it continues unchanged.
        dropout (`float`, defaults to 0.0), layer_norm_eps (`float`, defaults to 1e-5),
        initializer_range (`float`, defaults to 0.02).

    Masking (training; see `transformers_mmvg.masking`):
        mask_probability (`float`, defaults to 0.6): initial p_t, the probability that frame t is hidden.
        mask_probability_alpha (`float`, defaults to 0.01): step size alpha of the adaptive rule
            `p_t <- p_t + alpha * ((L_t / L_M) * sum(p) - p_t)`; 0 keeps p fixed.
        mask_probability_range (`list[float]`, defaults to `(0.05, 0.95)`): p_t is clamped to this range so that
            every position is sometimes given and sometimes generated.
        task_masking_probability (`float`, defaults to 0.5): share of training clips whose given frames are those
            of a named task (prediction / rewind: the first / last frame; infilling: both) instead of the adaptive
            random draw. The random draw alone rarely leaves exactly one end frame given.
        sequential_masking_probability (`float`, defaults to 0.5): share of clips masked as one step of
            autoregressive decoding (generated frames before a random frame fully known, that frame partly, the
            rest fully masked) rather than as one step of parallel decoding (every generated frame masked at one
            ratio). Both ratios come from the cosine schedule. One checkpoint thus serves both decoding modes.
        text_drop_probability (`float`, defaults to 0.1): share of training clips whose caption is replaced by the
            empty prompt (classifier-free guidance).

    ```python
    >>> from transformers_mmvg import MMVGConfig

    >>> config = MMVGConfig(num_frames=16, hidden_size=128)
    >>> config.tokens_per_frame, config.window_size
    (16, [4, 4, 4])
    ```"""

    model_type = "mmvg"
    # transformers' generic names for the text side (e.g. `resize_token_embeddings` sets `vocab_size`)
    attribute_map = {"vocab_size": "text_vocab_size"}
    # transformers >= 5.20 reads `sub_configs_defaults` (and derives `sub_configs` from it); 5.4 to 5.19 read only
    # `sub_configs`, so both are declared. `__post_init__` builds the T-VQ config itself, which every 5.x with
    # dataclass configs (>= 5.4) then sees already built.
    sub_configs_defaults = {"tvq_config": TVQConfig}
    sub_configs = {"tvq_config": TVQConfig}

    tvq_config: dict | TVQConfig | None = None
    num_frames: int = 8
    image_size: int | None = None

    text_vocab_size: int = 49408
    max_text_length: int = 77
    text_embedding_size: int = 64
    text_bos_token_id: int = 49406
    text_eos_token_id: int = 49407

    hidden_size: int = 256
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    num_encoder_layers: int = 2
    num_decoder_layers: int = 4
    window_size: list[int] | tuple[int, ...] | None = None
    use_previous_frame_input: bool = True
    previous_frame_radius: int = 0
    previous_frame_copy: bool = False
    next_frame_copy: bool = False
    dropout: float | int = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02

    mask_probability: float = 0.6
    mask_probability_alpha: float = 0.01
    mask_probability_range: list[float] | tuple[float, ...] = (0.05, 0.95)
    task_masking_probability: float = 0.5
    sequential_masking_probability: float = 0.5
    text_drop_probability: float = 0.1

    is_encoder_decoder: bool = True

    def __post_init__(self, **kwargs):
        if self.tvq_config is None:
            # the default T-VQ, at the requested size when one is given
            self.tvq_config = TVQConfig() if self.image_size is None else TVQConfig(image_size=self.image_size)
        elif isinstance(self.tvq_config, dict):  # e.g. read from a saved config.json
            self.tvq_config = TVQConfig(**self.tvq_config)
        super().__post_init__(**kwargs)
        grid = self.tvq_config.latent_size
        if self.image_size is None:
            self.image_size = self.tvq_config.image_size
        if self.window_size is None:
            self.window_size = [min(4, self.num_frames), grid, grid]
        self.window_size = list(self.window_size)
        self.mask_probability_range = [float(value) for value in self.mask_probability_range]
        self._check_values()

    @property
    def latent_size(self) -> int:
        """Tokens per frame side (h = w), from the T-VQ."""
        return self.tvq_config.latent_size

    @property
    def tokens_per_frame(self) -> int:
        """Visual tokens per frame, h * w."""
        return self.tvq_config.latent_size**2

    @property
    def codebook_size(self) -> int:
        """Classes of the output head: the T-VQ codebook size K."""
        return self.tvq_config.codebook_size

    def _check_values(self):
        """Raise `ValueError` naming the field on values that cannot build a working model."""
        positive = (
            "num_frames",
            "text_vocab_size",
            "max_text_length",
            "text_embedding_size",
            "hidden_size",
            "num_attention_heads",
            "intermediate_size",
            "num_decoder_layers",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}.")
        if self.num_encoder_layers < 0:
            raise ValueError(f"`num_encoder_layers` must be >= 0, got {self.num_encoder_layers}.")
        if self.previous_frame_radius < 0 or (self.previous_frame_radius and not self.use_previous_frame_input):
            raise ValueError(
                f"`previous_frame_radius` must be >= 0, and needs `use_previous_frame_input`; got "
                f"{self.previous_frame_radius} with use_previous_frame_input={self.use_previous_frame_input}."
            )
        if self.previous_frame_copy and not self.use_previous_frame_input:
            raise ValueError("`previous_frame_copy` needs `use_previous_frame_input`.")
        if self.next_frame_copy and not self.previous_frame_copy:
            raise ValueError("`next_frame_copy` needs `previous_frame_copy`.")
        if self.image_size != self.tvq_config.image_size:
            raise ValueError(
                f"`image_size` ({self.image_size}) must equal the T-VQ's `tvq_config.image_size` "
                f"({self.tvq_config.image_size})."
            )
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        grid = self.latent_size
        limits = (self.num_frames, grid, grid)
        if len(self.window_size) != 3 or any(not 1 <= w <= m for w, m in zip(self.window_size, limits)):
            raise ValueError(
                f"`window_size` must be 3 positive sizes (frames, rows, columns) no larger than "
                f"{list(limits)}, got {self.window_size}."
            )
        bounds = self.mask_probability_range
        if len(bounds) != 2 or not 0.0 <= bounds[0] <= bounds[1] <= 1.0:
            raise ValueError(
                f"`mask_probability_range` must be (low, high) with 0 <= low <= high <= 1, got {bounds}."
            )
        low, high = bounds
        if not low <= self.mask_probability <= high:
            raise ValueError(
                f"`mask_probability` ({self.mask_probability}) must lie in `mask_probability_range` "
                f"{self.mask_probability_range}."
            )
        for name in (
            "mask_probability_alpha",
            "task_masking_probability",
            "sequential_masking_probability",
            "text_drop_probability",
            "dropout",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` must lie in [0, 1], got {getattr(self, name)}.")
        for name in ("text_bos_token_id", "text_eos_token_id"):
            if not 0 <= getattr(self, name) < self.text_vocab_size:
                raise ValueError(
                    f"`{name}` ({getattr(self, name)}) must be a valid id of the text vocabulary "
                    f"(< {self.text_vocab_size})."
                )


# saved folders carry this code and an `auto_map`, so they load with `trust_remote_code=True` without the package
MMVGConfig.register_for_auto_class()


__all__ = ["MMVGConfig"]
