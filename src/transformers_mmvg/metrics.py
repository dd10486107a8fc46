"""Video quality metrics: PSNR and SSIM over videos.

Videos are (..., T, H, W, C) arrays or tensors with values in [0, data_range] (uint8 frames with
the default `data_range=255`); model outputs in [-1, 1] go through the processor's
`postprocess_video` first, so every metric here reads frames as a person sees them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["bits_per_pixel", "psnr", "ssim"]

SSIM_WINDOW = 11  # Gaussian window of Wang et al. (2004)
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _as_float(videos: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(videos) if not isinstance(videos, torch.Tensor) else videos)
    return tensor.to(torch.float64)


def _check_pair(prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.shape != target.shape:
        raise ValueError(f"prediction and target shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    if prediction.ndim < 4:
        raise ValueError(f"videos must be (..., T, H, W, C), got shape {tuple(prediction.shape)}")


def psnr(
    prediction: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, data_range: float = 255.0
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each video, over all its frames and pixels.

    Args:
        prediction, target: videos (..., T, H, W, C) with values in [0, data_range].

    Returns:
        float64 tensor of shape (...): one PSNR per video; `inf` where the videos are identical.
    """
    prediction, target = _as_float(prediction), _as_float(target)
    _check_pair(prediction, target)
    mse = (prediction - target).pow(2).flatten(-4).mean(-1)
    return 10 * torch.log10(data_range**2 / mse)  # mse == 0 gives inf


def _gaussian_window(channels: int) -> torch.Tensor:
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    kernel = kernel / kernel.sum()
    window = torch.outer(kernel, kernel)
    return window.expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()


def ssim(
    prediction: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, data_range: float = 255.0
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03)
    of each video: the SSIM map averaged over valid window positions, channels and frames.

    Returns:
        float64 tensor of shape (...): one SSIM per video; 1.0 where the videos are identical.
    """
    prediction, target = _as_float(prediction), _as_float(target)
    _check_pair(prediction, target)
    batch_shape = prediction.shape[:-4]
    frames, height, width, channels = prediction.shape[-4:]
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {height}x{width}")
    # (..., T, H, W, C) -> (N, C, H, W) with N = batch x T
    x = prediction.reshape(-1, height, width, channels).permute(0, 3, 1, 2)
    y = target.reshape(-1, height, width, channels).permute(0, 3, 1, 2)
    window = _gaussian_window(channels)

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    per_frame = ssim_map.flatten(1).mean(-1)
    return per_frame.reshape(*batch_shape, frames).mean(-1) if batch_shape else per_frame.mean()



def bits_per_pixel(token_grid_size: int | tuple[int, int], codebook_size: int, image_size: int | tuple[int, int]) -> float:
    """Bits per pixel of a frame stored as a grid of codebook indices (log2(K) bits per token)."""
    grid = (token_grid_size, token_grid_size) if isinstance(token_grid_size, int) else token_grid_size
    image = (image_size, image_size) if isinstance(image_size, int) else image_size
    return grid[0] * grid[1] * math.log2(codebook_size) / (image[0] * image[1])
