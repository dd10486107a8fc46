"""Fixtures shared by the tests: tiny saved models for the pipeline and the stage-2 training scripts."""

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


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved tiny MMVG with its processor (tests/tiny_models.py), as the pipeline loads it."""
    from tiny_models import tiny_model, tiny_processor

    folder = tmp_path_factory.mktemp("tiny-mmvg")
    tiny_model().save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder
