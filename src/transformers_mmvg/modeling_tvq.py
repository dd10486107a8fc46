"""T-VQ, the temporal-aware VQGAN of MMVG (stage 1; PAPER.md).

Every frame is encoded on its own (time is folded into the batch), quantized against one codebook and decoded;
the order head FC^T sees pairs of quantized frames of one clip and predicts whether the first comes earlier.

    model = TVQModel(TVQConfig())
    token_ids = model.encode(pixel_values).token_ids      # (B, T, C, H, W) in [-1, 1] -> (B, T, h, w) int64
    frames = model.decode(token_ids)                      # (B, T, h, w) -> (B, T, C, H, W) in [-1, 1]
    outputs = model(pixel_values)                         # training: outputs.loss and the model's terms

This file is what inference needs. The perceptual and adversarial terms of training (the feature extractor F, the
patch discriminator) are not part of the model: `TVQTrainer` adds them to `outputs.loss` with
`losses_tvq.generator_loss`.
"""

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_tvq import TVQConfig


@dataclass
class TVQEncoderOutput(ModelOutput):
    """
    Output of [`TVQModel.encode`].

    Args:
        token_ids (`torch.LongTensor` of shape `(B, T, h, w)`, or `(B, h, w)` for images): codebook indices.
        quantized_latents (`torch.FloatTensor` of shape `(B, T, codebook_dim, h, w)`, or `(B, codebook_dim, h, w)`):
            the selected codes `C_z` (l2-normalised when `config.codebook_l2_normalize`), the `z` seen by FC^T.
    """

    token_ids: torch.LongTensor | None = None
    quantized_latents: torch.FloatTensor | None = None


@dataclass
class TVQQuantizerOutput(ModelOutput):
    """
    Output of [`TVQVectorQuantizer`] for a batch of N frames.

    Args:
        token_ids (`torch.LongTensor` of shape `(N, h, w)`).
        quantized_latents (`torch.FloatTensor` of shape `(N, codebook_dim, h, w)`): the codes, with straight-through
            gradients to the encoder.
        decoder_latents (`torch.FloatTensor` of shape `(N, latent_channels, h, w)`): the codes projected back for the
            decoder.
        codebook_loss (`torch.FloatTensor`): `|sg[Enc(v)] - C_z|^2` (mean).
        commitment_loss (`torch.FloatTensor`): `|sg[C_z] - Enc(v)|^2` (mean, without `beta`).
        perplexity (`torch.FloatTensor`): `exp(entropy)` of the code frequencies in this batch.
    """

    token_ids: torch.LongTensor | None = None
    quantized_latents: torch.FloatTensor | None = None
    decoder_latents: torch.FloatTensor | None = None
    codebook_loss: torch.FloatTensor | None = None
    commitment_loss: torch.FloatTensor | None = None
    perplexity: torch.FloatTensor | None = None


@dataclass
class TVQModelOutput(ModelOutput):
    """
    Output of [`TVQModel.forward`]. Loss terms are unweighted; `loss` is their weighted sum over the enabled terms
    (`config.use_*`). A disabled term (or the temporal term for single frames) is `None`. The perceptual and
    adversarial terms of training are not the model's: `losses_tvq.generator_loss` adds them to `loss`.

    Args:
        loss (`torch.FloatTensor`): `l1_weight * l1 + l2_weight * l2 + codebook_weight * codebook + beta * commitment
            + temporal_weight * temporal`.
        reconstruction (`torch.FloatTensor` of shape `(B, T, C, H, W)`): decoded frames in [-1, 1] (clamped in the
            forward pass, identity gradient).
        token_ids (`torch.LongTensor` of shape `(B, T, h, w)`).
        l1_loss, l2_loss, codebook_loss, commitment_loss (`torch.FloatTensor`).
        temporal_loss (`torch.FloatTensor`): `BCE(FC^T(z_i, z_j), [i < j])` over the sampled pairs.
        temporal_accuracy (`torch.FloatTensor`): accuracy of FC^T on those pairs.
        codebook_perplexity (`torch.FloatTensor`): perplexity of this batch's code frequencies.
        quantized_latents (`torch.FloatTensor` of shape `(B, T, codebook_dim, h, w)`): the codes `z` (as in
            [`TVQEncoderOutput`]), the input of FC^T.
    """

    loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    token_ids: torch.LongTensor | None = None
    l1_loss: torch.FloatTensor | None = None
    l2_loss: torch.FloatTensor | None = None
    codebook_loss: torch.FloatTensor | None = None
    commitment_loss: torch.FloatTensor | None = None
    temporal_loss: torch.FloatTensor | None = None
    temporal_accuracy: torch.FloatTensor | None = None
    codebook_perplexity: torch.FloatTensor | None = None
    quantized_latents: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------
