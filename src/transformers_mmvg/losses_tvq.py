"""Training-only parts of T-VQ: the perceptual feature extractors F, the patch discriminator, the hinge GAN losses,
VQGAN's adaptive adversarial weight, and `generator_loss`, which adds the perceptual and adversarial terms to the
model's own loss. Nothing here is needed to encode or decode: `modeling_tvq` does not import this module.

One training step with the adversarial term (two optimizers; `TVQTrainer` does the same under `Trainer`):

    network, disc = build_perceptual_network(model.config), PatchDiscriminator()

    # generator step: the model's terms (reconstruction, VQ, temporal) + perceptual (+ adaptive-weighted hinge)
    outputs = model(pixel_values)
    active = adversarial_active(model.config, step)
    losses = generator_loss(outputs, pixel_values, model.config, perceptual_network=network,
                            discriminator=disc if active else None, last_layer_weight=model.decoder.conv_out.weight)
    losses["loss"].backward(); opt_g.step(); opt_g.zero_grad()

    # discriminator step (from `model.config.discriminator_start_step` on)
    opt_d.zero_grad()  # the generator step above also left gradients in the discriminator
    discriminator_loss(disc, pixel_values, outputs.reconstruction).backward(); opt_d.step()

The perceptual feature extractor F is pluggable: any callable mapping images `(N, C, H, W)` in [-1, 1] to a list
of feature maps. `build_perceptual_network(config)` gives the one named by the config; it is never saved with the
model and never receives gradients.
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


FeatureExtractor = Callable[[torch.Tensor], Sequence[torch.Tensor] | torch.Tensor]


def _fold_frames(images: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B*T, C, H, W); (N, C, H, W) unchanged."""
    if images.ndim == 5:
        return rearrange(images, "b t c h w -> (b t) c h w")
    if images.ndim != 4:
        raise ValueError(f"Expected images of shape (B, T, C, H, W) or (N, C, H, W), got {tuple(images.shape)}.")
    return images


# ----------------------------------------------------------------------------------------------------------------
# Perceptual feature extractors F
# ----------------------------------------------------------------------------------------------------------------


class RandomConvFeatures(nn.Module):
    """The offline default F: a fixed, seeded, randomly initialised multi-scale conv net.

    Layers: `conv3x3(C -> c_0, stride 1)`, then `conv3x3(c_{k-1} -> c_k, stride 2)` for every further width,
    each followed by LeakyReLU(0.2); the output of every layer is one feature map (full, 1/2, 1/4 ... resolution).
    Weights are Kaiming-normal (fan-in, LeakyReLU gain) from `torch.Generator().manual_seed(seed)`, biases zero, so
    the net is a pure function of `(in_channels, channels, seed)` and never needs to be saved. It never trains.

    Why: no pretrained VGG can be downloaded here, and random conv features are a known workable perceptual prior
    (untrained CNNs already capture local structure: edges, colour blobs, texture at several scales). With
    variance-preserving init every layer has unit-scale activations, so the layer terms are comparable. Default
    widths (16, 32, 64) cost ~2% of a T-VQ training step on CPU.
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (16, 32, 64), seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        layers = []
        previous = in_channels
        for index, width in enumerate(channels):
            conv = nn.Conv2d(previous, width, kernel_size=3, stride=1 if index == 0 else 2, padding=1)
            with torch.no_grad():
                gain = nn.init.calculate_gain("leaky_relu", 0.2)
                std = gain / (previous * 9) ** 0.5
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
                conv.bias.zero_()
            layers.append(conv)
            previous = width
        self.layers = nn.ModuleList(layers)
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images: (N, C, H, W) in [-1, 1] -> one feature map per layer."""
        features = []
        hidden = images
        for conv in self.layers:
            hidden = F.leaky_relu(conv(hidden), 0.2)
            features.append(hidden)
        return features


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionFeatures(nn.Module):
    """F from a local torchvision classifier with the user's own weights (e.g. VGG16 for an LPIPS-like loss).

    Args:
        model_name: a `torchvision.models.get_model` name (`"vgg16"`, `"resnet18"` ...).
        weights_path: local state-dict file (`.pth`/`.pt` via `torch.load`, or `.safetensors`). `None` keeps the
            random torchvision init (only useful for tests).
        return_nodes: graph nodes to read (`torchvision.models.feature_extraction` names). Defaults: the ReLU
            before every max-pool for VGG (LPIPS's relu1_2 ... relu5_3), `layer1..layer4` for ResNets.

    Inputs in [-1, 1] are mapped to [0, 1] and normalised with the ImageNet mean/std.
    """

    def __init__(self, model_name: str, weights_path: str | None = None, return_nodes: Sequence[str] | None = None):
        super().__init__()
        import torchvision
        from torchvision.models.feature_extraction import create_feature_extractor

        model = torchvision.models.get_model(model_name, weights=None)
        if weights_path is not None:
            if weights_path.endswith(".safetensors"):
                from safetensors.torch import load_file

                state_dict = load_file(weights_path)
            else:
                state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state_dict)
        if return_nodes is None:
            return_nodes = self._default_nodes(model_name, model)
        self.return_nodes = list(return_nodes)
        self.extractor = create_feature_extractor(model, return_nodes=self.return_nodes)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _default_nodes(model_name: str, model: nn.Module) -> list[str]:
        if model_name.startswith("vgg"):
            modules = list(model.features)
            return [
                f"features.{index - 1}" for index, module in enumerate(modules) if isinstance(module, nn.MaxPool2d)
            ]
        if model_name.startswith(("resnet", "resnext", "wide_resnet")):
            return ["layer1", "layer2", "layer3", "layer4"]
        raise ValueError(f"No default feature layers for {model_name!r}: pass `return_nodes`.")

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        images = ((images + 1) / 2 - self.mean) / self.std
        features = self.extractor(images)
        return [features[node] for node in self.return_nodes]


