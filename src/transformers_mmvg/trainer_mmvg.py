"""Training MMVG (stage 2) with the transformers `Trainer` (training-only; inference needs none of it).

- `cache_video_tokens`: the frozen T-VQ's tokens of every clip, computed once with `datasets.map` (the frames are
  dropped), so a training step never runs the T-VQ;
- `MMVGDataCollator`: tokenizes captions with the processor and stacks cached tokens (or preprocesses frames, for
  tokenizing on the fly);
- `MMVGTrainer`: logs L_M, every L_t and every p_t beside the loss, and `evaluate()` adds completion quality on
  held-out TextShapes clips (caption following per task, see `evaluation.py`) when given `completion_rows`; its
  checkpoints and saved models are complete or absent (`checkpointing.AtomicSaveMixin`, shared with `TVQTrainer`).
"""

from __future__ import annotations

from collections import defaultdict

import datasets
import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm
from transformers import Trainer

from .checkpointing import AtomicSaveMixin
from .evaluation import evaluate_completion
from .memory import check_memory
from .modeling_mmvg import MMVGForVideoCompletion
from .processing_mmvg import MMVGProcessor

__all__ = ["MMVGDataCollator", "MMVGTrainer", "cache_video_tokens"]


def cache_video_tokens(
    dataset: datasets.Dataset, model: MMVGForVideoCompletion, processor: MMVGProcessor, batch_size: int = 64
) -> datasets.Dataset:
    """The metadata rows of a video-folder `dataset` plus `video_token_ids` (N, h, w): every clip decoded once and
    tokenized by the model's frozen T-VQ. The result holds no frames."""
    token_ids = []
    for start in tqdm(range(0, len(dataset), batch_size), desc="T-VQ tokens"):
        rows = dataset[start : start + batch_size]
        inputs = processor.video_processor(videos=list(rows["frames"]), return_tensors="pt", do_sample_frames=False)
        token_ids.append(model.tokenize_video(inputs["pixel_values_videos"].to(model.device)).cpu())
    token_ids = torch.cat(token_ids).to(torch.int16)
    return dataset.with_format(None).add_column("video_token_ids", token_ids.numpy().tolist())


class MMVGDataCollator:
    """Rows -> `{"input_ids", "attention_mask"}` plus `video_token_ids` (cached tokens) or `pixel_values_videos`
    (frames, tokenized by the model's T-VQ inside `forward`)."""

    def __init__(self, processor: MMVGProcessor):
        self.processor = processor

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        texts = [row["text"] for row in rows]
        if "video_token_ids" in rows[0]:
            text = self.processor(text=texts, return_tensors="pt")  # pads, truncates and warns like the pixel path
            token_ids = torch.stack([torch.as_tensor(np.asarray(row["video_token_ids"])) for row in rows]).long()
            return {"input_ids": text["input_ids"], "attention_mask": text["attention_mask"],
                    "video_token_ids": token_ids}
        videos = [torch.as_tensor(np.asarray(row["frames"])) for row in rows]
        inputs = self.processor(text=texts, videos=videos, return_tensors="pt", do_sample_frames=False)
        return {key: inputs[key] for key in ("input_ids", "attention_mask", "pixel_values_videos")}


class MMVGTrainer(AtomicSaveMixin, Trainer):
    """`Trainer` that logs L_t and p_t and evaluates completions.

    Args (beyond `Trainer`'s):
        completion_rows: held-out TextShapes rows (with `frames`) on which `evaluate()` measures caption following,
            centroid error, PSNR and SSIM per task; None skips it.
        completion_kwargs: arguments of `model.complete` for that evaluation (decoding, steps, temperature, ...).
        completion_tasks: the tasks evaluated.
    """

    def __init__(self, *args, completion_rows=None, completion_kwargs=None,
                 completion_tasks=("prediction", "rewind", "infilling"), **kwargs):
        super().__init__(*args, **kwargs)
        self.completion_rows = completion_rows
        self.completion_kwargs = completion_kwargs or {}
        self.completion_tasks = tuple(completion_tasks)
        self._frame_sums = defaultdict(float)
        self._frame_counts = defaultdict(int)
        self._eval_batch_index = 0

    def train(self, *args, **kwargs):
        """As `Trainer.train`, after refusing a batch size that cannot fit in memory (`memory.check_memory`)."""
        model = self.accelerator.unwrap_model(self.model)
        check_memory(model.config, self.args.per_device_train_batch_size, self.args.device, training=True)
        return super().train(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Draw this step's masks (given frames from p_t, masked tokens, dropped captions), run the pure `forward`,
        and in training update p_t from the per-frame losses of the global batch. Evaluation batches draw their masks
        from a generator seeded by the batch's position, so `eval_loss` is the same at every evaluation."""
        unwrapped = self.accelerator.unwrap_model(model)
        generator = None
        if not model.training:
            generator = torch.Generator(device=unwrapped.device).manual_seed(self._eval_batch_index)
            self._eval_batch_index += 1
        outputs = model(**unwrapped.draw_training_masks(**inputs, generator=generator))
        if model.training:
            self._update_mask_probabilities(unwrapped, outputs)
            for index, (value, count) in enumerate(zip(outputs.frame_losses.tolist(), outputs.frame_token_counts.tolist())):
                if count > 0:
                    self._frame_sums[index] += value
                    self._frame_counts[index] += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    @staticmethod
    def _update_mask_probabilities(model: MMVGForVideoCompletion, outputs) -> None:
        """p_t from the L_t of the global batch: sums and counts all-reduced, so every process keeps the same p_t."""
        if model.config.mask_probability_alpha <= 0:
            return
        counts = outputs.frame_token_counts.detach().float()
        totals = torch.stack([outputs.frame_losses.detach().float() * counts, counts])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(totals)
        sums, counts = totals
        model.update_mask_probabilities(sums / counts.clamp(min=1), counts)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        self._eval_batch_index = 0
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        metrics.update(self._completion_metrics(metric_key_prefix))
        return metrics

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """The masked-generation loss on a held-out batch (masks drawn as in training, from a seeded generator)."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._frame_counts:
            for index in sorted(self._frame_counts):
                logs[f"frame_loss_{index}"] = round(self._frame_sums[index] / self._frame_counts[index], 4)
            self._frame_sums.clear()
            self._frame_counts.clear()
            model = self.accelerator.unwrap_model(self.model)
            for index, value in enumerate(model.mask_probabilities.tolist()):
                logs[f"mask_probability_{index}"] = round(value, 4)
        super().log(logs, start_time)

    def _completion_metrics(self, metric_key_prefix: str) -> dict[str, float]:
        """Completion quality on `completion_rows` (logged), or nothing without them."""
        if not self.completion_rows:
            return {}
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        results = evaluate_completion(
            model, self.processing_class, self.completion_rows, tasks=self.completion_tasks, **self.completion_kwargs,
        )  # fmt: skip
        model.train(was_training)
        extra = {}
        for task, methods in results.items():
            for name, value in methods["mmvg"].items():
                if name == "step_agreement":  # TextCam: one figure per camera motion
                    extra.update({f"{metric_key_prefix}_{task}_{motion}_steps": share
                                  for motion, share in value.items()})  # fmt: skip
                elif name != "scored_frames":  # the sample size (num_clips) is logged with every figure
                    extra[f"{metric_key_prefix}_{task}_{name}"] = value
        self.log(extra)
        return extra
