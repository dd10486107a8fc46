"""Fixtures shared by the stage-2 training tests."""

import pytest
import torch

from transformers_mmvg import TVQConfig, TVQModel

# a tiny T-VQ for the 64x64, 8-frame TextShapes scripts: 4x4 tokens of 32 codes
TINY_TVQ_64 = dict(
    image_size=64,
    hidden_channels=8,
    channel_multipliers=[1, 2, 2, 2, 2],
    latent_channels=16,
    num_groups=4,
    codebook_size=32,
    codebook_dim=4,
    use_temporal_loss=False,
)


@pytest.fixture(scope="module")
def tvq_dir(tmp_path_factory):
    """A saved, untrained tiny T-VQ (the `--tvq_path` of train_mmvg / run_mmvg.py)."""
    folder = tmp_path_factory.mktemp("tvq")
    torch.manual_seed(0)
    TVQModel(TVQConfig(**TINY_TVQ_64)).save_pretrained(folder)
    return folder