def build_perceptual_network(config) -> nn.Module:
    """The F named by a `TVQConfig`: `"random_conv"` or `"torchvision:<name>"` (+ `perceptual_weights_path`).

    Building it leaves the global RNG where it was: its layers initialise from that RNG before F's own seeded (or
    loaded) weights replace them, and `fork_rng` keeps that draw from moving the RNG a training run samples from, so
    a run draws the same frame subsets and pairs whether or not (and whenever) it builds F.
    """
    with torch.random.fork_rng(devices=[]):
        if config.perceptual_network == "random_conv":
            return RandomConvFeatures(in_channels=config.in_channels, seed=config.perceptual_seed)
        model_name = config.perceptual_network.split(":", 1)[1]
        return TorchvisionFeatures(model_name, weights_path=config.perceptual_weights_path)


def perceptual_loss(feature_extractor: FeatureExtractor, reconstruction: torch.Tensor, target: torch.Tensor):
    """`|F(v^) - F(v)|_1`: the mean absolute feature difference of every layer, averaged over layers.

    Gradients flow into `reconstruction` only (the target's features are computed without grad). Images are
    (N, C, H, W) or (B, T, C, H, W) in [-1, 1].
    """
    reconstruction, target = _fold_frames(reconstruction), _fold_frames(target)
    fake_features = feature_extractor(reconstruction)
    with torch.no_grad():
        real_features = feature_extractor(target)
    if isinstance(fake_features, torch.Tensor):
        fake_features, real_features = [fake_features], [real_features]
    layer_losses = [F.l1_loss(fake, real) for fake, real in zip(fake_features, real_features)]
    return torch.stack(layer_losses).mean()


# ----------------------------------------------------------------------------------------------------------------
# Adversarial training
# ----------------------------------------------------------------------------------------------------------------


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix / VQGAN style, GroupNorm instead of BatchNorm): one logit per patch.

    `conv4x4/2 -> LReLU`, then `num_layers - 1` x `conv4x4/2 -> GN -> LReLU` (width doubling, capped at 8x), then
    `conv4x4/1 -> GN -> LReLU -> conv4x4/1 -> 1`. For 64x64 frames and `num_layers=3`: (N, 1, 6, 6) logits.
    Accepts frames (N, C, H, W) or clips (B, T, C, H, W) (every frame is judged on its own).
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 32, num_layers: int = 3, num_groups: int = 8):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = base_channels
        for index in range(1, num_layers + 1):
            next_width = base_channels * min(2**index, 8)
            stride = 2 if index < num_layers else 1
            layers += [
                nn.Conv2d(width, next_width, 4, stride, 1, bias=False),
                nn.GroupNorm(num_groups, next_width),
                nn.LeakyReLU(0.2),
            ]
            width = next_width
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.layers = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.GroupNorm):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images in [-1, 1] -> patch logits (N, 1, h', w'), N = B*T for clips."""
        return self.layers(_fold_frames(images))


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: `0.5 * (mean(relu(1 - D(v))) + mean(relu(1 + D(v^))))`."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss: `-mean(D(v^))`."""
    return -logits_fake.mean()


def adaptive_adversarial_weight(
    nll_loss: torch.Tensor,
    g_loss: torch.Tensor,
    last_layer_weight: torch.Tensor,
    max_weight: float = 1e4,
    eps: float = 1e-4,
) -> torch.Tensor:
    """VQGAN's adaptive weight `|grad_w nll| / (|grad_w g| + eps)`, clamped to `[0, max_weight]` and detached.

    `w` is the weight of the decoder's last layer: the GAN term is scaled so that its gradient there has the
    size of the reconstruction gradient. Both losses must have a graph to `last_layer_weight` (call it in grad
    mode); the graphs are retained for the later `backward`.
    """
    nll_grads = torch.autograd.grad(nll_loss, last_layer_weight, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last_layer_weight, retain_graph=True)[0]
    weight = torch.norm(nll_grads) / (torch.norm(g_grads) + eps)
    return torch.clamp(weight, 0.0, max_weight).detach()


