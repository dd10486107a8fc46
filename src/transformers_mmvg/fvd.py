"""Fréchet Video Distance (Unterthiner et al. 2018) from I3D features.

    model = load_i3d("i3d_kinetics400.pt")      # user-supplied Kinetics-400 I3D weights
    score = fvd(real_videos, fake_videos, model)  # uint8 (B, T, H, W, 3) each

FVD is the Fréchet distance between Gaussians fitted to the I3D features of two sets of videos; the feature is the
400-way Kinetics logits (before the softmax) of the Inflated 3D ConvNet (Carreira & Zisserman 2017) on clips resized
to 224x224 and scaled to [-1, 1].

The I3D weights cannot be downloaded here. `load_i3d()` without a path builds the network with seeded random
weights: the code path runs end to end, but the numbers mean nothing next to published FVD, and every result from
such a network says so (`RANDOM_WEIGHT_LABEL`).

Weights: a PyTorch state dict (`.pt`, `.pth`, `.bin` or `.safetensors`) whose keys follow this module's names,
which are the end points of the original TensorFlow I3D (`Conv3d_1a_7x7`, `Mixed_3b`, ..., `logits`) with branches
`b0`, `b1a`, `b1b`, `b2a`, `b2b`, `b3b` and `conv3d` / `bn` inside each unit; the `features.` prefix is optional,
so state dicts converted from the TensorFlow checkpoint with these names load as they are.
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = [
    "I3D",
    "RANDOM_WEIGHT_LABEL",
    "FVDScore",
    "frechet_distance",
    "fvd",
    "i3d_features",
    "load_i3d",
]

RANDOM_WEIGHT_LABEL = "random-weight FVD: a code-path check, not comparable to published FVD"

I3D_INPUT_SIZE = 224  # frames are resized to this square size, as in the Kinetics training of I3D
KINETICS_CLASSES = 400
FINAL_POOL = (2, 7, 7)  # average pool before the logits: the (T, H, W) extent of Mixed_5c at 16 frames, 224x224
BATCH_NORM_EPS = 1e-3  # the TensorFlow I3D's value
SQRTM_OFFSET = 1e-6  # added to the covariance diagonals when their product is too singular for sqrtm

# Inception modules (Szegedy et al. 2015, Table 1 widths) inflated to 3D: out channels of
# (1x1x1, 1x1x1 -> 3x3x3, 1x1x1 -> 3x3x3, 3x3x3 max pool -> 1x1x1)
INCEPTION_WIDTHS = {
    "Mixed_3b": (64, (96, 128), (16, 32), 32),
    "Mixed_3c": (128, (128, 192), (32, 96), 64),
    "Mixed_4b": (192, (96, 208), (16, 48), 64),
    "Mixed_4c": (160, (112, 224), (24, 64), 64),
    "Mixed_4d": (128, (128, 256), (24, 64), 64),
    "Mixed_4e": (112, (144, 288), (32, 64), 64),
    "Mixed_4f": (256, (160, 320), (32, 128), 128),
    "Mixed_5b": (256, (160, 320), (32, 128), 128),
    "Mixed_5c": (384, (192, 384), (48, 128), 128),
}


def _same_padding(x: torch.Tensor, kernel_size: tuple[int, ...], stride: tuple[int, ...], value: float) -> torch.Tensor:
    """Pad (B, C, T, H, W) like TensorFlow's "SAME": output size ceil(input / stride), the odd pixel after. The
    pretrained I3D was trained this way, so matching it keeps user-supplied weights exact."""
    padding = []
    for size, kernel, step in zip(reversed(x.shape[2:]), reversed(kernel_size), reversed(stride)):
        total = max(kernel - (size % step or step), 0)
        padding += [total // 2, total - total // 2]  # F.pad lists the last dimension first
    return F.pad(x, padding, value=value)


class Unit3D(nn.Module):
    """Conv3d with "SAME" padding, then batch norm and ReLU (or, for the logits, a plain conv with bias)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        normalize_and_activate: bool = True,
    ):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel_size, stride, bias=not normalize_and_activate)
        self.bn = nn.BatchNorm3d(out_channels, eps=BATCH_NORM_EPS) if normalize_and_activate else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_same_padding(x, self.kernel_size, self.stride, value=0.0))
        return F.relu(self.bn(x)) if self.bn is not None else x


