"""Training and evaluating T-VQ with the transformers `Trainer` (training-only; inference needs none of it).

`TVQTrainer` adds to `Trainer`:
- the training-only terms of the VQGAN objective, which the model does not compute: the perceptual loss with the
  feature extractor F (`perceptual_network`, built from the config unless given) and, once
  `discriminator_start_step` is reached, the adaptive-weighted hinge generator loss of the patch discriminator
  (`losses_tvq.generator_loss` adds both to the model's loss);
- the VQGAN discriminator step: after each generator step a second optimizer updates the patch discriminator on
  real frames vs the detached reconstruction; both go through `accelerator.backward`, so the step runs unchanged
  under accelerate / DDP;
- the discriminator and its optimizer saved in, and restored from, every checkpoint beside the
  model's own optimizer and scheduler (so `resume_from_checkpoint` resumes the GAN too);
- a random ordered subset of each clip's frames per training step (`train_frames_per_clip`), drawn in the
  step so that a resumed run repeats the uninterrupted one;
- every loss term, the batch's codebook perplexity and the temporal-order accuracy in the logs;
- `evaluate()` measuring what Stage 1 is judged by on held-out clips (`evaluate_tvq`): PSNR and
  SSIM of the reconstruction, codebook usage and perplexity over the whole set, the temporal-order
  accuracy of FC^T on every ordered pair of frames, and the mean loss terms.

Saves are complete or absent (`checkpointing.AtomicSaveMixin`, also `MMVGTrainer`'s).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import Trainer

from .checkpointing import AtomicSaveMixin
from .losses_tvq import (
    FeatureExtractor,
    PatchDiscriminator,
    adversarial_active,
    build_perceptual_network,
    discriminator_loss,
    generator_loss,
)
from .metrics import psnr, ssim
from .modeling_tvq import CodebookUsageTracker, TVQModel, all_frame_pairs
from .video_processing_mmvg import MMVGVideoProcessor

__all__ = [
    "TVQDataCollator",
    "TVQTrainer",
    "evaluate_tvq",
    "random_frame_subsets",
    "temporal_order_accuracy",
]

DISCRIMINATOR_FILE = "discriminator.pt"
LOGGED_TERMS = (
    "l1_loss",
    "l2_loss",
    "codebook_loss",
    "commitment_loss",
    "perceptual_loss",
    "adversarial_loss",
    "adversarial_weight",
    "temporal_loss",
    "temporal_accuracy",
    "codebook_perplexity",
)


class TVQDataCollator:
    """Rows `{"frames": uint8 (T, C, H, W), ...}` -> `{"pixel_values": float (B, T, C, H, W) in [-1, 1]}`."""

    def __init__(self, video_processor: MMVGVideoProcessor):
        self.video_processor = video_processor

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        videos = [row["frames"] for row in rows]
        pixel_values = self.video_processor(videos=videos, return_tensors="pt", do_sample_frames=False)
        return {"pixel_values": pixel_values["pixel_values_videos"]}


def random_frame_subsets(pixel_values: torch.Tensor, frames_per_clip: int) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, frames_per_clip, C, H, W): a random subset of each clip's frames, in their order, drawn
    from the global torch RNG. Clips of at most `frames_per_clip` frames are returned whole."""
    batch_size, num_frames = pixel_values.shape[:2]
    if frames_per_clip >= num_frames:
        return pixel_values
    device = pixel_values.device
    picks = torch.rand(batch_size, num_frames, device=device).argsort(dim=1)[:, :frames_per_clip].sort(dim=1).values
    return pixel_values[torch.arange(batch_size, device=device)[:, None], picks]


# the six orders of the RGB channels
CHANNEL_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def augment_clips(pixel_values: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) -> the same clips, each mirrored left-right with probability 1/2 and with its RGB channels in
    one of their six orders, drawn uniformly from the global torch RNG (one draw per clip: all its frames alike, so
    the motion and the frame order are kept). The colour orders teach a T-VQ trained on few photographs every hue
    its training photos lack (without them it reconstructs unseen photographs with a colour cast)."""
    batch_size, _, channels = pixel_values.shape[:3]
    if channels != 3:
        raise ValueError(f"augment_clips needs RGB clips (3 channels), got {channels}")
    device = pixel_values.device
    mirror = torch.rand(batch_size, device=device) < 0.5
    orders = torch.tensor(CHANNEL_ORDERS, device=device)[torch.randint(len(CHANNEL_ORDERS), (batch_size,), device=device)]
    pixel_values = torch.where(mirror[:, None, None, None, None], pixel_values.flip(-1), pixel_values)
    return pixel_values.gather(2, orders[:, None, :, None, None].expand_as(pixel_values))


@torch.no_grad()
def temporal_order_accuracy(model: TVQModel, quantized_latents: torch.Tensor) -> tuple[int, int]:
    """Correct and total predictions of FC^T over every ordered pair (i, j), i != j, of each clip.

    quantized_latents: (B, T, D, h, w) from `model.encode`.
    """
    batch_size, num_frames = quantized_latents.shape[:2]
    first, second = all_frame_pairs(1, num_frames, quantized_latents.device)
    first, second = first[0], second[0]
    logits = model.temporal_head(
        quantized_latents[:, first].flatten(0, 1), quantized_latents[:, second].flatten(0, 1)
    )
    labels = (first < second).repeat(batch_size)
    return int(((logits > 0) == labels).sum()), labels.numel()


def _frozen_perceptual_network(network: FeatureExtractor, model: TVQModel) -> FeatureExtractor:
    """F frozen (`requires_grad_(False)`, `eval()`) and on the model's device and dtype when it is an `nn.Module`."""
    if isinstance(network, torch.nn.Module):
        network.requires_grad_(False).eval().to(device=model.device, dtype=model.dtype)
    return network


