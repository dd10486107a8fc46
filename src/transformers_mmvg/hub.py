"""The Hub side of a trained MMVG: its model card, and one-commit uploads of model, processor and card.

    from transformers_mmvg.hub import build_model_card, load_training_summary, push_to_hub

    eval_results, training_config = load_training_summary("outputs/mmvg")     # what examples/run_mmvg.py wrote
    card = build_model_card(model, eval_results, training_config, repo_id="me/mmvg-textshapes")
    push_to_hub(model, processor, "me/mmvg-textshapes", card=card)

The card is rendered offline from one template string (`CARD_TEMPLATE`): sizes come from the model's config,
numbers only from the `eval_results` given (a missing number reads "not measured"). `MODEL_CARD.md` at the
repository root is the card rendered for the default `MMVGConfig`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from enum import Enum
from pathlib import Path
from string import Template

from huggingface_hub import HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import ProcessorMixin

from .masking import TASKS, task_given_indices
from .modeling_mmvg import MMVGForVideoCompletion
from .pipeline_video_completion import VideoCompletionPipeline

__all__ = [
    "CARD_TAGS",
    "CARD_TEMPLATE",
    "TRAINING_ARGS_FILE",
    "TRAINING_ARGUMENT_NAMES",
    "build_model_card",
    "check_repo_id",
    "load_training_summary",
    "push_to_hub",
    "save_for_hub",
]

logger = logging.getLogger(__name__)

NOT_MEASURED = "not measured"
DEFAULT_DATASET = "TextShapes (textshapes-64x8)"
# "text-guided-video-completion" is not an official Hub pipeline tag, so it is a tag and `pipeline_tag` stays unset.
CARD_TAGS = ["mmvg", "text-guided-video-completion", "video-generation", "masked-video-generation", "vqgan"]
# The run's `TrainingArguments` as JSON (`TrainingArguments.to_json_string`), written by the training commands
# (`training_runs`); the card reads them from it, never from the pickled `training_args.bin` beside it.
TRAINING_ARGS_FILE = "training_args.json"
# The `TrainingArguments` fields a card reports, with their names in the card's table (in this order).
TRAINING_ARGUMENT_NAMES = {
    "learning_rate": "learning rate",
    "lr_scheduler_type": "learning-rate schedule",
    "warmup_steps": "warm-up steps",
    "weight_decay": "weight decay",
    "per_device_train_batch_size": "batch size per device",
    "max_steps": "max steps",
    "seed": "seed",
}
# `eval_results.json` keys of `MMVGTrainer.evaluate`: f"eval_{task}_{metric}", and the held-out loss.
COMPLETION_METRICS = ("caption_following", "centroid_error", "psnr", "ssim")
RUN_KEYS = {"train_steps": "steps run", "train_seconds": "training time"}

CARD_TEMPLATE = Template(
    """\
# $title

MMVG (Multimodal Masked Video Generation, Fu et al., CVPR 2023) completes a whole clip from a caption and **any**
given frames: the first (*prediction*), the last (*rewind*), both ends (*infilling*) or any other set. The
caption removes the ambiguity: from one frame the object could go anywhere; the text says where. This checkpoint is
the `transformers-mmvg` implementation, trained on $dataset.

## Model description

Two stages, as in the paper:
- **T-VQ** (stage 1, frozen here): a per-frame VQGAN $tvq_temporal. It turns every ${image_size}x${image_size}
  frame into ${latent_size}x${latent_size} tokens of a codebook of $codebook_size codes, and tokens back into
  pixels, so pixels go in and pixels come out.
- **MMVG** (stage 2): the encoder Enc^M reads the CLIP word tokens of the caption, the visual tokens of the given
  frames and one [SPAN] token per run of missing frames; the decoder Dec^M, a stack of Video Swin blocks (3D
  shifted-window self-attention, block-causal over frames, cross-attention to the encoder), predicts the tokens of
  every frame. One checkpoint decodes in parallel (MaskGIT-style, `num_inference_steps` calls) or autoregressively
  (frame by frame, token by token), with optional classifier-free guidance.

