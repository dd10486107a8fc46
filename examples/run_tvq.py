#!/usr/bin/env python
"""Stage 1 of MMVG: train T-VQ, the temporal-aware VQGAN, with the transformers Trainer.

    python examples/run_tvq.py --output_dir outputs/tvq                       # TextShapes, default config
    python examples/run_tvq.py --train_dir my_videos/train --eval_dir my_videos/test \
        --num_frames 8 --resolution 64 --output_dir outputs/tvq-mine

Without `--train_dir` it generates TextShapes (`--preset`, `--num_train_clips`, `--num_eval_clips`)
under `<output_dir>/data`. Any folder of videos with a `metadata.jsonl`/`metadata.csv` works
(`transformers_mmvg.data.video_folder`). The model (`AutoModel.from_pretrained(output_dir)` reloads
it), its video processor, `eval_results.json` (PSNR, SSIM, codebook usage, temporal-order
accuracy on the held-out split), `train_log.jsonl` (every logged step), `training_data.json` (which
clips it was trained on) and `reconstructions.png` end up in `--output_dir`: with `--save_strategy no`
and the data elsewhere, that folder is a complete checkpoint folder.
`--resume_from_checkpoint` resumes, discriminator included. All `TrainingArguments` apply.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser, TrainerCallback, TrainingArguments, set_seed

from transformers_mmvg import MMVGVideoProcessor, TVQConfig, TVQModel
from transformers_mmvg.data.textshapes import DEFAULT_PRESET, PRESETS
from transformers_mmvg.data.video_folder import load_video_folder
from transformers_mmvg.metrics import bits_per_pixel
from transformers_mmvg.training_runs import training_splits, write_train_log, write_training_data_record
from transformers_mmvg.visualization import save_video_grid
from transformers_mmvg.trainer_tvq import TVQDataCollator, TVQTrainer

logger = logging.getLogger("run_tvq")


@dataclass
class DataArguments:
    train_dir: str | None = field(default=None, metadata={"help": "video folder to train on (default: TextShapes)"})
    eval_dir: str | None = field(default=None, metadata={"help": "held-out video folder"})
    preset: str = field(default=DEFAULT_PRESET, metadata={"help": f"TextShapes preset: {', '.join(PRESETS)}"})
    num_train_clips: int = field(default=2000, metadata={"help": "TextShapes clips to generate for training"})
    num_eval_clips: int = field(default=200, metadata={"help": "TextShapes clips to generate for evaluation"})
    data_seed_offset: int = field(default=0, metadata={"help": "added to --seed for the generated data"})
    num_frames: int | None = field(default=None, metadata={"help": "frames per clip (default: the preset's)"})
    resolution: int | None = field(default=None, metadata={"help": "frame size (default: the preset's)"})
    frame_stride: int | None = field(default=None, metadata={"help": "frame stride (default: spread evenly)"})
    clips_per_video: int = field(default=1, metadata={"help": "windows taken from each video, train and eval (needs --frame_stride)"})
    train_frames_per_clip: int | None = field(
        default=2, metadata={"help": "random ordered frames of each clip per training step (None: all)"}
    )


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "a T-VQ to start from"})
    config_overrides: str | None = field(
        default=None, metadata={"help": 'TVQConfig fields as JSON, e.g. \'{"codebook_size": 256}\''}
    )
    discriminator_learning_rate: float | None = field(default=None)


def build_model(model_args: ModelArguments, resolution: int) -> TVQModel:
    overrides = json.loads(model_args.config_overrides) if model_args.config_overrides else {}
    if model_args.model_name_or_path:
        return TVQModel.from_pretrained(model_args.model_name_or_path, **overrides)
    if overrides.setdefault("image_size", resolution) != resolution:
        raise ValueError(f"config image_size {overrides['image_size']} differs from --resolution {resolution}")
    return TVQModel(TVQConfig(**overrides))


@torch.no_grad()
def write_reconstructions(model: TVQModel, dataset, video_processor, path: Path, num_clips: int = 4) -> None:
    """A PNG grid: each held-out clip above its T-VQ reconstruction."""
    rows = dataset[:num_clips]
    pixel_values = video_processor(videos=rows["frames"], return_tensors="pt")["pixel_values_videos"].to(model.device)
    model.eval()
    reconstruction = model.decode(model.encode(pixel_values).token_ids)
    originals = video_processor.postprocess_video(pixel_values.cpu(), output_type="np")
    decoded = video_processor.postprocess_video(reconstruction.cpu(), output_type="np")
    videos = [video for pair in zip(originals, decoded) for video in pair]
    labels = [label for text in rows["text"] for label in (text, "T-VQ reconstruction")]
    save_video_grid(videos, path, labels=labels, scale=2)


def main(argv: list[str] | None = None, callbacks: list[TrainerCallback] | None = None) -> dict[str, float]:
    """Train, save and evaluate; returns the final metrics. `argv` defaults to the command line; `callbacks`
    are handed to the Trainer (e.g. to inspect the model when training ends)."""
    parser = HfArgumentParser((DataArguments, ModelArguments, TrainingArguments))
    defaults = [
        "--per_device_train_batch_size", "16",
        "--learning_rate", "1e-3",
        "--num_train_epochs", "36",
        "--adam_beta1", "0.5",
        "--adam_beta2", "0.9",
        "--lr_scheduler_type", "linear",
        "--warmup_steps", "0",
        "--logging_steps", "25",
        "--save_strategy", "epoch",
        "--save_total_limit", "2",
        "--eval_strategy", "no",
        "--dataloader_num_workers", "0",
        "--use_cpu", str(not torch.cuda.is_available()),
        "--report_to", "none",
        "--remove_unused_columns", "False",
    ]  # fmt: skip
    data_args, model_args, training_args = parser.parse_args_into_dataclasses(
        defaults + list(sys.argv[1:] if argv is None else argv)
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)

    with training_args.main_process_first(desc="TextShapes data"):  # one process writes it, the others read
        splits = training_splits(
            data_args.train_dir, data_args.eval_dir, output_dir / "data", data_args.preset, data_args.num_train_clips,
            data_args.num_eval_clips, training_args.seed + data_args.data_seed_offset, data_args.num_frames,
            data_args.resolution,
        )  # fmt: skip
    num_frames, resolution = splits.num_frames, splits.resolution
    load = dict(num_frames=num_frames, resolution=resolution, stride=data_args.frame_stride)
    train_dataset = load_video_folder(splits.train_dir, clips_per_video=data_args.clips_per_video, **load)
    eval_dataset = load_video_folder(splits.eval_dir, clips_per_video=data_args.clips_per_video, **load)
    video_processor = MMVGVideoProcessor(size={"height": resolution, "width": resolution}, num_frames=num_frames)
    model = build_model(model_args, resolution)
    logger.info("T-VQ: %.2fM parameters, %s", model.num_parameters() / 1e6, model.config.to_json_string())

    trainer = TVQTrainer(
        model=model,
        args=training_args,
        callbacks=callbacks,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=TVQDataCollator(video_processor),
        discriminator_learning_rate=model_args.discriminator_learning_rate,
        train_frames_per_clip=data_args.train_frames_per_clip,
    )
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    train_seconds = time.perf_counter() - start
    trainer.save_model(str(output_dir))
    if trainer.args.should_save:  # one process writes (save_model does the same)
        video_processor.save_pretrained(str(output_dir))

    metrics = trainer.evaluate()
    metrics["train_seconds"] = train_seconds
    metrics["train_steps"] = trainer.state.global_step
    config = model.config
    metrics["bits_per_pixel"] = bits_per_pixel(config.latent_size, config.codebook_size, config.image_size)
    if trainer.is_world_process_zero():
        (output_dir / "eval_results.json").write_text(json.dumps(metrics, indent=2) + "\n")
        write_train_log(output_dir, trainer.state.log_history)
        write_training_data_record(output_dir, splits.record)
        write_reconstructions(model, eval_dataset, video_processor, output_dir / "reconstructions.png")
        print(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main()

