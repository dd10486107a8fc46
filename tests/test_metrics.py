"""PSNR and SSIM on videos with known answers."""

import math

import numpy as np
import pytest
import torch

from transformers_mmvg.metrics import bits_per_pixel, psnr, ssim


def test_identical_videos():
    video = np.random.default_rng(0).integers(0, 256, (2, 4, 16, 16, 3), dtype=np.uint8)
    assert torch.isinf(psnr(video, video)).all()
    assert torch.allclose(ssim(video, video), torch.ones(2, dtype=torch.float64))


def test_known_mse_gives_known_psnr():
    target = np.zeros((3, 16, 16, 3), np.uint8)
    prediction = np.full_like(target, 5)  # MSE = 25 everywhere
    assert psnr(prediction, target).item() == pytest.approx(10 * math.log10(255**2 / 25))  # 34.151 dB
    # one video per batch entry; in [-1, 1] units a difference of 0.1 is an MSE of 0.01
    batch = torch.stack([torch.zeros(3, 16, 16, 3), torch.full((3, 16, 16, 3), 0.1)])
    assert psnr(batch, torch.zeros_like(batch), data_range=2.0)[1].item() == pytest.approx(10 * math.log10(4 / 0.01))


def test_ssim_of_flat_frames_is_the_luminance_term():
    # constant frames a and b: variances and covariance vanish, so SSIM = (2ab + c1) / (a^2 + b^2 + c1)
    a, b = 100.0, 110.0
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    value = ssim(np.full((2, 16, 16, 3), a), np.full((2, 16, 16, 3), b))
    assert value.item() == pytest.approx(expected)


def test_ssim_drops_with_noise_and_shapes_are_checked():
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, (4, 32, 32, 3)).astype(np.float64)
    slightly = np.clip(video + rng.normal(0, 5, video.shape), 0, 255)
    badly = np.clip(video + rng.normal(0, 60, video.shape), 0, 255)
    assert 1.0 > ssim(slightly, video).item() > ssim(badly, video).item()
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(video, video[:2])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 3)))


def test_bits_per_pixel_of_a_token_grid():
    # 4 x 4 tokens of 512 codes (9 bits) for a 64 x 64 frame: 144 bits / 4096 pixels
    assert bits_per_pixel(4, 512, 64) == 144 / 4096
    assert bits_per_pixel((8, 16), 1024, (128, 256)) == 8 * 16 * 10 / (128 * 256)


def test_ssim_equals_scikit_image_on_natural_and_random_frames():
    """The reference implementation (scikit-image, Gaussian window sigma 1.5, population covariance, as Wang et al.
    2004): equal to float precision, per video = the mean over its frames."""
    from skimage.data import astronaut
    from skimage.metrics import structural_similarity
    from skimage.transform import resize

    rng = np.random.default_rng(0)
    photo = (resize(astronaut(), (48, 64), anti_aliasing=True) * 255).round().astype(np.uint8)
    photos = np.stack([np.roll(photo, shift, axis=1) for shift in range(3)])  # (3, 48, 64, 3): a short pan
    noise = rng.integers(0, 256, (3, 48, 64, 3)).astype(np.uint8)
    prediction = np.stack([photos, noise])
    target = np.stack([np.clip(photos.astype(int) + rng.integers(-30, 31, photos.shape), 0, 255), noise[::-1]])
    expected = [
        np.mean([
            structural_similarity(prediction[video, frame], target[video, frame].astype(np.uint8), data_range=255,
                                  channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
            for frame in range(3)
        ])
        for video in range(2)
    ]  # fmt: skip
    np.testing.assert_allclose(ssim(prediction, target).numpy(), expected, rtol=0, atol=1e-12)