| size | value |
|---|---|
| frames per clip | $num_frames |
| resolution | ${image_size}x${image_size} pixels |
| tokens per frame | $tokens_per_frame (${latent_size}x${latent_size}) |
| codebook size | $codebook_size codes of dimension $codebook_dim |
| hidden size | $hidden_size |
| attention heads | $num_attention_heads |
| intermediate size | $intermediate_size |
| encoder layers | $num_encoder_layers |
| decoder layers (Video Swin) | $num_decoder_layers |
| decoder window (frames, rows, columns) | $window_size |
| caption length | up to $max_text_length CLIP tokens |
| trainable parameters (all but the frozen T-VQ and its code vectors) | $num_mmvg_parameters |
| parameters with the frozen T-VQ | $num_parameters |

## Training data

$training_data

## Training procedure

The T-VQ was trained first and is frozen; MMVG learns to predict the T-VQ tokens of the hidden frames
(cross-entropy per frame). Frames are hidden with the paper's adaptive per-frame probabilities p_t
(initial $mask_probability, step alpha = $mask_probability_alpha, kept in $mask_probability_range); with probability
$task_masking_probability a clip uses the given frames of a named task instead. Captions are replaced by the empty
prompt with probability $text_drop_probability, for classifier-free guidance.

$training_table

## Evaluation results

$evaluation

## How to use

The repository carries the code of the model, the processor and the pipeline, so plain transformers loads it
with `trust_remote_code=True` (read the code first). With the `transformers-mmvg` package installed
(`pip install -e .` in a clone of its repository), `import transformers_mmvg` registers the same classes and the
model snippet below uses them directly.

With the pipeline (frames may be PIL images, image files or uint8 arrays of any size):

```python
from PIL import Image
from transformers import pipeline

pipe = pipeline("text-guided-video-completion", model="$repo_or_dir", trust_remote_code=True)
first_frame = Image.open("first_frame.png")
out = pipe("the red circle moves right then down", images=[first_frame], task="prediction")
out["frames"]  # $num_frames PIL images
```

With the model (any set of given frames; `frames` is a uint8 array of shape
($num_frames, $image_size, $image_size, 3) whose frames that are not given are ignored):

```python
import torch
from transformers_mmvg import MMVGForVideoCompletion, MMVGProcessor
from transformers_mmvg.masking import given_mask_from_indices, task_given_indices

model = MMVGForVideoCompletion.from_pretrained("$repo_or_dir").eval()
processor = MMVGProcessor.from_pretrained("$repo_or_dir")
inputs = processor(text=["the red circle moves right then down"], videos=[frames], return_tensors="pt")
given = given_mask_from_indices(task_given_indices("infilling", $num_frames), $num_frames)[None]  # first and last frame
with torch.no_grad():
    out = model.complete(inputs["input_ids"], inputs["attention_mask"], inputs["pixel_values_videos"], given,
                         decoding="parallel", num_inference_steps=12, guidance_scale=1.0,
                         generator=torch.Generator().manual_seed(0))
video = processor.postprocess_video(out.frames, output_type="np")  # uint8 (1, $num_frames, $image_size, $image_size, 3)
```

## Intended use

Research and teaching on text-guided video completion: reproducing the ideas of MMVG (one model for prediction,
rewind and infilling; [SPAN] masking; adaptive masking; Video Swin decoding) at a scale that trains on a CPU, and a
starting point or test fixture for work on the method. Captions should follow the training grammar (for
TextShapes: `the {color} {shape} moves {direction}[ then {direction}]`).

## Limitations

- Trained only on $dataset: $limitations_data. Other resolutions, clip lengths, scenes or
  captions are outside what it has seen.
- A CPU-scale model ($num_parameters_short parameters), far smaller than the paper's (about 230M on UCF-101); it is not
  meant for real video and will not produce useful completions of natural footage.
