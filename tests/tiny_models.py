"""The tiny MMVG every stage-2 test uses: 16x16 frames -> 4x4 tokens of a 32-code T-VQ, 6 frames, decoder windows
of 3 frames x 2 x 2 tokens (so both the temporal and the spatial shift are exercised)."""

import torch

from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion, MMVGProcessor, MMVGVideoProcessor, TVQConfig

TINY_TVQ = dict(
    image_size=16,
    hidden_channels=8,
    channel_multipliers=[1, 2, 2],
    latent_channels=16,
    num_groups=4,
    codebook_size=32,
    codebook_dim=4,
    use_temporal_loss=False,
)
TINY = dict(
    num_frames=6,
    hidden_size=32,
    num_attention_heads=2,
    intermediate_size=64,
    num_encoder_layers=1,
    num_decoder_layers=2,
    text_embedding_size=8,
    window_size=[3, 2, 2],
)


def tiny_config(**overrides) -> MMVGConfig:
    return MMVGConfig(tvq_config=TVQConfig(**TINY_TVQ).to_dict(), **{**TINY, **overrides})


def tiny_model(seed: int = 0, **overrides) -> MMVGForVideoCompletion:
    """A tiny MMVG in eval mode whose T-VQ codes are distinct, so every patch gets a definite token."""
    torch.manual_seed(seed)
    model = MMVGForVideoCompletion(tiny_config(**overrides)).eval()
    with torch.no_grad():
        model.tvq.quantizer.codebook.weight.normal_()
    model.copy_tvq_codebook()
    return model


def tiny_processor() -> MMVGProcessor:
    size = TINY_TVQ["image_size"]
    return MMVGProcessor(video_processor=MMVGVideoProcessor(size={"height": size, "width": size},
                                                            num_frames=TINY["num_frames"]))