class MaxPool3dSame(nn.Module):
    """Max pool with "SAME" padding (padded positions never win)."""

    def __init__(self, kernel_size: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_same_padding(x, self.kernel_size, self.stride, value=-math.inf), self.kernel_size, self.stride)


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1x1x1; 1x1x1 -> 3x3x3; 1x1x1 -> 3x3x3; 3x3x3 max pool
    (stride 1) -> 1x1x1."""

    def __init__(self, in_channels: int, widths: tuple[int, tuple[int, int], tuple[int, int], int]):
        super().__init__()
        branch0, (branch1_reduce, branch1), (branch2_reduce, branch2), branch3 = widths
        cube = (3, 3, 3)
        self.b0 = Unit3D(in_channels, branch0)
        self.b1a = Unit3D(in_channels, branch1_reduce)
        self.b1b = Unit3D(branch1_reduce, branch1, kernel_size=cube)
        self.b2a = Unit3D(in_channels, branch2_reduce)
        self.b2b = Unit3D(branch2_reduce, branch2, kernel_size=cube)
        self.b3a = MaxPool3dSame(cube, stride=(1, 1, 1))
        self.b3b = Unit3D(in_channels, branch3)
        self.out_channels = branch0 + branch1 + branch2 + branch3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1
        )


class I3D(nn.Module):
    """Inflated 3D ConvNet (Carreira & Zisserman 2017): InceptionV1 with every 2D kernel made 3D.

    The stem pools space but not time at first (1x3x3 pools), then time too (3x3x3 and 2x2x2 pools), as in the
    paper's Figure 3. `forward` maps pixel values (B, 3, T, H, W) in [-1, 1] to (B, num_classes) logits, averaged
    over the remaining time (and space, when frames are larger than `input_size`).

    Attributes:
        input_size: the square frame size `i3d_features` resizes to (224 for the published network).
        weights_source: the weights file, or None for seeded random weights (see `random_weights`).
    """

    def __init__(self, num_classes: int = KINETICS_CLASSES, input_size: int = I3D_INPUT_SIZE):
        super().__init__()
        self.input_size = input_size
        self.weights_source: str | None = None
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            Conv3d_1a_7x7=Unit3D(3, 64, kernel_size=(7, 7, 7), stride=(2, 2, 2)),
            MaxPool3d_2a_3x3=MaxPool3dSame((1, 3, 3), stride=(1, 2, 2)),
            Conv3d_2b_1x1=Unit3D(64, 64),
            Conv3d_2c_3x3=Unit3D(64, 192, kernel_size=(3, 3, 3)),
            MaxPool3d_3a_3x3=MaxPool3dSame((1, 3, 3), stride=(1, 2, 2)),
        )
        channels = 192
        pools_before = {
            "Mixed_4b": ("MaxPool3d_4a_3x3", MaxPool3dSame((3, 3, 3), stride=(2, 2, 2))),
            "Mixed_5b": ("MaxPool3d_5a_2x2", MaxPool3dSame((2, 2, 2), stride=(2, 2, 2))),
        }
        for name, widths in INCEPTION_WIDTHS.items():
            if name in pools_before:
                pool_name, pool = pools_before[name]
                layers[pool_name] = pool
            layers[name] = InceptionBlock(channels, widths)
            channels = layers[name].out_channels
        self.features = nn.Sequential(layers)
        self.logits = Unit3D(channels, num_classes, normalize_and_activate=False)

    @property
    def random_weights(self) -> bool:
        """True when the network was not loaded from a weights file: its FVD is only a code-path check."""
        return self.weights_source is None

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, T, H, W) in [-1, 1] -> logits (B, num_classes)."""
        hidden_states = self.features(pixel_values)  # (B, 1024, T', H', W')
        kernel = tuple(min(extent, size) for extent, size in zip(FINAL_POOL, hidden_states.shape[2:]))
        hidden_states = F.avg_pool3d(hidden_states, kernel, stride=1)
        # the training-time dropout before the logits is left out: features are always computed in eval mode
        return self.logits(hidden_states).mean(dim=(2, 3, 4))


