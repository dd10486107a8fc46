#!/usr/bin/env python
"""Stage 2 of MMVG: train the multimodal masked video generator on a frozen T-VQ with the transformers Trainer.

    python examples/run_mmvg.py --tvq_path outputs/tvq --output_dir outputs/mmvg          # TextShapes
    python examples/run_mmvg.py --tvq_path outputs/tvq --train_dir videos/train --eval_dir videos/test \
        --num_frames 8 --resolution 64 --output_dir outputs/mmvg-mine

Without `--train_dir` it generates TextShapes (`--preset`, `--num_train_clips`, `--num_eval_clips`) under
`<output_dir>/data` (or reads `--data_dir` if it holds `train/` and `eval/`). The frozen T-VQ's tokens of every clip
are computed once (`--cache_tokens`, default) or on the fly. Logs hold the loss L_M, every per-frame L_t and every
p_t. Evaluation (`--eval_strategy steps`) reports the held-out loss and, on TextShapes, caption following per task.
The model and the processor are saved together in `--output_dir` (`pipeline("text-guided-video-completion",
model=output_dir)` loads them), with `eval_results.json`, `train_log.jsonl` (every logged step and evaluation),
`training_data.json` (which clips it was trained on) and `samples.png`: with `--save_strategy no` and `--data_dir`
elsewhere, that folder is a complete checkpoint folder.
`--resume_from_checkpoint` resumes (optimizer, scheduler, RNG and p_t). All `TrainingArguments` apply.
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

from transformers_mmvg import MMVGForVideoCompletion, MMVGProcessor, MMVGVideoProcessor
from transformers_mmvg.data.textshapes import DEFAULT_PRESET, PRESETS
from transformers_mmvg.data.video_folder import load_video_folder
from transformers_mmvg.evaluation import save_task_grid
from transformers_mmvg.trainer_mmvg import MMVGDataCollator, MMVGTrainer, cache_video_tokens
from transformers_mmvg.training_runs import training_splits, write_train_log, write_training_data_record

logger = logging.getLogger("run_mmvg")


@dataclass
class DataArguments:
    train_dir: str | None = field(default=None, metadata={"help": "captioned video folder (default: TextShapes)"})
    eval_dir: str | None = field(default=None, metadata={"help": "held-out captioned video folder"})
    data_dir: str | None = field(
        default=None, metadata={"help": "where TextShapes is generated / read (default: <output_dir>/data)"}
    )
    preset: str = field(default=DEFAULT_PRESET, metadata={"help": f"TextShapes preset: {', '.join(PRESETS)}"})
    num_train_clips: int = field(default=4000, metadata={"help": "TextShapes clips to generate for training"})
    num_eval_clips: int = field(default=200, metadata={"help": "TextShapes clips to generate for evaluation"})
    data_seed_offset: int = field(default=0, metadata={"help": "added to --seed for the generated data"})
    num_frames: int | None = field(default=None, metadata={"help": "frames per clip (default: the preset's)"})
    resolution: int | None = field(default=None, metadata={"help": "frame size (default: the preset's)"})
    frame_stride: int | None = field(default=None, metadata={"help": "frame stride (default: spread evenly)"})
    cache_tokens: bool = field(default=True, metadata={"help": "compute T-VQ tokens once (else on the fly)"})
    num_completion_eval_clips: int = field(
        default=48, metadata={"help": "held-out TextShapes clips completed at each evaluation (0: none)"}
    )


@dataclass
class ModelArguments:
    tvq_path: str | None = field(default=None, metadata={"help": "trained T-VQ folder (run_tvq.py output)"})
    model_name_or_path: str | None = field(default=None, metadata={"help": "an MMVG to continue training"})
    config_overrides: str | None = field(
        default=None, metadata={"help": 'MMVGConfig fields as JSON, e.g. \'{"hidden_size": 128}\''}
    )
    eval_decoding: str = field(default="parallel", metadata={"help": "decoding used by the completion evaluation"})
    eval_num_inference_steps: int = field(default=12)
    eval_temperature: float = field(default=0.0, metadata={"help": "0 is greedy"})


def build_model(model_args: ModelArguments, num_frames: int, resolution: int) -> MMVGForVideoCompletion:
    overrides = json.loads(model_args.config_overrides) if model_args.config_overrides else {}
    if model_args.model_name_or_path:
        model = MMVGForVideoCompletion.from_pretrained(model_args.model_name_or_path, **overrides)
    elif model_args.tvq_path:
        model = MMVGForVideoCompletion.from_tvq(model_args.tvq_path, num_frames=num_frames, **overrides)
    else:
        raise ValueError("give --tvq_path (a trained T-VQ) or --model_name_or_path (an MMVG)")
    config = model.config
    if (config.num_frames, config.image_size) != (num_frames, resolution):
        raise ValueError(
            f"the model expects {config.num_frames} frames of {config.image_size}px; the data has {num_frames} "
            f"frames of {resolution}px"
        )
    return model


def main(argv: list[str] | None = None, callbacks: list[TrainerCallback] | None = None) -> dict[str, float]:
    """Train, save and evaluate; returns the final metrics. `argv` defaults to the command line; `callbacks`
    are handed to the Trainer (e.g. to inspect the model when training ends)."""
    parser = HfArgumentParser((DataArguments, ModelArguments, TrainingArguments))
    defaults = [
        "--per_device_train_batch_size", "32",
        "--per_device_eval_batch_size", "32",
        "--learning_rate", "5e-4",
        "--weight_decay", "0.01",
        "--adam_beta2", "0.95",
        "--max_grad_norm", "1.0",
        "--max_steps", "3000",
        "--lr_scheduler_type", "cosine",
        "--warmup_steps", "100",
        "--logging_steps", "50",
        "--save_strategy", "steps",
        "--save_steps", "500",
        "--save_total_limit", "2",
        "--eval_strategy", "no",
        "--eval_steps", "500",
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
            data_args.train_dir, data_args.eval_dir, Path(data_args.data_dir or output_dir / "data"), data_args.preset,
            data_args.num_train_clips, data_args.num_eval_clips, training_args.seed + data_args.data_seed_offset,
            data_args.num_frames, data_args.resolution,
        )  # fmt: skip
    num_frames, resolution = splits.num_frames, splits.resolution
    load = dict(num_frames=num_frames, resolution=resolution, stride=data_args.frame_stride)
    train_dataset = load_video_folder(splits.train_dir, **load)
    eval_dataset = load_video_folder(splits.eval_dir, **load)
    processor = MMVGProcessor(
        video_processor=MMVGVideoProcessor(size={"height": resolution, "width": resolution}, num_frames=num_frames)
    )
    model = build_model(model_args, num_frames, resolution)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("MMVG: %.2fM trainable parameters, %s", trainable / 1e6, model.config.to_json_string())

    is_textshapes = "directions" in eval_dataset.column_names and "positions" in eval_dataset.column_names
    completion_rows = (
        [eval_dataset[index] for index in range(min(data_args.num_completion_eval_clips, len(eval_dataset)))]
        if is_textshapes and data_args.num_completion_eval_clips > 0
        else None
    )
    if data_args.cache_tokens:
        model.to(training_args.device)
        train_dataset = cache_video_tokens(train_dataset, model, processor)
        eval_dataset = cache_video_tokens(eval_dataset, model, processor)
    decoding_kwargs = dict(
        decoding=model_args.eval_decoding,
        num_inference_steps=model_args.eval_num_inference_steps,
        temperature=model_args.eval_temperature,
    )
    trainer = MMVGTrainer(
        model=model,
        args=training_args,
        callbacks=callbacks,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=MMVGDataCollator(processor),
        processing_class=processor,
        completion_rows=completion_rows,
        completion_kwargs=decoding_kwargs,
    )
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    train_seconds = time.perf_counter() - start
    trainer.save_model(str(output_dir))
    if trainer.args.should_save:  # one process writes (save_model does the same)
        processor.save_pretrained(str(output_dir))

    metrics = trainer.evaluate()
    metrics["train_seconds"] = train_seconds
    metrics["train_steps"] = trainer.state.global_step
    if trainer.is_world_process_zero():
        (output_dir / "eval_results.json").write_text(json.dumps(metrics, indent=2) + "\n")
        write_train_log(output_dir, trainer.state.log_history)
        write_training_data_record(output_dir, splits.record)
        if completion_rows:
            model.eval()
            save_task_grid(model, processor, completion_rows[:4], output_dir / "samples.png", **decoding_kwargs)
        print(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main()
