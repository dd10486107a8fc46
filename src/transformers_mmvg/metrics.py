"""Video metrics: PSNR and SSIM over videos, TextShapes caption following, bits per pixel of the token
representation and the model's per-token cross-entropy in bits. FVD, which needs an I3D network, is in `fvd.py`.

Videos are (..., T, H, W, C) arrays or tensors with values in [0, data_range] (uint8 frames with
the default `data_range=255`); model outputs in [-1, 1] go through the processor's
`postprocess_video` first, so every metric here reads frames as a person sees them.

Each metric is also an `evaluate` module: `evaluate.load(evaluate_module_path("video_psnr"))`, likewise
`video_ssim`, `textshapes_caption_following` and `fvd`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data.textshapes import DEFAULT_PRESET, ClipParams, TextShapesClip, TextShapesPreset, caption_check, centroid_error

__all__ = [
    "EVALUATE_MODULES",
    "bits_per_pixel",
    "caption_following",
    "cross_entropy_bits",
    "evaluate_module_path",
    "psnr",
    "ssim",
]

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


def _gaussian_kernel() -> torch.Tensor:
    """The 1-D Gaussian of SSIM's window (its 2-D window is the outer product of two of them)."""
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    return kernel / kernel.sum()


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
    kernel = _gaussian_kernel()
    rows = kernel.view(1, 1, SSIM_WINDOW, 1).expand(channels, 1, SSIM_WINDOW, 1)
    columns = kernel.view(1, 1, 1, SSIM_WINDOW).expand(channels, 1, 1, SSIM_WINDOW)

    def blur(image: torch.Tensor) -> torch.Tensor:
        # the separable window: along the columns, then along the rows (float64 depthwise 2-D convolutions are slow)
        return F.conv2d(F.conv2d(image, rows, groups=channels), columns, groups=channels)

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


def cross_entropy_bits(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean per-token cross-entropy in bits (nats / ln 2) of the tokens where `mask` is true (all tokens when None).

    Args:
        logits: (..., K) unnormalised scores over the K codebook entries (e.g. MMVG's (B, T, h, w, K)).
        targets: (...) long, the true token ids.
        mask: (...) bool, the tokens to score (e.g. the masked, predicted tokens).
    """
    logits = torch.as_tensor(logits)
    targets = torch.as_tensor(targets)
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits (..., K) and targets (...) disagree: {tuple(logits.shape)} vs {tuple(targets.shape)}")
    nats = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1).long(), reduction="none")
    if mask is not None:
        mask = torch.as_tensor(mask, dtype=torch.bool, device=nats.device)
        if mask.shape != targets.shape:
            raise ValueError(f"mask and targets shapes differ: {tuple(mask.shape)} vs {tuple(targets.shape)}")
        nats = nats[mask.reshape(-1)]
    if nats.numel() == 0:
        raise ValueError("no token to score: the mask selects nothing")
    return nats.double().mean().item() / math.log(2)


def caption_following(
    videos: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    captions_or_metadata: Sequence[str | Mapping | ClipParams | TextShapesClip],
    preset: str | TextShapesPreset = DEFAULT_PRESET,
) -> dict[str, float | int]:
    """TextShapes caption following (TEXTSHAPES.md): the share of clips that move as their caption says, and the mean
    distance in pixels between generated and true object centroids.

    Args:
        videos: generated uint8 clips (B, N, R, R, 3) at the preset's size.
        captions_or_metadata: per clip, its caption, or a metadata row (`color`, `shape`, `directions`, and
            `positions` for the centroid error), `ClipParams` or `TextShapesClip`.

    Returns:
        `accuracy`: share of clips passing `caption_check`; `centroid_error`: mean `centroid_error` over the clips
        whose reference gives true positions (not a bare caption) and whose error is finite, NaN if none;
        `num_clips`.
    """
    references = list(captions_or_metadata)
    if len(videos) != len(references):
        raise ValueError(f"{len(videos)} videos but {len(references)} captions or metadata rows")
    videos = [np.asarray(video) for video in videos]
    follows = [caption_check(video, reference, preset).follows for video, reference in zip(videos, references)]
    # a bare caption says where the object goes, not where it starts: no true centroids to compare with
    errors = [
        centroid_error(video, reference, preset)
        for video, reference in zip(videos, references)
        if not isinstance(reference, str) and not (isinstance(reference, Mapping) and "positions" not in reference)
    ]
    finite = [error for error in errors if np.isfinite(error)]
    return {
        "accuracy": float(np.mean(follows)) if follows else float("nan"),
        "centroid_error": float(np.mean(finite)) if finite else float("nan"),
        "num_clips": len(references),
    }


EVALUATE_MODULES = ("video_psnr", "video_ssim", "textshapes_caption_following", "fvd")


def evaluate_module_path(name: str) -> str:
    """Folder of the `evaluate` module `name` shipped with this package, for `evaluate.load(path)` (works offline).

    Names: `video_psnr`, `video_ssim`, `textshapes_caption_following`, `fvd`.
    """
    if name not in EVALUATE_MODULES:
        raise ValueError(f"unknown evaluate module {name!r}; choose from {', '.join(EVALUATE_MODULES)}")
    return str(Path(__file__).parent / "evaluate_metrics" / name)