# Codebook health
# ----------------------------------------------------------------------------------------------------------------


def codebook_usage(code_counts: torch.Tensor) -> float:
    """Fraction of codes used at least once, from per-code counts of shape `(codebook_size,)`."""
    return (code_counts > 0).float().mean().item()


def codebook_perplexity(code_counts: torch.Tensor) -> torch.Tensor:
    """`exp(entropy)` of the code frequencies: 1 when one code is used, `codebook_size` when all are used evenly."""
    probabilities = code_counts.float() / code_counts.sum().clamp(min=1)
    entropy = -(probabilities * torch.log(probabilities.clamp(min=1e-10))).sum()
    return torch.exp(entropy)


class CodebookUsageTracker:
    """Accumulates code counts over batches (an eval set) for `usage` and `perplexity`.

    ```python
    tracker = CodebookUsageTracker(model.config.codebook_size)
    for batch in loader:
        tracker.update(model.encode(batch).token_ids)
    tracker.usage, tracker.perplexity
    ```
    """

    def __init__(self, codebook_size: int):
        self.codebook_size = codebook_size
        self.counts = torch.zeros(codebook_size, dtype=torch.long)

    def update(self, token_ids: torch.Tensor) -> None:
        """Count the ids of a tensor of any shape."""
        self.counts += torch.bincount(token_ids.flatten().cpu(), minlength=self.codebook_size)

    def reset(self) -> None:
        self.counts.zero_()

    @property
    def usage(self) -> float:
        """Fraction of codes used at least once since the last reset."""
        return codebook_usage(self.counts)

    @property
    def perplexity(self) -> float:
        """Perplexity of all counted ids since the last reset."""
        return codebook_perplexity(self.counts).item()


def kmeans_plus_plus_seeds(vectors: torch.Tensor, num_seeds: int) -> torch.Tensor:
    """k-means++ seeding: the first seed is uniform, each next one is drawn with probability proportional to the
    squared distance to its nearest seed so far. vectors: (M, D) -> seeds (num_seeds, D), rows of `vectors`
    (repeated once every distinct vector has been picked)."""
    num_vectors = vectors.shape[0]
    first = torch.randint(num_vectors, (1,), device=vectors.device)
    chosen = [first]
    nearest_sq_distance = (vectors - vectors[first]).pow(2).sum(-1)
    for _ in range(num_seeds - 1):
        total = nearest_sq_distance.sum()
        if total <= 0:
            index = torch.randint(num_vectors, (1,), device=vectors.device)
        else:
            index = torch.multinomial(nearest_sq_distance / total, 1)
        chosen.append(index)
        nearest_sq_distance = torch.minimum(nearest_sq_distance, (vectors - vectors[index]).pow(2).sum(-1))
    return vectors[torch.cat(chosen)]


# ----------------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------------


class TVQResnetBlock(nn.Module):
    """`x + conv(SiLU(GN(conv(SiLU(GN(x))))))`; the second conv starts at zero so the block starts as identity."""

    def __init__(self, channels: int, num_groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups, channels, eps=1e-6)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.norm2 = nn.GroupNorm(num_groups, channels, eps=1e-6)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2.zero_init = True

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.conv1(F.silu(self.norm1(hidden_states)))
        hidden_states = self.conv2(F.silu(self.norm2(hidden_states)))
        return residual + hidden_states