def _random_init(model: I3D, seed: int) -> None:
    """He-normal convolutions (activations keep their scale through the depth), unit batch norms, zero biases, all
    drawn from a private generator so the global RNG is left alone."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            nonlinearity = "relu" if module.bias is None else "linear"
            nn.init.kaiming_normal_(module.weight, nonlinearity=nonlinearity, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm3d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    # state dicts named after the TensorFlow end points lack this module's `features.` prefix
    return {key if key.startswith(("features.", "logits.")) else f"features.{key}": value for key, value in state.items()}


def load_i3d(
    weights_path: str | os.PathLike | None = None,
    input_size: int = I3D_INPUT_SIZE,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> I3D:
    """The I3D feature network for FVD, in eval mode without gradients.

    Args:
        weights_path: a state dict of a Kinetics I3D (see the module docstring for the key names). None builds the
            network with random weights drawn from `seed`; its FVD is labelled `RANDOM_WEIGHT_LABEL`.
        input_size: square frame size the videos are resized to; 224 for published FVD (tests use smaller).
        device: where the network runs.
    """
    if weights_path is None:
        model = I3D(input_size=input_size)
        _random_init(model, seed)
        warnings.warn(f"load_i3d() without weights: {RANDOM_WEIGHT_LABEL}", stacklevel=2)
    else:
        weights_path = os.fspath(weights_path)
        state = _read_state_dict(weights_path)
        if "logits.conv3d.weight" not in state:
            raise ValueError(f"{weights_path} is not an I3D state dict: no `logits.conv3d.weight`")
        model = I3D(num_classes=state["logits.conv3d.weight"].shape[0], input_size=input_size)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [key for key in missing if not key.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"I3D weights in {weights_path} do not fit: missing {missing}, unexpected {unexpected}")
        model.weights_source = weights_path
    return model.eval().requires_grad_(False).to(device)


@torch.no_grad()
def i3d_features(model: I3D, videos: np.ndarray | torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """I3D logits of uint8 videos.

    Each frame is resized (bilinear) to `model.input_size` squared and scaled to [-1, 1].

    Args:
        videos: uint8 (B, T, H, W, 3).
        batch_size: clips per forward pass (bounds the memory).

    Returns:
        float32 tensor (B, num_classes) on the CPU.
    """
    videos = torch.as_tensor(videos)
    if videos.dtype != torch.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
        raise ValueError(f"videos must be uint8 (B, T, H, W, 3), got {videos.dtype} {tuple(videos.shape)}")
    device = next(model.parameters()).device
    size = (model.input_size, model.input_size)
    features = []
    for start in range(0, len(videos), batch_size):
        clips = videos[start : start + batch_size].to(device)
        frames = rearrange(clips, "b t h w c -> (b t) c h w").float()
        frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False) / 127.5 - 1
        pixel_values = rearrange(frames, "(b t) c h w -> b c t h w", b=len(clips))
        features.append(model(pixel_values).float().cpu())
    return torch.cat(features)


def _trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray, use_scipy: bool | None = None) -> float:
    """tr(sqrtm(cov_a @ cov_b)) for covariance matrices (D, D).

    With SciPy (what published FVD code uses): `scipy.linalg.sqrtm`, retried with a small diagonal offset when the
    product is too singular. Without it: cov_a @ cov_b is similar to the symmetric S = A^1/2 cov_b A^1/2 (A = cov_a),
    so the trace is the sum of the square roots of S's eigenvalues, computed in float64 with `torch.linalg.eigvalsh`.
    """
    if use_scipy is None:
        use_scipy = importlib.util.find_spec("scipy") is not None
    if use_scipy:
        from scipy.linalg import sqrtm

        root = sqrtm(cov_a @ cov_b)
        if not np.isfinite(root).all():
            offset = np.eye(len(cov_a)) * SQRTM_OFFSET
            root = sqrtm((cov_a + offset) @ (cov_b + offset))
        return float(np.trace(root).real)
    a, b = torch.from_numpy(cov_a).double(), torch.from_numpy(cov_b).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(a)
    sqrt_a = (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T
    product = sqrt_a @ b @ sqrt_a
    product = (product + product.T) / 2  # symmetric up to rounding
    return torch.linalg.eigvalsh(product).clamp(min=0).sqrt().sum().item()


def frechet_distance(features_a: np.ndarray | torch.Tensor, features_b: np.ndarray | torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a, D) and (N_b, D), N >= 2:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2), in float64; rounding below zero is clipped to 0."""
    a = np.asarray(torch.as_tensor(features_a).double().cpu())
    b = np.asarray(torch.as_tensor(features_b).double().cpu())
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError(f"a covariance needs at least 2 samples per set, got {len(a)} and {len(b)}")
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    distance = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * _trace_sqrt_product(cov_a, cov_b)
    return max(float(distance), 0.0)


class FVDScore(float):
    """An FVD value (a float) that remembers whether it came from a random-weight I3D; then its `repr` and `str`
    carry `RANDOM_WEIGHT_LABEL`, and `label` says which weights were used."""

    random_weights: bool
    weights_source: str | None

    def __new__(cls, value: float, weights_source: str | None):
        score = super().__new__(cls, value)
        score.weights_source = weights_source
        score.random_weights = weights_source is None
        return score

    @property
    def label(self) -> str:
        return RANDOM_WEIGHT_LABEL if self.random_weights else f"FVD with I3D weights from {self.weights_source}"

    def __repr__(self) -> str:
        value = float.__repr__(self)
        return f"{value} ({RANDOM_WEIGHT_LABEL})" if self.random_weights else value

    __str__ = __repr__


def fvd(
    real_videos: np.ndarray | torch.Tensor, fake_videos: np.ndarray | torch.Tensor, model: I3D, batch_size: int = 8
) -> FVDScore:
    """Fréchet Video Distance between two sets of uint8 videos (B, T, H, W, 3), at least 2 each.

    Returns:
        `FVDScore` (a float); with a random-weight `model` it is labelled `RANDOM_WEIGHT_LABEL` and a warning says so.
    """
    distance = frechet_distance(
        i3d_features(model, real_videos, batch_size), i3d_features(model, fake_videos, batch_size)
    )
    if model.random_weights:
        warnings.warn(RANDOM_WEIGHT_LABEL, stacklevel=2)
    return FVDScore(distance, model.weights_source)
