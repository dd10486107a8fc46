"""Configuration of T-VQ, the temporal-aware VQGAN of MMVG (stage 1)."""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig


# The configurations of the committed T-VQ checkpoints, as fields that differ from the defaults
# (`examples/run_tvq.py --config_preset NAME`; `--config_overrides` applies on top).
TVQ_CONFIG_PRESETS: dict[str, dict] = {
    # shapes on black: 4x4 tokens of 16x16 pixels, 512 codes (checkpoints/tvq-textshapes-64x8)
    "textshapes-64x8": {},
    # natural content: 8x8 tokens of 8x8 pixels, 1,024 codes, a wider full-resolution level
    # (checkpoints/tvq-textcam-64x8)
    "textcam-64x8": {"channel_multipliers": [1, 1, 2, 4], "hidden_channels": 32, "codebook_size": 1024},
}


@strict
class TVQConfig(PretrainedConfig):
    r"""
    Configuration of [`TVQModel`]: a per-frame convolutional VQGAN whose codes are made temporal-aware by an
    order-prediction head (PAPER.md, "Stage 1: T-VQ").

    The defaults are sized for 64x64 clips (TextShapes) on a 2-core CPU: ~0.63M parameters, 4x4 tokens per frame
    (16x16-pixel patches; few tokens per frame make stage 2 much cheaper to learn), 512 codes of dimension 16. See `downsampling_factor` and `latent_size`.

    Architecture:
        in_channels (`int`, defaults to 3): channels of the frames.
        image_size (`int`, defaults to 64): frame height and width; must be divisible by `downsampling_factor`.
        hidden_channels (`int`, defaults to 16): width of the first encoder level (and of the last decoder level).
        channel_multipliers (`list[int]`, defaults to `(1, 2, 4, 4, 4)`): width of level `i` is
            `hidden_channels * channel_multipliers[i]`; every level but the last halves the resolution, so the
            downsampling factor is `2 ** (len(channel_multipliers) - 1)` (default 16, i.e. 4x4 tokens; `(1, 2, 4, 4)`
            gives 8, i.e. 8x8 tokens).
        num_res_blocks (`int` or `list[int]`, defaults to 0): ResNet blocks per level (encoder and decoder), one int
            for all levels or one entry per level. Each encoder and decoder always has one middle ResNet block at
            the lowest resolution, and every down/up step is GN -> SiLU -> conv. More blocks per level train
            slower per step and per second on a CPU budget (measured on TextShapes); raise them for larger data.
        latent_channels (`int`, defaults to 64): width of the encoder output / decoder input.
        num_groups (`int`, defaults to 8): groups of every GroupNorm; must divide every level's width.

    Quantizer (ViT-VQGAN-style factorised lookup: project `latent_channels -> codebook_dim`, look up, project
    back):
        codebook_size (`int`, defaults to 512): number of codes K.
        codebook_dim (`int`, defaults to 16): dimension of a code; may be smaller than `latent_channels`.
        beta (`float`, defaults to 0.25): weight of the commitment loss `|sg[C_z] - Enc(v)|^2`.
        codebook_l2_normalize (`bool`, defaults to `True`): l2-normalise encoder outputs and codes before the
            lookup (nearest neighbour by cosine similarity). Remedy against codebook collapse.
        codebook_init (`str`, defaults to `"data"`): `"random"` (normal init) or `"data"`: at the first training
            forward the codebook is replaced by k-means++ seeds drawn from that batch's encoder outputs.
        dead_code_restart_steps (`int`, defaults to 50): in training mode, a code unused for this many consecutive
            training forwards is replaced by an encoder output of the current batch (drawn with probability
            proportional to its squared distance to the nearest live code). 0 disables.

    Losses (each term has a switch `use_*` and a weight; a disabled term is neither computed nor returned):
        use_l1_loss / l1_weight: `|v^ - v|_1` (the paper's pixel term).
        use_l2_loss / l2_weight: `|v^ - v|^2`. Not in the paper; on mostly-black frames L1 alone sits for
            hundreds of steps at the all-background median, the squared error gets the objects drawn early (and is
            what PSNR measures). Disable it for the paper's exact objective.
        use_codebook_loss / codebook_weight: `|sg[Enc(v)] - C_z|^2`.
        use_commitment_loss: `beta * |sg[C_z] - Enc(v)|^2` (its weight is `beta`).
        use_perceptual_loss / perceptual_weight: `|F(v^) - F(v)|_1` averaged over the feature maps of F.
        perceptual_network (`str`, defaults to `"random_conv"`): F. `"random_conv"` is a fixed, seeded, randomly
            initialised multi-scale conv net (see `losses_tvq.RandomConvFeatures`); `"torchvision:<name>"`
            (e.g. `"torchvision:vgg16"`) builds a torchvision model and loads `perceptual_weights_path`.
            F is rebuilt from the config and never stored in the model checkpoint.
        perceptual_weights_path (`str`, *optional*): local state-dict file for a torchvision F.
        perceptual_seed (`int`, defaults to 0): seed of the random conv F.
        use_adversarial_loss / adversarial_weight (defaults to `False` / 0.1): VQGAN hinge generator loss
            `-D(v^)`, added when a discriminator is passed to `forward` and `global_step >=
            discriminator_start_step`. Off by default: it costs a discriminator pass per step and does not raise
            PSNR; enable it (with a start step after reconstructions are sharp) for the paper's full objective.
        discriminator_start_step (`int`, defaults to 0).
        use_adaptive_adversarial_weight (`bool`, defaults to `True`): scale the generator loss by VQGAN's ratio of
            gradient norms at the decoder's last layer, clamped to `[0, adaptive_weight_max]`.
        adaptive_weight_max (`float`, defaults to 1e4).
        use_temporal_loss / temporal_weight (defaults to `True` / 0.1): `L_T = BCE(FC^T(z_i, z_j), 1 if i < j
            else 0)` on random pairs of frames `i != j` of one clip. With it off, the model has no temporal head.
        temporal_hidden_size (`int`, defaults to 256): hidden width of the MLP FC^T.
        temporal_pairs_per_clip (`int`, defaults to 4): pairs sampled per clip and training forward.
        initializer_range (`float`, defaults to 0.02): std of the normal init of the codebook when it is not
            l2-normalised (a normalised codebook uses std 1).

    ```python
    >>> from transformers_mmvg import TVQConfig, TVQModel
    >>> config = TVQConfig(channel_multipliers=[1, 2, 4, 4])  # 8x8 tokens per 64x64 frame
    >>> config.latent_size
    8
    >>> model = TVQModel(config)
    ```
    """

    model_type = "tvq"

    in_channels: int = 3
    image_size: int = 64
    hidden_channels: int = 16
    channel_multipliers: list[int] | tuple[int, ...] = (1, 2, 4, 4, 4)
    num_res_blocks: int | list[int] | tuple[int, ...] = 0
    latent_channels: int = 64
    num_groups: int = 8

    codebook_size: int = 512
    codebook_dim: int = 16
    beta: float | int = 0.25
    codebook_l2_normalize: bool = True
    codebook_init: Literal["random", "data"] = "data"
    dead_code_restart_steps: int = 50

    use_l1_loss: bool = True
    l1_weight: float | int = 1.0
    use_l2_loss: bool = True
    l2_weight: float | int = 1.0
    use_codebook_loss: bool = True
    codebook_weight: float | int = 1.0
    use_commitment_loss: bool = True
    use_perceptual_loss: bool = True
    perceptual_weight: float | int = 0.1
    perceptual_network: str = "random_conv"
    perceptual_weights_path: str | None = None
    perceptual_seed: int = 0
    use_adversarial_loss: bool = False
    adversarial_weight: float | int = 0.1
    discriminator_start_step: int = 0
    use_adaptive_adversarial_weight: bool = True
    adaptive_weight_max: float | int = 1e4
    use_temporal_loss: bool = True
    temporal_weight: float | int = 0.1
    temporal_hidden_size: int = 256
    temporal_pairs_per_clip: int = 4

    initializer_range: float | int = 0.02

    def __post_init__(self, **kwargs):
        self.channel_multipliers = list(self.channel_multipliers)
        if not isinstance(self.num_res_blocks, int):
            self.num_res_blocks = list(self.num_res_blocks)
        super().__post_init__(**kwargs)
        self._check_values()

    @property
    def downsampling_factor(self) -> int:
        """Pixels per token side: `2 ** (len(channel_multipliers) - 1)`."""
        return 2 ** (len(self.channel_multipliers) - 1)

    @property
    def latent_size(self) -> int:
        """Tokens per frame side: `h = w = image_size // downsampling_factor`."""
        return self.image_size // self.downsampling_factor

    @property
    def res_blocks_per_level(self) -> list[int]:
        """ResNet blocks of every level (an int `num_res_blocks` applies to all levels)."""
        if isinstance(self.num_res_blocks, int):
            return [self.num_res_blocks] * len(self.channel_multipliers)
        return list(self.num_res_blocks)

    @property
    def level_channels(self) -> list[int]:
        """Width of every encoder level (the decoder uses them in reverse)."""
        return [self.hidden_channels * multiplier for multiplier in self.channel_multipliers]

    def _check_values(self):
        """Raise `ValueError` on values that cannot build a working model (types are checked by `@strict`)."""
        positive = {
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "hidden_channels": self.hidden_channels,
            "latent_channels": self.latent_channels,
            "num_groups": self.num_groups,
            "codebook_size": self.codebook_size,
            "codebook_dim": self.codebook_dim,
            "temporal_hidden_size": self.temporal_hidden_size,
            "temporal_pairs_per_clip": self.temporal_pairs_per_clip,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value}.")
        if not isinstance(self.num_res_blocks, int):
            if len(self.num_res_blocks) != len(self.channel_multipliers):
                raise ValueError(
                    f"`num_res_blocks` as a list needs one entry per level ({len(self.channel_multipliers)}), got "
                    f"{self.num_res_blocks}."
                )
        if any(count < 0 for count in self.res_blocks_per_level):
            raise ValueError(f"`num_res_blocks` must be >= 0, got {self.num_res_blocks}.")
        if len(self.channel_multipliers) == 0 or any(m < 1 for m in self.channel_multipliers):
            raise ValueError(
                f"`channel_multipliers` must be a non-empty list of positive integers, got {self.channel_multipliers}."
            )
        if self.image_size % self.downsampling_factor != 0:
            raise ValueError(
                f"`image_size` ({self.image_size}) must be divisible by the downsampling factor "
                f"2 ** (len(channel_multipliers) - 1) = {self.downsampling_factor}."
            )
        for channels in [*self.level_channels, self.latent_channels]:
            if channels % self.num_groups != 0:
                raise ValueError(
                    f"`num_groups` ({self.num_groups}) must divide every level width {self.level_channels} "
                    f"and `latent_channels` ({self.latent_channels})."
                )
        if self.codebook_size < 2:
            raise ValueError(f"`codebook_size` must be >= 2, got {self.codebook_size}.")
        if self.dead_code_restart_steps < 0:
            raise ValueError(
                f"`dead_code_restart_steps` must be >= 0 (0 disables), got {self.dead_code_restart_steps}."
            )
        weights = {
            "beta": self.beta,
            "l1_weight": self.l1_weight,
            "l2_weight": self.l2_weight,
            "codebook_weight": self.codebook_weight,
            "perceptual_weight": self.perceptual_weight,
            "adversarial_weight": self.adversarial_weight,
            "temporal_weight": self.temporal_weight,
        }
        for name, value in weights.items():
            if value < 0:
                raise ValueError(f"`{name}` must be >= 0, got {value}.")
        if self.discriminator_start_step < 0:
            raise ValueError(f"`discriminator_start_step` must be >= 0, got {self.discriminator_start_step}.")
        if not (self.perceptual_network == "random_conv" or self.perceptual_network.startswith("torchvision:")):
            raise ValueError(
                f"`perceptual_network` must be 'random_conv' or 'torchvision:<model name>', got "
                f"{self.perceptual_network!r}."
            )
        if not any([self.use_l1_loss, self.use_l2_loss, self.use_perceptual_loss, self.use_adversarial_loss]):
            raise ValueError(
                "At least one reconstruction term (`use_l1_loss`, `use_l2_loss`, `use_perceptual_loss`, "
                "`use_adversarial_loss`) must be enabled, otherwise the decoder receives no training signal."
            )


# saved folders carry this code and an `auto_map`, so they load with `trust_remote_code=True` without the package
TVQConfig.register_for_auto_class()


__all__ = ["TVQConfig"]