- The frozen T-VQ was trained on TextShapes only: it cannot represent natural images, which bounds what MMVG can
  draw.
- Sampled completions can still contradict the caption; the caption-following rate above says how often on
  held-out clips. FVD is not reported (its I3D weights were not available offline).

## Citation

```bibtex
@inproceedings{fu2023tellme,
  title     = {Tell Me What Happened: Unifying Text-guided Video Completion via Multimodal Masked Video Generation},
  author    = {Fu, Tsu-Jui and Yu, Licheng and Zhang, Ning and Fu, Cheng-Yang and Su, Jong-Chyi and
               Wang, William Yang and Bell, Sean},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2023},
  eprint    = {2211.12824},
  archivePrefix = {arXiv}
}
```
"""
)

TEXTSHAPES_DESCRIPTION = (
    "TextShapes: synthetic captioned clips of one coloured shape (square, circle or triangle, in one of seven "
    "colours) moving on a black background, in one direction or in two perpendicular legs, with the caption "
    "`the {color} {shape} moves {d1}[ then {d2}]` (e.g. `the cyan triangle moves up then left`). The clips are "
    "generated offline (`python -m transformers_mmvg.data.textshapes`); the text decides what happens: from the "
    "first frame alone, the direction cannot be seen, and in infilling `moves right then down` and `moves down "
    "then right` share both end frames."
)


# ------------------------------------------------------------------------------------------------ formatting


def _count(number: int) -> str:
    return f"{number / 1e6:.2f}M ({number:,})"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric(value, unit: str = "", digits: int = 2, percent: bool = False) -> str:
    """A measured number as the card shows it; `None` is "not measured", NaN / inf "n/a"."""
    if value is None:
        return NOT_MEASURED
    if not _is_number(value):
        return str(value)
    if not math.isfinite(value):
        return "n/a"
    if percent:
        return f"{100 * value:.1f}%"
    return f"{value:.{digits}f}{unit}"


def _plain(value) -> str:
    """A configuration value as the card shows it."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds:.0f} s ({seconds / 3600:.2f} h)"
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def _training_table(training_config: dict | None, eval_results: dict | None) -> str:
    """The `TrainingArguments` of the run (named ones first, in `TRAINING_ARGUMENT_NAMES` order), then the steps run
    and the wall-clock time from `eval_results`."""
    rows = []
    config = dict(training_config or {})
    for key, name in TRAINING_ARGUMENT_NAMES.items():
        if key in config:
            rows.append((name, _plain(config.pop(key))))
    rows += [(key, _plain(value)) for key, value in sorted(config.items())]
    results = eval_results or {}
    if "train_steps" in results:
        rows.append((RUN_KEYS["train_steps"], _plain(results["train_steps"])))
    if _is_number(results.get("train_seconds")):
        rows.append((RUN_KEYS["train_seconds"], _duration(results["train_seconds"])))
    if not rows:
        return "Training configuration: not recorded."
    return "\n".join(["| training setting | value |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows])


def _evaluation_section(eval_results: dict | None, num_frames: int) -> str:
    """A per-task table of the completion metrics and the held-out loss; any other recorded value is listed below."""
    results = eval_results or {}
    lines = [
        "Measured by `examples/run_mmvg.py` on held-out clips (infilling on two-segment clips only, where only the "
        "caption tells the path). Caption following: share of generated clips whose object moves as the caption "
        "says (TextShapes check); centroid error: mean distance in pixels between generated and true object "
        "positions; PSNR and SSIM against the true clip.",
        "",
        "| task | given frames | caption following | centroid error | PSNR | SSIM |",
        "|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        given = ", ".join(str(index) for index in task_given_indices(task, num_frames))
        value = lambda metric: results.get(f"eval_{task}_{metric}")  # noqa: E731
        lines.append(
            f"| {task} | {given} | {_metric(value('caption_following'), percent=True)} | "
            f"{_metric(value('centroid_error'), ' px')} | {_metric(value('psnr'), ' dB')} | "
            f"{_metric(value('ssim'), digits=3)} |"
        )
    lines += ["", f"Held-out loss (cross-entropy per visual token): {_metric(results.get('eval_loss'), digits=4)}."]
    shown = {"eval_loss", *RUN_KEYS} | {f"eval_{task}_{metric}" for task in TASKS for metric in COMPLETION_METRICS}
    others = {key: value for key, value in results.items() if key not in shown}
    if others:
        listed = ", ".join(f"`{key}` = {_plain(value)}" for key, value in sorted(others.items()))
        lines += ["", f"Other recorded values: {listed}."]
    if eval_results is None:
        lines = [f"No evaluation results were given for this checkpoint: every figure is {NOT_MEASURED}.", ""] + lines
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ public API


def check_repo_id(repo_id: str) -> str:
    """Return `repo_id` if it is a valid Hub model id (`"name"` or `"namespace/name"`); raise `ValueError` naming it
    otherwise."""
    if not isinstance(repo_id, str):
        raise ValueError(f"repo_id must be a string 'name' or 'namespace/name', got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"Invalid repo_id {repo_id!r}: expected 'name' or 'namespace/name'. {error}") from error
    return repo_id


def build_model_card(
    model: MMVGForVideoCompletion,
    eval_results: dict | None = None,
    training_config: dict | None = None,
    dataset: str = DEFAULT_DATASET,
    repo_id: str | None = None,
) -> ModelCard:
    """The model card of an MMVG checkpoint, built offline.

    Args:
        model: the model; every size in the card comes from `model.config`, the parameter counts from the model.
        eval_results: the flat metrics of `examples/run_mmvg.py` (`eval_results.json`: `eval_loss`,
            `eval_{task}_{caption_following,centroid_error,psnr,ssim}`, `train_steps`, `train_seconds`, ...); a
            metric that is absent reads "not measured".
        training_config: training settings for the card's table (see `load_training_summary`).
        dataset: the training data, as the card names it; TextShapes gets its description.
        repo_id: the Hub id the card is for; used in the title, the metadata and the usage snippets (a placeholder
            path otherwise).

    Returns:
        `huggingface_hub.ModelCard` whose text starts with the YAML metadata (license, library, tags).
    """
    config = model.config
    num_parameters = model.num_parameters()
    num_trainable_parameters = model.num_parameters(only_trainable=True)
    is_textshapes = "textshapes" in dataset.lower()
    resolution = f"{config.image_size}x{config.image_size} pixels, {config.num_frames} frames"
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="transformers-mmvg",
        tags=list(CARD_TAGS),
        model_name=repo_id.split("/")[-1] if repo_id else None,
    )
    body = CARD_TEMPLATE.substitute(
        title=f"MMVG text-guided video completion: {repo_id}" if repo_id else "MMVG text-guided video completion",
        dataset=dataset,
        repo_or_dir=repo_id or "path/to/mmvg-model",
        image_size=config.image_size,
        latent_size=config.latent_size,
        tokens_per_frame=config.tokens_per_frame,
        codebook_size=config.codebook_size,
        codebook_dim=config.tvq_config.codebook_dim,
        num_frames=config.num_frames,
        hidden_size=config.hidden_size,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        num_encoder_layers=config.num_encoder_layers,
        num_decoder_layers=config.num_decoder_layers,
        window_size=" x ".join(str(size) for size in config.window_size),
        max_text_length=config.max_text_length,
        num_mmvg_parameters=_count(num_trainable_parameters),
        num_parameters=_count(num_parameters),
        num_parameters_short=f"{num_parameters / 1e6:.2f}M",
        tvq_temporal=(
            "whose codes were made temporal-aware by the paper's frame-order loss L_T"
            if config.tvq_config.use_temporal_loss
            else "(trained without the paper's frame-order loss L_T)"
        ),
        mask_probability=_plain(config.mask_probability),
        mask_probability_alpha=_plain(config.mask_probability_alpha),
        mask_probability_range="[" + ", ".join(_plain(bound) for bound in config.mask_probability_range) + "]",
        task_masking_probability=_plain(config.task_masking_probability),
        text_drop_probability=_plain(config.text_drop_probability),
        training_data=(f"{TEXTSHAPES_DESCRIPTION} Preset used: {dataset}, at {resolution}." if is_textshapes
                       else f"{dataset}, at {resolution}."),
        training_table=_training_table(training_config, eval_results),
        evaluation=_evaluation_section(eval_results, config.num_frames),
        limitations_data=(f"synthetic moving shapes on black at {resolution}" if is_textshapes else resolution),
    )
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def load_training_summary(folder: str | os.PathLike) -> tuple[dict | None, dict | None]:
    """`(eval_results, training_config)` of a folder written by `examples/run_mmvg.py`, read from its JSON files only.

    `eval_results` is `eval_results.json` as is; `training_config` holds the `TRAINING_ARGUMENT_NAMES` fields of
    `training_args.json` (the run's `TrainingArguments`). Each is `None` when its file is absent. The pickled
    `training_args.bin` that transformers' `Trainer` also writes is never read: unpickling runs whatever code the file
    names, so reading a downloaded folder would be running it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Not a folder: {folder}")
    results_path = folder / "eval_results.json"
    eval_results = json.loads(results_path.read_text()) if results_path.is_file() else None
    args_path = folder / TRAINING_ARGS_FILE
    training_config = None
    if args_path.is_file():
        args = json.loads(args_path.read_text())
        training_config = {key: args[key] for key in TRAINING_ARGUMENT_NAMES if key in args}
    elif (folder / "training_args.bin").is_file():
        logger.warning(
            "%s has training_args.bin but no %s: its training settings are not read (unpickling could run code the "
            "file names), so the card says they were not recorded.", folder, TRAINING_ARGS_FILE,
        )  # fmt: skip
    return eval_results, training_config


def save_for_hub(
    model: MMVGForVideoCompletion, processor: ProcessorMixin, folder: str | os.PathLike, card: ModelCard
) -> list[str]:
    """Write the model (`config.json`, `model.safetensors`), the processor files, the card (`README.md`) and the code
    that loads them into `folder`; return the sorted paths of every file in it, relative to it.

    The folder loads where this package is not installed: `auto_map` in the configs names the modules it carries
    (model, config, processor, video processor and what they import), and `custom_pipelines` in `config.json` names
    the pipeline's (written by `Pipeline.save_pretrained`, transformers' way of sharing a custom pipeline), so
    `AutoModel`, `AutoProcessor` and `pipeline("text-guided-video-completion", model=repo)` work with
    `trust_remote_code=True`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        VideoCompletionPipeline(model=model, processor=processor).save_pretrained(folder)  # the model and the pipeline
    finally:
        # the in-memory config stays as it was: a folder saved later with `model.save_pretrained` keeps loading with
        # the installed package's pipeline, without `trust_remote_code`
        model.config.__dict__.pop("custom_pipelines", None)
    processor.save_pretrained(folder)
    card.save(folder / "README.md")
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def push_to_hub(
    model: MMVGForVideoCompletion,
    processor: ProcessorMixin,
    repo_id: str,
    card: ModelCard | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload MMVG model",
) -> str:
    """Upload model, processor and model card to the Hub model repo `repo_id` in one commit.

    The files are written into a temporary folder with `save_for_hub` (the card is built with `build_model_card`
    when none is given), the repo is created if needed, and the folder is sent with one `HfApi.upload_folder`.

    Returns:
        What `upload_folder` returns: the `CommitInfo` (a `str`, the commit's URL).
    """
    check_repo_id(repo_id)
    if card is None:
        card = build_model_card(model, repo_id=repo_id)
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="mmvg-hub-") as folder:
        save_for_hub(model, processor, folder, card)
        repo_url = api.create_repo(repo_id, exist_ok=True, private=private)
        return api.upload_folder(repo_id=repo_url.repo_id, folder_path=folder, commit_message=commit_message)