class TVQDownsample(nn.Module):
    """Halve the resolution: GN, SiLU, then a strided 3x3 conv that also changes the width.

    The norm and activation sit on the main path (not only inside residual branches), so the encoder is non-linear
    from the first step even where its ResNet blocks start as identities (or are absent); on small CPU budgets this
    trains several times faster than VQGAN's linear down path."""

    def __init__(self, in_channels: int, out_channels: int, num_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, in_channels, eps=1e-6)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.conv(F.silu(self.norm(hidden_states)))


class TVQUpsample(nn.Module):
    """Double the resolution: GN, SiLU, nearest-neighbour upsampling, then a 3x3 conv that also changes the width."""

    def __init__(self, in_channels: int, out_channels: int, num_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, in_channels, eps=1e-6)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = F.silu(self.norm(hidden_states))
        return self.conv(F.interpolate(hidden_states, scale_factor=2.0, mode="nearest"))


class TVQEncoder(nn.Module):
    """Enc^Q: frames (N, C, H, W) -> latents (N, latent_channels, h, w).

    conv_in -> per level i: `num_res_blocks` ResNet blocks at width `level_channels[i]`, then (all but the last level)
    a strided conv to `level_channels[i + 1]` -> one middle block -> GN, SiLU, conv_out.
    """

    def __init__(self, config: TVQConfig):
        super().__init__()
        widths = config.level_channels
        self.conv_in = nn.Conv2d(config.in_channels, widths[0], kernel_size=3, padding=1)
        self.levels = nn.ModuleList()
        for index, width in enumerate(widths):
            level = nn.Module()
            level.blocks = nn.ModuleList(
                TVQResnetBlock(width, config.num_groups) for _ in range(config.res_blocks_per_level[index])
            )
            is_last = index + 1 == len(widths)
            level.downsample = (
                nn.Identity() if is_last else TVQDownsample(width, widths[index + 1], config.num_groups)
            )
            self.levels.append(level)
        self.mid_block = TVQResnetBlock(widths[-1], config.num_groups)
        self.norm_out = nn.GroupNorm(config.num_groups, widths[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(widths[-1], config.latent_channels, kernel_size=3, padding=1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden_states = self.conv_in(pixel_values)
        for level in self.levels:
            for block in level.blocks:
                hidden_states = block(hidden_states)
            hidden_states = level.downsample(hidden_states)
        hidden_states = self.mid_block(hidden_states)
        return self.conv_out(F.silu(self.norm_out(hidden_states)))


class TVQDecoder(nn.Module):
    """Dec^Q: latents (N, latent_channels, h, w) -> frames (N, C, H, W), unbounded (the model clamps).

    Mirror of the encoder: conv_in -> middle block -> per level i from the last: ResNet blocks at
    `level_channels[i]`, then (all but the first level) nearest upsampling + conv to `level_channels[i - 1]` ->
    GN, SiLU, conv_out (the "last layer" of VQGAN's adaptive weight).
    """

    def __init__(self, config: TVQConfig):
        super().__init__()
        widths = config.level_channels
        self.conv_in = nn.Conv2d(config.latent_channels, widths[-1], kernel_size=3, padding=1)
        self.mid_block = TVQResnetBlock(widths[-1], config.num_groups)
        self.levels = nn.ModuleList()
        for index in reversed(range(len(widths))):
            level = nn.Module()
            level.blocks = nn.ModuleList(
                TVQResnetBlock(widths[index], config.num_groups) for _ in range(config.res_blocks_per_level[index])
            )
            level.upsample = (
                TVQUpsample(widths[index], widths[index - 1], config.num_groups) if index > 0 else nn.Identity()
            )
            self.levels.append(level)
        self.norm_out = nn.GroupNorm(config.num_groups, widths[0], eps=1e-6)
        self.conv_out = nn.Conv2d(widths[0], config.in_channels, kernel_size=3, padding=1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        hidden_states = self.mid_block(self.conv_in(latents))
        for level in self.levels:
            for block in level.blocks:
                hidden_states = block(hidden_states)
            hidden_states = level.upsample(hidden_states)
        return self.conv_out(F.silu(self.norm_out(hidden_states)))


class TVQVectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantizer with a factorised lookup (ViT-VQGAN) and codebook-health remedies.

    latents (N, latent_channels, h, w) -> `in_proj` (1x1 conv) -> z (N, codebook_dim, h, w) -> [l2-normalise z and
    the codes] -> nearest code C_k (straight-through: the decoder's gradient is copied onto z) -> `out_proj` ->
    decoder latents (N, latent_channels, h, w).

    Remedies against collapse (all from the config, active only when `update_codebook=True`, i.e. training):
    - `codebook_l2_normalize`: lookup by cosine similarity on the unit sphere.
    - `codebook_init="data"`: at the first training forward, the codes become k-means++ seeds drawn from that
      batch's z (the buffer `codebook_initialized` records it and is saved with the weights).
    - `dead_code_restart_steps=K`: the buffer `steps_since_used` counts training forwards since each code was last
      selected; a code that reaches K is replaced by an encoder output z of the current batch, drawn with
      probability proportional to its squared distance to the nearest live code (so the restarts go to the
      worst-served inputs), and its counter is reset.
    Codebook changes happen before the lookup, so they never modify a tensor the current graph saved (but two
    training forwards before one `backward` would). Under `torch.distributed` the code counts are summed over ranks
    and every changed codebook is broadcast from rank 0, so all replicas keep one codebook.
    """

    def __init__(self, config: TVQConfig):
        super().__init__()
        self.codebook_size = config.codebook_size
        self.codebook_dim = config.codebook_dim
        self.l2_normalize = config.codebook_l2_normalize
        self.data_init = config.codebook_init == "data"
        self.dead_code_restart_steps = config.dead_code_restart_steps
        self.in_proj = nn.Conv2d(config.latent_channels, config.codebook_dim, kernel_size=1)
        self.codebook = nn.Embedding(config.codebook_size, config.codebook_dim)
        self.out_proj = nn.Conv2d(config.codebook_dim, config.latent_channels, kernel_size=1)
        self.register_buffer("codebook_initialized", torch.zeros((), dtype=torch.long))
        self.register_buffer("steps_since_used", torch.zeros(config.codebook_size, dtype=torch.long))

    def codebook_vectors(self) -> torch.Tensor:
        """The codes as used by the lookup: (codebook_size, codebook_dim), unit-norm when l2-normalising."""
        codes = self.codebook.weight
        return F.normalize(codes, dim=-1) if self.l2_normalize else codes

    def project_in(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, latent_channels, h, w) -> z (N, h, w, codebook_dim), the vectors that are quantized."""
        z = rearrange(self.in_proj(latents), "n d h w -> n h w d")
        return F.normalize(z, dim=-1) if self.l2_normalize else z

    def nearest_codes(self, vectors: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code of every row: (M, D), (K, D) -> (M,)."""
        with torch.no_grad():
            if self.l2_normalize:  # unit vectors: nearest in l2 == largest cosine similarity
                return torch.argmax(vectors @ codes.t(), dim=-1)
            distances = vectors.pow(2).sum(-1, keepdim=True) - 2 * vectors @ codes.t() + codes.pow(2).sum(-1)
            return torch.argmin(distances, dim=-1)

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Token ids (N, h, w) -> decoder latents (N, latent_channels, h, w)."""
        codes = F.embedding(token_ids, self.codebook_vectors())
        return self.out_proj(rearrange(codes, "n h w d -> n d h w"))

    @staticmethod
    def _distributed() -> bool:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    @torch.no_grad()
    def _initialize_from_data(self, vectors: torch.Tensor) -> None:
        seeds = kmeans_plus_plus_seeds(vectors, self.codebook_size)
        self.codebook.weight.copy_(seeds)
        if self._distributed():
            dist.broadcast(self.codebook.weight.data, src=0)
        self.codebook_initialized.fill_(1)
        self.steps_since_used.zero_()

    @torch.no_grad()
    def _restart_dead_codes(self, vectors: torch.Tensor) -> None:
        dead = self.steps_since_used >= self.dead_code_restart_steps
        num_dead = int(dead.sum())
        if num_dead == 0:
            return
        live_codes = self.codebook_vectors()[~dead]
        if live_codes.shape[0] > 0:
            sq_distance = (
                vectors.pow(2).sum(-1, keepdim=True) - 2 * vectors @ live_codes.t() + live_codes.pow(2).sum(-1)
            )
            sq_distance = sq_distance.amin(dim=-1).clamp(min=0)
        else:
            sq_distance = torch.ones(vectors.shape[0], device=vectors.device)
        if sq_distance.sum() <= 0:
            sq_distance = torch.ones_like(sq_distance)
        # distinct vectors when there are enough candidates, so restarted codes do not duplicate each other
        replacement = num_dead > int((sq_distance > 0).sum())
        picks = torch.multinomial(sq_distance / sq_distance.sum(), num_dead, replacement=replacement)
        self.codebook.weight[dead] = vectors[picks].to(self.codebook.weight.dtype)
        if self._distributed():  # every rank restarted the same codes (shared counters), with its own vectors
            dist.broadcast(self.codebook.weight.data, src=0)
        self.steps_since_used[dead] = 0

    def forward(self, latents: torch.Tensor, update_codebook: bool = False) -> TVQQuantizerOutput:
        num_frames, _, height, width = latents.shape
        z = self.project_in(latents)
        vectors = rearrange(z, "n h w d -> (n h w) d")
        if update_codebook:
            if self.data_init and not bool(self.codebook_initialized):
                self._initialize_from_data(vectors.detach())
            if self.dead_code_restart_steps > 0:
                self._restart_dead_codes(vectors.detach())

        codes = self.codebook_vectors()
        flat_ids = self.nearest_codes(vectors, codes)
        quantized = F.embedding(flat_ids, codes)
        codebook_loss = F.mse_loss(quantized, vectors.detach())
        commitment_loss = F.mse_loss(vectors, quantized.detach())
        quantized = vectors + (quantized - vectors).detach()  # straight-through estimator

        code_counts = torch.bincount(flat_ids, minlength=self.codebook_size)
        if update_codebook:
            with torch.no_grad():
                used = code_counts.clone()
                if self._distributed():
                    dist.all_reduce(used)
                self.steps_since_used.add_(1).masked_fill_(used > 0, 0)
        quantized = rearrange(quantized, "(n h w) d -> n d h w", n=num_frames, h=height, w=width)
        return TVQQuantizerOutput(
            token_ids=rearrange(flat_ids, "(n h w) -> n h w", n=num_frames, h=height, w=width),
            quantized_latents=quantized,
            decoder_latents=self.out_proj(quantized),
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            perplexity=codebook_perplexity(code_counts),
        )


class TVQTemporalHead(nn.Module):
    """FC^T: an MLP over a pair of quantized frames `(z_i, z_j)`, each (N, codebook_dim, h, w), flattened and
    concatenated -> one logit per pair for "frame i comes before frame j"."""

    def __init__(self, config: TVQConfig):
        super().__init__()
        pair_features = 2 * config.codebook_dim * config.latent_size**2
        self.fc1 = nn.Linear(pair_features, config.temporal_hidden_size)
        self.fc2 = nn.Linear(config.temporal_hidden_size, config.temporal_hidden_size)
        self.classifier = nn.Linear(config.temporal_hidden_size, 1)

    def forward(self, first_latents: torch.Tensor, second_latents: torch.Tensor) -> torch.Tensor:
        pair = torch.cat([first_latents.flatten(1), second_latents.flatten(1)], dim=-1)
        hidden_states = F.silu(self.fc2(F.silu(self.fc1(pair))))
        return self.classifier(hidden_states).squeeze(-1)


def sample_frame_pairs(batch_size: int, num_frames: int, pairs_per_clip: int, device=None):
    """Uniform random ordered pairs `(i, j)`, `i != j`, per clip: two LongTensors of shape (batch_size, pairs)."""
    first = torch.randint(num_frames, (batch_size, pairs_per_clip), device=device)
    offset = torch.randint(1, num_frames, (batch_size, pairs_per_clip), device=device)
    return first, (first + offset) % num_frames


def all_frame_pairs(batch_size: int, num_frames: int, device=None):
    """Every ordered pair `(i, j)`, `i != j`, for each clip: two LongTensors of shape (batch_size, T (T - 1))."""
    first, second = zip(*[(i, j) for i in range(num_frames) for j in range(num_frames) if i != j])
    first = torch.tensor(first, device=device)[None].expand(batch_size, -1)
    second = torch.tensor(second, device=device)[None].expand(batch_size, -1)
    return first, second


def _clamp_straight_through(pixels: torch.Tensor) -> torch.Tensor:
    """Clamp to [-1, 1] in the forward pass, identity gradient (the losses always reach the decoder)."""
    return pixels + (pixels.clamp(-1.0, 1.0) - pixels).detach()


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


class TVQPreTrainedModel(PreTrainedModel):
    config: TVQConfig
    config_class = TVQConfig
    base_model_prefix = "tvq"
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    accepts_loss_kwargs = False
    _no_split_modules = ["TVQEncoder", "TVQDecoder", "TVQVectorQuantizer"]
    # no attention layers, so every attention implementation a parent model asks for (MMVG's eager or sdpa) fits
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_flash_attn = True

    def _init_weights(self, module):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if getattr(module, "zero_init", False):
                init.zeros_(module.weight)
            else:
                init.kaiming_uniform_(module.weight, a=math.sqrt(5))  # PyTorch's default layer init
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.GroupNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            std = 1.0 if self.config.codebook_l2_normalize else self.config.initializer_range
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, TVQVectorQuantizer):
            init.zeros_(module.codebook_initialized)
            init.zeros_(module.steps_since_used)


class TVQModel(TVQPreTrainedModel):
    """T-VQ: per-frame VQGAN + the temporal order head FC^T. Frames are (B, T, C, H, W) in [-1, 1]; single images
    (B, C, H, W) are accepted by `encode` / `forward` and ids (B, h, w) by `decode`.

    The perceptual network F and the discriminator of training are not part of the model (`TVQTrainer` holds them).
    """

    def __init__(self, config: TVQConfig):
        super().__init__(config)
        self.encoder = TVQEncoder(config)
        self.quantizer = TVQVectorQuantizer(config)
        self.decoder = TVQDecoder(config)
        self.temporal_head = TVQTemporalHead(config) if config.use_temporal_loss else None
        self.post_init()

    # -- encode / decode ---------------------------------------------------------------------------------------

    def _quantize_frames(self, frames: torch.Tensor, update_codebook: bool) -> TVQQuantizerOutput:
        return self.quantizer(self.encoder(frames), update_codebook=update_codebook)

    def encode(self, pixel_values: torch.Tensor) -> TVQEncoderOutput:
        """Clips (B, T, C, H, W) in [-1, 1] -> `TVQEncoderOutput(token_ids (B, T, h, w) int64,
        quantized_latents (B, T, codebook_dim, h, w))`. Images (B, C, H, W) give (B, h, w) ids. Never changes the
        codebook."""
        is_image = pixel_values.ndim == 4
        clips = pixel_values.unsqueeze(1) if is_image else pixel_values
        batch_size = clips.shape[0]
        frames = rearrange(clips, "b t c h w -> (b t) c h w").to(self.dtype)
        quantized = self._quantize_frames(frames, update_codebook=False)
        token_ids = rearrange(quantized.token_ids, "(b t) h w -> b t h w", b=batch_size)
        latents = rearrange(quantized.quantized_latents, "(b t) d h w -> b t d h w", b=batch_size)
        if is_image:
            token_ids, latents = token_ids[:, 0], latents[:, 0]
        return TVQEncoderOutput(token_ids=token_ids, quantized_latents=latents)

    def decode(self, token_ids: torch.LongTensor) -> torch.FloatTensor:
        """Token ids (B, T, h, w) -> frames (B, T, C, H, W), clamped to [-1, 1]; ids (B, h, w) -> (B, C, H, W)."""
        is_image = token_ids.ndim == 3
        clips = token_ids.unsqueeze(1) if is_image else token_ids
        batch_size = clips.shape[0]
        frames = self.decoder(self.quantizer.embed(rearrange(clips, "b t h w -> (b t) h w")))
        frames = rearrange(frames.clamp(-1.0, 1.0), "(b t) c h w -> b t c h w", b=batch_size)
        return frames[:, 0] if is_image else frames

    # -- training forward -------------------------------------------------------------------------------------

    def _temporal_terms(self, quantized_latents: torch.Tensor):
        """quantized_latents (B, T, D, h, w) -> (BCE loss, accuracy): over random ordered pairs of frames in training,
        over every ordered pair in eval mode (so an eval forward is deterministic: same inputs, same outputs)."""
        batch_size, num_frames = quantized_latents.shape[:2]
        device = quantized_latents.device
        if self.training:
            first, second = sample_frame_pairs(batch_size, num_frames, self.config.temporal_pairs_per_clip, device)
        else:
            first, second = all_frame_pairs(batch_size, num_frames, device)
        clip_index = torch.arange(batch_size, device=quantized_latents.device)[:, None].expand_as(first)
        logits = self.temporal_head(
            quantized_latents[clip_index.flatten(), first.flatten()],
            quantized_latents[clip_index.flatten(), second.flatten()],
        )
        labels = (first < second).flatten().to(logits.dtype)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).to(logits.dtype) == labels).float().mean()
        return loss, accuracy

    def forward(self, pixel_values: torch.Tensor, return_dict: bool | None = None) -> TVQModelOutput | tuple:
        r"""
        Reconstruct clips and compute the model's enabled loss terms (reconstruction, codebook, commitment,
        temporal order); `losses_tvq.generator_loss` adds the perceptual and adversarial terms of training.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, T, C, H, W)` or `(B, C, H, W)`): frames in [-1, 1].

        In training mode the quantizer may change the codebook before the lookup (data init, dead-code restarts).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        is_image = pixel_values.ndim == 4
        clips = pixel_values.unsqueeze(1) if is_image else pixel_values
        batch_size, num_frames = clips.shape[:2]
        target = rearrange(clips, "b t c h w -> (b t) c h w").to(self.dtype)

        quantized = self._quantize_frames(target, update_codebook=self.training)
        reconstruction = _clamp_straight_through(self.decoder(quantized.decoder_latents))

        terms: dict[str, torch.Tensor] = {}
        total = reconstruction.new_zeros(())
        if config.use_l1_loss:
            terms["l1_loss"] = F.l1_loss(reconstruction, target)
            total = total + config.l1_weight * terms["l1_loss"]
        if config.use_l2_loss:
            terms["l2_loss"] = F.mse_loss(reconstruction, target)
            total = total + config.l2_weight * terms["l2_loss"]
        if config.use_codebook_loss:
            terms["codebook_loss"] = quantized.codebook_loss
            total = total + config.codebook_weight * quantized.codebook_loss
        if config.use_commitment_loss:
            terms["commitment_loss"] = quantized.commitment_loss
            total = total + config.beta * quantized.commitment_loss
        latents = rearrange(quantized.quantized_latents, "(b t) d h w -> b t d h w", b=batch_size)
        if config.use_temporal_loss and num_frames > 1:
            terms["temporal_loss"], terms["temporal_accuracy"] = self._temporal_terms(latents)
            total = total + config.temporal_weight * terms["temporal_loss"]

        reconstruction = rearrange(reconstruction, "(b t) c h w -> b t c h w", b=batch_size)
        token_ids = rearrange(quantized.token_ids, "(b t) h w -> b t h w", b=batch_size)
        if is_image:
            reconstruction, token_ids, latents = reconstruction[:, 0], token_ids[:, 0], latents[:, 0]
        output = TVQModelOutput(
            loss=total,
            reconstruction=reconstruction,
            token_ids=token_ids,
            codebook_perplexity=quantized.perplexity,
            quantized_latents=latents,
            **terms,
        )
        return output if return_dict else output.to_tuple()


# saved folders carry this code and an `auto_map`, so they load with `trust_remote_code=True` without the package
TVQModel.register_for_auto_class("AutoModel")


__all__ = [
    "CodebookUsageTracker",
    "TVQEncoderOutput",
    "TVQModel",
    "TVQModelOutput",
    "TVQPreTrainedModel",
    "TVQVectorQuantizer",
    "codebook_perplexity",
    "codebook_usage",
]