@torch.no_grad()
def evaluate_tvq(
    model: TVQModel,
    batches: Iterable[dict[str, torch.Tensor]],
    video_processor: MMVGVideoProcessor,
    show_progress: bool = True,
    perceptual_network: FeatureExtractor | None = None,
) -> dict[str, float]:
    """Stage-1 quality on held-out clips.

    Args:
        batches: dicts with `pixel_values` (B, T, C, H, W) in [-1, 1] (e.g. a DataLoader with `TVQDataCollator`).
        video_processor: the processor that made `pixel_values`; its `postprocess_video` turns input and
            reconstruction back into uint8 frames for PSNR and SSIM.
        perceptual_network: F for the perceptual term of `loss`; built from the config when it enables the term
            and none is given.

    Returns:
        `psnr` and `ssim` (dB / unitless, of the uint8 reconstruction vs the uint8 input, mean over clips),
        `codebook_usage` (fraction of codes used over the whole set), `codebook_perplexity`,
        `temporal_order_accuracy` (FC^T over all ordered frame pairs), and the mean of every loss term (the
        model's and the perceptual term; `loss` is the generator objective without the adversarial term).
    """
    config = model.config
    if perceptual_network is None and config.use_perceptual_loss:
        perceptual_network = build_perceptual_network(config)
    if perceptual_network is not None:
        perceptual_network = _frozen_perceptual_network(perceptual_network, model)
    was_training = model.training
    model.eval()
    tracker = CodebookUsageTracker(model.config.codebook_size)
    sums: dict[str, float] = defaultdict(float)
    num_clips = correct_pairs = total_pairs = 0
    for batch in tqdm(batches, desc="evaluating T-VQ", disable=not show_progress, leave=False):
        pixel_values = batch["pixel_values"].to(model.device)
        outputs = model(pixel_values)
        losses = {**outputs, **generator_loss(outputs, pixel_values, config, perceptual_network=perceptual_network)}
        tracker.update(outputs.token_ids)
        if pixel_values.shape[1] > 1:
            correct, total = temporal_order_accuracy(model, outputs.quantized_latents)
            correct_pairs, total_pairs = correct_pairs + correct, total_pairs + total
        real = video_processor.postprocess_video(pixel_values.cpu(), output_type="np")
        fake = video_processor.postprocess_video(outputs.reconstruction.cpu(), output_type="np")
        size = pixel_values.shape[0]
        sums["psnr"] += psnr(fake, real).clamp(max=100.0).sum().item()  # identical clips count as 100 dB
        sums["ssim"] += ssim(fake, real).sum().item()
        for name in ("loss",) + LOGGED_TERMS:
            value = losses.get(name)
            if value is not None and name not in ("codebook_perplexity", "temporal_accuracy"):
                sums[name] += float(value) * size
        num_clips += size
    model.train(was_training)
    if num_clips == 0:
        raise ValueError("evaluate_tvq got no clips")
    metrics = {name: total / num_clips for name, total in sums.items()}
    metrics["codebook_usage"] = tracker.usage
    metrics["codebook_perplexity"] = tracker.perplexity
    if total_pairs:
        metrics["temporal_order_accuracy"] = correct_pairs / total_pairs
    return metrics