def discriminator_loss(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator step's loss: `hinge_d_loss(D(real), D(fake))`, with `fake` detached from the generator.

    `real`, `fake`: (B, T, C, H, W) or (N, C, H, W) in [-1, 1], e.g. `pixel_values` and
    `outputs.reconstruction` of the generator step.
    """
    return hinge_d_loss(discriminator(real), discriminator(fake.detach()))


# ----------------------------------------------------------------------------------------------------------------
# The generator objective
# ----------------------------------------------------------------------------------------------------------------


def adversarial_active(config, global_step: int | None) -> bool:
    """Whether the adversarial term is on at `global_step` of training (`None`: no schedule, on)."""
    if not config.use_adversarial_loss:
        return False
    return global_step is None or global_step >= config.discriminator_start_step


def generator_loss(
    outputs,
    pixel_values: torch.Tensor,
    config,
    perceptual_network: FeatureExtractor | None = None,
    discriminator: nn.Module | None = None,
    last_layer_weight: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The generator objective of a T-VQ training step: the model's loss plus the training-only terms,

        loss = outputs.loss + perceptual_weight * |F(v^) - F(v)|_1 + adversarial_weight * w_adaptive * -mean(D(v^))

    Args:
        outputs: the model's [`~modeling_tvq.TVQModelOutput`] for `pixel_values` (its `loss` holds the
            reconstruction, codebook, commitment and temporal terms).
        pixel_values (`torch.FloatTensor` of shape `(B, T, C, H, W)` or `(B, C, H, W)`): the frames `v`, in [-1, 1].
        config: the model's `TVQConfig` (the `use_*` switches and weights).
        perceptual_network: F; the perceptual term is added when given and `config.use_perceptual_loss`.
        discriminator: D; the hinge generator term is added when given (the caller applies the schedule, e.g.
            `adversarial_active`).
        last_layer_weight: the decoder's last weight (`model.decoder.conv_out.weight`), where VQGAN's adaptive weight
            `w_adaptive` compares the gradients of the reconstruction terms (L1, L2, perceptual) and of the hinge
            term (with `config.use_adaptive_adversarial_weight`, in grad mode; otherwise `w_adaptive = 1`).

    Returns:
        `{"loss": ...}` and each term added: `perceptual_loss`, `adversarial_loss` (unweighted) and
        `adversarial_weight` (`adversarial_weight * w_adaptive`).
    """
    reconstruction = outputs.reconstruction
    target = pixel_values.to(reconstruction.dtype)
    terms: dict[str, torch.Tensor] = {}
    loss = outputs.loss
    # the reconstruction terms, as VQGAN's adaptive weight balances them against the hinge term
    reconstruction_loss = reconstruction.new_zeros(())
    if config.use_l1_loss:
        reconstruction_loss = reconstruction_loss + config.l1_weight * outputs.l1_loss
    if config.use_l2_loss:
        reconstruction_loss = reconstruction_loss + config.l2_weight * outputs.l2_loss
    if config.use_perceptual_loss and perceptual_network is not None:
        terms["perceptual_loss"] = perceptual_loss(perceptual_network, reconstruction, target)
        reconstruction_loss = reconstruction_loss + config.perceptual_weight * terms["perceptual_loss"]
        loss = loss + config.perceptual_weight * terms["perceptual_loss"]
    if discriminator is not None:
        g_loss = hinge_g_loss(discriminator(reconstruction))
        weight = torch.tensor(float(config.adversarial_weight), device=g_loss.device)
        if (
            config.use_adaptive_adversarial_weight
            and last_layer_weight is not None
            and torch.is_grad_enabled()
            and last_layer_weight.requires_grad
            and reconstruction_loss.requires_grad
        ):
            weight = weight * adaptive_adversarial_weight(
                reconstruction_loss, g_loss, last_layer_weight, max_weight=config.adaptive_weight_max
            )
        terms["adversarial_loss"], terms["adversarial_weight"] = g_loss, weight
        loss = loss + weight * g_loss
    return {"loss": loss, **terms}


__all__ = [
    "PatchDiscriminator",
    "RandomConvFeatures",
    "TorchvisionFeatures",
    "adaptive_adversarial_weight",
    "adversarial_active",
    "build_perceptual_network",
    "discriminator_loss",
    "generator_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "perceptual_loss",
]