class TVQTrainer(AtomicSaveMixin, Trainer):
    """`Trainer` for T-VQ with the VQGAN discriminator step; see the module docstring.

    Args:
        perceptual_network: F of the perceptual term, any callable `(N, C, H, W)` in [-1, 1] -> list of feature
            maps (e.g. `losses_tvq.TorchvisionFeatures` with local VGG weights); built from the model's config
            (`losses_tvq.build_perceptual_network`) when the config enables the perceptual loss and none is given.
            An `nn.Module` is frozen and moved to the model's device. Held as `trainer.perceptual_network`; it is
            never saved.
        discriminator: the patch discriminator; built from the model's config when the config enables
            the adversarial loss and none is given.
        discriminator_learning_rate: its Adam learning rate (defaults to the generator's).
        train_frames_per_clip: frames of each clip a training step codes (a random ordered subset,
            `random_frame_subsets`); None codes all. T-VQ codes frames one by one and only FC^T looks at two frames
            of a clip at a time, so training sees more distinct clips per second with 2 frames of each.
        Other arguments are `Trainer`'s.
    """

    def __init__(
        self,
        *args,
        perceptual_network: FeatureExtractor | None = None,
        discriminator: torch.nn.Module | None = None,
        discriminator_learning_rate: float | None = None,
        train_frames_per_clip: int | None = None,
        augment: bool = False,
        **kwargs,
    ):
        if train_frames_per_clip is not None and train_frames_per_clip < 2:
            raise ValueError(f"train_frames_per_clip must be >= 2 (FC^T needs pairs), got {train_frames_per_clip}")
        super().__init__(*args, **kwargs)
        self.train_frames_per_clip = train_frames_per_clip
        self.augment = augment
        config = self.model.config
        if perceptual_network is None and config.use_perceptual_loss:
            perceptual_network = build_perceptual_network(config)
        self.perceptual_network = (
            None if perceptual_network is None else _frozen_perceptual_network(perceptual_network, self.model)
        )
        if discriminator is None and config.use_adversarial_loss:
            discriminator = PatchDiscriminator(in_channels=config.in_channels)
        self.discriminator = discriminator
        self.discriminator_optimizer = None
        if discriminator is not None:
            discriminator.to(self.args.device)
            learning_rate = discriminator_learning_rate or self.args.learning_rate
            optimizer = torch.optim.Adam(discriminator.parameters(), lr=learning_rate, betas=(0.5, 0.9))
            self.discriminator, self.discriminator_optimizer = self.accelerator.prepare(discriminator, optimizer)
        self._term_sums: dict[str, float] = defaultdict(float)
        self._term_counts: dict[str, int] = defaultdict(int)
        self._last_batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def _adversarial_active(self) -> bool:
        return self.discriminator is not None and adversarial_active(self.model.config, self.state.global_step)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pixel_values = inputs["pixel_values"]
        if model.training and self.train_frames_per_clip is not None:
            # drawn here, not in the collator: a collator runs ahead of the step (the dataloader prefetches, and a
            # resumed run fetches its first batch before restoring the RNG), so only a draw made at the step comes
            # from the RNG state a checkpoint restores, and a resumed run repeats the uninterrupted one exactly
            pixel_values = random_frame_subsets(pixel_values, self.train_frames_per_clip)
        if model.training and self.augment:
            pixel_values = augment_clips(pixel_values)
        active = self._adversarial_active() and model.training
        outputs = model(pixel_values=pixel_values)
        losses = generator_loss(
            outputs,
            pixel_values,
            self.model.config,
            perceptual_network=self.perceptual_network,
            discriminator=self.discriminator if active else None,
            last_layer_weight=self.model.decoder.conv_out.weight,
        )
        if model.training:
            for name in LOGGED_TERMS:
                value = losses.get(name, outputs.get(name))
                if value is not None:
                    self._term_sums[name] += float(value.detach())
                    self._term_counts[name] += 1
            self._last_batch = (pixel_values, outputs.reconstruction.detach()) if active else None
        return (losses["loss"], outputs) if return_outputs else losses["loss"]

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self._last_batch is not None:
            real, fake = self._last_batch
            self._last_batch = None
            # the generator step also left gradients in the discriminator: clear them first
            self.discriminator_optimizer.zero_grad(set_to_none=True)
            d_loss = discriminator_loss(self.discriminator, real, fake)
            self.accelerator.backward(d_loss)
            self.discriminator_optimizer.step()
            self._term_sums["discriminator_loss"] += float(d_loss.detach())
            self._term_counts["discriminator_loss"] += 1
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._term_counts:  # a training log: add the mean of every term since the last one
            for name, total in self._term_sums.items():
                logs[name] = round(total / self._term_counts[name], 5)
            self._term_sums.clear()
            self._term_counts.clear()
        super().log(logs, start_time)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("TVQTrainer.evaluate needs an eval_dataset")
        video_processor = self.data_collator.video_processor
        collator = TVQDataCollator(video_processor)
        loader = DataLoader(dataset, batch_size=self.args.per_device_eval_batch_size, collate_fn=collator)
        metrics = evaluate_tvq(
            self.model,
            loader,
            video_processor,
            show_progress=not self.args.disable_tqdm,
            perceptual_network=self.perceptual_network,
        )
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in metrics.items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    # -- the discriminator travels with every checkpoint ----------------------------------------------------

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.discriminator is not None and self.args.should_save:
            state = {
                "discriminator": self.accelerator.unwrap_model(self.discriminator).state_dict(),
                "optimizer": self.discriminator_optimizer.state_dict(),
            }
            torch.save(state, os.path.join(output_dir, DISCRIMINATOR_FILE))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or self.discriminator is None:
            return
        path = os.path.join(checkpoint, DISCRIMINATOR_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{checkpoint} has no {DISCRIMINATOR_FILE}: it was not saved by a GAN run")
        state = torch.load(path, map_location=self.args.device, weights_only=True)
        self.accelerator.unwrap_model(self.discriminator).load_state_dict(state["discriminator"])
        self.discriminator_optimizer.load_state_dict(state["optimizer"])
