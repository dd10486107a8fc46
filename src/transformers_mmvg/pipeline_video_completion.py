"""`pipeline("text-guided-video-completion")`: complete a clip from any given frames and a caption.

    from transformers import pipeline
    import transformers_mmvg  # registers the task

    pipe = pipeline("text-guided-video-completion", model="checkpoints/mmvg-textshapes-64x8")
    out = pipe("the red circle moves left", images=[first_frame], task="prediction")
    out = pipe("the red circle moves left", images=[last_frame], task="rewind")
    out = pipe("the red circle moves left then up", images=[first_frame, last_frame], task="infilling")
    out = pipe("the red circle moves left", video="clip.mp4", task="prediction", num_given_frames=2)
    out = pipe("the red circle moves left", given_frames={0: first_frame, 5: sixth_frame})
    out["frames"]                                   # N PIL images (output_type="pil", the default)

Frames may be PIL images, image file paths, uint8 arrays / tensors (H, W, 3) or (3, H, W); any size (they are
resized to cover the model's resolution and centre-cropped). A list of prompts completes a batch (the other inputs
then are lists of the same length); so do input dicts, lists and iterators of them. Settings can be given to
`pipeline(...)` or to each call. `save_completion_gif`, `save_completion_video` and `save_completion_grid` write
the result.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Mapping, Sequence, Sized
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from transformers import Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .decoding import check_decoding_settings
from .masking import TASKS, given_mask_from_indices, task_given_indices
from .video_io import read_video, resize_center_crop, sample_frame_indices, write_video
from .video_processing_mmvg import pil_to_rgb_array
from .visualization import save_gif, save_video_grid

TASK_NAME = "text-guided-video-completion"
OUTPUT_TYPES = ("pil", "np", "pt")


def load_frame(frame, resolution: int, photo_crop_fraction: float = 1.0) -> torch.Tensor:
    """One frame (PIL image, image path, uint8 array or tensor, HWC or CHW) -> uint8 (3, R, R), resized to cover
    `resolution` and centre-cropped. Images are turned as their EXIF orientation says; 16-bit / float images,
    arrays of another dtype than uint8, and shapes that read both as HWC and as CHW ((3, W, 3)) are refused.

    An image of another size than R x R is a photo: with `photo_crop_fraction` < 1 its centre square of that
    fraction of the shorter side is taken first (the processor's framing of photos, `MMVGVideoProcessor`)."""
    if isinstance(frame, (str, os.PathLike)):
        path = Path(frame)
        if not path.is_file():
            raise FileNotFoundError(f"Given frame file not found: {path}")
        try:
            frame = Image.open(path)
            frame.load()
        except OSError as error:
            raise ValueError(f"Cannot read given frame image {path}: {error}") from error
    if isinstance(frame, Image.Image):
        frame = pil_to_rgb_array(frame, "A given frame")
    elif not isinstance(frame, (np.ndarray, torch.Tensor)):
        raise TypeError(
            f"A given frame must be a PIL image, an image path or a uint8 array / tensor, got {type(frame).__name__}."
        )
    tensor = frame if isinstance(frame, torch.Tensor) else torch.from_numpy(np.array(frame))  # a writable copy
    if tensor.dtype != torch.uint8:
        raise ValueError(f"Given frames must be uint8 images (0-255); got dtype {tensor.dtype}.")
    if tensor.ndim != 3 or 3 not in (tensor.shape[0], tensor.shape[-1]):
        raise ValueError(f"A given frame must have shape (H, W, 3) or (3, H, W); got {tuple(tensor.shape)}.")
    if tensor.shape[0] == tensor.shape[-1] == 3:
        raise ValueError(
            f"A given frame of shape {tuple(tensor.shape)} reads both as (H, W, 3) and as (3, H, W); pass it as a "
            "PIL image."
        )
    if tensor.shape[-1] == 3:
        tensor = tensor.permute(2, 0, 1)
    if not 0 < photo_crop_fraction <= 1:
        raise ValueError(f"photo_crop_fraction must be in (0, 1], got {photo_crop_fraction}")
    height, width = tensor.shape[1:]
    if photo_crop_fraction < 1 and (height, width) != (resolution, resolution):
        side = max(1, round(photo_crop_fraction * min(height, width)))
        top, left = (height - side) // 2, (width - side) // 2
        tensor = tensor[:, top : top + side, left : left + side]
    return resize_center_crop(tensor[None], resolution)[0]


def load_video_frames(video, num_frames: int, resolution: int) -> torch.Tensor:
    """A video file or frames (T, H, W, 3) / list of frames -> uint8 (N, 3, R, R), N frames spread evenly."""
    if isinstance(video, (str, os.PathLike)):
        frames = torch.from_numpy(read_video(video, num_frames=num_frames))  # errors name the file
        return resize_center_crop(frames.permute(0, 3, 1, 2), resolution)
    frames = [load_frame(frame, resolution) for frame in video]
    if len(frames) < num_frames:
        raise ValueError(f"The video has {len(frames)} frames; the model completes clips of {num_frames}.")
    return torch.stack([frames[index] for index in sample_frame_indices(len(frames), num_frames)])


class VideoCompletionPipeline(Pipeline):
    """Text-guided video completion with [`MMVGForVideoCompletion`] and [`MMVGProcessor`].

    Call with a prompt (or a list of prompts) and exactly one of:
    - `images`: the given frames of `task` (`"prediction"`: the first K, `"rewind"`: the last K, `"infilling"`: the
      first ceil(K/2) and the last floor(K/2));
    - `video`: a file or frames; the model's N frames are spread over it, the `num_given_frames` of `task` are given
      and the whole clip is returned as `ground_truth`;
    - `given_frames`: `{frame index: frame}` for any K frames at any positions.

    Sampling knobs: `decoding` (`"parallel"`, default, `"frame_by_frame"` or `"autoregressive"`; `decoding.py`),
    `num_inference_steps` (12; per frame for `"frame_by_frame"`),
    `guidance_scale` (1.0), `temperature` (1.0), `top_k`, `top_p`, `generator` or `seed`; `output_type` (`"pil"`,
    `"np"`: uint8 (N, H, W, 3), `"pt"`: uint8 (N, 3, H, W)); `progress` (a bar over decoding, default True).
    Returns `{"frames", "given_frame_indices", "prompt"}` (and `"ground_truth"` for a video), or a list of them.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _CLIP_INPUTS = ("images", "video", "given_frames")
    DEFAULT_BATCH_SIZE = 8

    def __init__(self, *args, batch_size: int | None = None, **kwargs):
        size = self.DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        super().__init__(*args, batch_size=_check_batch_size(size), **kwargs)
        vocabulary, expected = len(self.processor.tokenizer), self.model.config.text_vocab_size
        if vocabulary != expected:  # e.g. a folder without tokenizer.json loads a 2-token tokenizer
            raise ValueError(
                f"The processor's tokenizer has {vocabulary} tokens but the model reads {expected} "
                "(`config.text_vocab_size`): captions would be read as other words, or all as unknown. Load the "
                "tokenizer saved with the model (its `tokenizer.json`), or pass a processor with the CLIP tokenizer: "
                "`processor=MMVGProcessor(video_processor=MMVGVideoProcessor.from_pretrained(folder))`."
            )

    def _sanitize_parameters(
        self,
        task=None,
        num_given_frames=None,
        decoding=None,
        num_inference_steps=None,
        guidance_scale=None,
        temperature=None,
        top_k=None,
        top_p=None,
        generator=None,
        seed=None,
        output_type=None,
        progress=None,
        **unknown,
    ):
        """Split the settings (given to `pipeline(...)` or to a call; a call's win) into those of `preprocess`,
        `_forward` and `postprocess`."""
        if unknown:
            raise TypeError(f"Unknown arguments for {TASK_NAME}: {sorted(unknown)}.")
        preprocess = {name: value for name, value in (("task", task), ("num_given_frames", num_given_frames))
                      if value is not None}  # fmt: skip
        if task is not None and task not in TASKS:
            raise ValueError(f"Unknown task {task!r}; expected one of {TASKS}.")
        if num_given_frames is not None:
            if not _is_integer(num_given_frames):
                raise TypeError(f"`num_given_frames` must be an integer, got {num_given_frames!r}.")
            if num_given_frames < 1:
                raise ValueError(f"`num_given_frames` must be >= 1, got {num_given_frames}.")
        forward = {}
        for name, value in (
            ("decoding", decoding),
            ("num_inference_steps", num_inference_steps),
            ("guidance_scale", guidance_scale),
            ("temperature", temperature),
            ("top_k", top_k),
            ("top_p", top_p),
            ("progress", progress),
        ):
            if value is not None:
                forward[name] = value
        check_decoding_settings(**forward)  # here, before any clip is read
        if generator is not None and seed is not None:
            raise ValueError("Pass `generator` or `seed`, not both.")
        if seed is not None:
            if not _is_integer(seed):
                raise TypeError(f"`seed` must be an integer, got {seed!r}.")
            forward["seed"] = int(seed)
        if generator is not None:
            check_decoding_settings(generator=generator)
            forward["generator"] = generator
        postprocess = {}
        if output_type is not None:
            if output_type not in OUTPUT_TYPES:
                raise ValueError(f"Unknown `output_type` {output_type!r}; expected one of {OUTPUT_TYPES}.")
            postprocess["output_type"] = output_type
        return preprocess, forward, postprocess

    # -- inputs ------------------------------------------------------------------------------------------------

    def _request(self, prompt, images, video, given_frames, task, num_given_frames) -> dict:
        """One clip's request -> `{"prompt", "frames": {index: uint8 (3, R, R)}, "ground_truth": (N, 3, R, R) | None}`."""
        config = self.model.config
        num_frames, resolution = config.num_frames, config.image_size
        if not isinstance(prompt, str):
            raise TypeError(f"The prompt must be a string (an empty one is allowed), got {type(prompt).__name__}.")
        given_inputs = [name for name, value in (("images", images), ("video", video), ("given_frames", given_frames))
                        if value is not None]
        if len(given_inputs) != 1:
            raise ValueError(
                "Pass exactly one of `images` (with `task`), `video` (with `task` and `num_given_frames`) or "
                f"`given_frames` ({{index: frame}}); got {given_inputs or 'none'}."
            )
        if task is not None and task not in TASKS:
            raise ValueError(f"Unknown task {task!r}; expected one of {TASKS}.")
        ground_truth = None
        if given_frames is not None:
            if task is not None:
                raise ValueError("`task` picks the given frames of `images` or `video`; `given_frames` names them.")
            if not isinstance(given_frames, Mapping):
                raise TypeError("`given_frames` must be a dict {frame index: frame}.")
            for index in given_frames:
                if not _is_integer(index):
                    raise TypeError(f"`given_frames` keys must be integer frame indices, got {index!r}.")
            _check_count("given_frames", len(given_frames), num_given_frames)
            indices = [int(index) for index in given_frames]
            given_mask_from_indices(indices, num_frames)  # range and repeat checks
            frames = {int(index): load_frame(frame, resolution) for index, frame in given_frames.items()}
        elif images is not None:
            stacked = isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4
            images = list(images) if isinstance(images, (list, tuple)) or stacked else [images]
            _check_count("images", len(images), num_given_frames)
            task = task or "prediction"
            try:
                indices = task_given_indices(task, num_frames, len(images))
            except ValueError as error:
                raise ValueError(f"{len(images)} image(s) for task {task!r}: {error}") from error
            fraction = getattr(self.processor.video_processor, "photo_crop_fraction", 1.0)
            frames = {index: load_frame(image, resolution, fraction) for index, image in zip(indices, images)}
        else:
            if task is None:
                raise ValueError("With `video`, pass `task` (prediction, rewind or infilling).")
            ground_truth = load_video_frames(video, num_frames, resolution)
            indices = task_given_indices(task, num_frames, num_given_frames)
            frames = {index: ground_truth[index] for index in indices}
        return {"prompt": prompt, "frames": frames, "ground_truth": ground_truth}

    def preprocess(self, inputs: dict, task: str | None = None, num_given_frames: int | None = None) -> dict:
        """One clip's input `{"prompt", and one of "images" / "video" / "given_frames"}` -> model inputs (a batch of
        one) and the request it came from."""
        if not isinstance(inputs, Mapping):
            raise TypeError(f"Each input must be a prompt or a dict with a `prompt`, got {type(inputs).__name__}.")
        unknown = sorted(set(inputs) - {"prompt", *self._CLIP_INPUTS})
        if unknown or "prompt" not in inputs:
            raise ValueError(
                f"An input dict holds `prompt` and one of {', '.join(self._CLIP_INPUTS)}; got keys {sorted(inputs)}."
            )
        request = self._request(inputs["prompt"], *(inputs.get(name) for name in self._CLIP_INPUTS), task,
                                num_given_frames)  # fmt: skip
        config = self.model.config
        num_frames, resolution = config.num_frames, config.image_size
        clip = torch.zeros(num_frames, 3, resolution, resolution, dtype=torch.uint8)
        for index, frame in request["frames"].items():
            clip[index] = frame
        processed = self.processor(text=[request["prompt"]], videos=[clip], return_tensors="pt", do_sample_frames=False)
        return {
            "input_ids": processed["input_ids"],
            "attention_mask": processed["attention_mask"],
            "pixel_values_videos": processed["pixel_values_videos"],
            "given_frames_mask": given_mask_from_indices(sorted(request["frames"]), num_frames)[None],
            "request": request,
        }

    def _collate(self, items: list[dict]) -> dict:
        """Model inputs of several clips -> one batch (captions padded to the longest)."""
        pad_token_id = self.processor.tokenizer.pad_token_id
        width = max(item["input_ids"].shape[1] for item in items)

        def pad(tensor, value):
            return torch.nn.functional.pad(tensor, (0, width - tensor.shape[1]), value=value)

        return {
            "input_ids": torch.cat([pad(item["input_ids"], pad_token_id) for item in items]),
            "attention_mask": torch.cat([pad(item["attention_mask"], 0) for item in items]),
            "pixel_values_videos": torch.cat([item["pixel_values_videos"] for item in items]),
            "given_frames_mask": torch.cat([item["given_frames_mask"] for item in items]),
            "request": [item["request"] for item in items],
        }

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        """As `Pipeline.get_iterator`, with this pipeline's own collation of a batch (clips and captions)."""
        dataset_class = PipelineDataset if isinstance(inputs, Sized) else PipelineIterator
        dataset = dataset_class(inputs, self.preprocess, preprocess_params)
        collate = (lambda items: items[0]) if batch_size == 1 else self._collate
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=collate)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    # -- model and outputs -------------------------------------------------------------------------------------

    def _forward(self, model_inputs: dict, progress: bool = True, seed: int | None = None, **complete_kwargs) -> dict:
        if seed is not None:  # on the model's device, one stream per call of the model
            complete_kwargs["generator"] = torch.Generator(device=self.model.device).manual_seed(seed)
        output = self.model.complete(
            model_inputs["input_ids"],
            model_inputs["attention_mask"],
            model_inputs["pixel_values_videos"],
            model_inputs["given_frames_mask"],
            progress=progress,
            **complete_kwargs,
        )
        return {"frames": output.frames, "given_frames_mask": output.given_frames_mask,
                "request": model_inputs["request"]}  # fmt: skip

    def postprocess(self, model_outputs: dict, output_type: str = "pil") -> dict:
        """One clip's output (a batch of one) -> `{"frames", "given_frame_indices", "prompt"[, "ground_truth"]}`."""
        request = model_outputs["request"]
        frames, given = model_outputs["frames"][0].cpu(), model_outputs["given_frames_mask"][0].cpu()
        result = {
            "frames": self.processor.video_processor.postprocess_video(frames.float(), output_type=output_type),
            "given_frame_indices": given.nonzero().flatten().tolist(),
            "prompt": request["prompt"],
        }
        if request["ground_truth"] is not None:
            truth = request["ground_truth"]
            result["ground_truth"] = {
                "np": lambda: truth.permute(0, 2, 3, 1).numpy(),
                "pt": lambda: truth.clone(),
                "pil": lambda: [Image.fromarray(frame) for frame in truth.permute(0, 2, 3, 1).numpy()],
            }[output_type]()
        return result

    def __call__(self, inputs, images=None, video=None, given_frames=None, **kwargs):
        """Complete one clip or many.

        - `pipe(prompt, images=... | video=... | given_frames=..., **settings)`: one clip, one result dict;
        - `pipe([prompt, ...], images=[...], ...)`: one clip per prompt (the per-clip input a list of the same
          length), a list of results;
        - `pipe({"prompt": ..., "images": ...})`, a list of such dicts, or an iterator / `datasets.Dataset` of them
          (results then come lazily, as from any transformers pipeline).

        Settings (`task`, `num_given_frames`, the sampling knobs, `output_type`, `progress`, `batch_size`) can be given
        here or to `pipeline(...)`; here wins. See the class docstring for what they mean."""
        if "batch_size" in kwargs:
            kwargs["batch_size"] = _check_batch_size(kwargs["batch_size"])
        per_clip = {"images": images, "video": video, "given_frames": given_frames}
        if isinstance(inputs, str):
            inputs = {"prompt": inputs, **{name: value for name, value in per_clip.items() if value is not None}}
        elif isinstance(inputs, (list, tuple)) and inputs and all(isinstance(prompt, str) for prompt in inputs):
            for name, value in per_clip.items():
                if value is not None and (not isinstance(value, Sequence) or len(value) != len(inputs)):
                    raise ValueError(f"With {len(inputs)} prompts, `{name}` must be a list of {len(inputs)} entries.")
            inputs = [
                {"prompt": prompt, **{name: value[index] for name, value in per_clip.items() if value is not None}}
                for index, prompt in enumerate(inputs)
            ]
        elif any(value is not None for value in per_clip.values()):
            if isinstance(inputs, Mapping) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], Mapping)):
                raise ValueError("With input dicts, put `images` / `video` / `given_frames` inside each dict.")
            raise TypeError(
                "With `images` / `video` / `given_frames`, the prompt must be a string or a list of strings (an empty "
                f"one is allowed), got {type(inputs).__name__}."
            )
        elif isinstance(inputs, (bytes, bytearray)) or not isinstance(inputs, (Mapping, list, tuple, Iterable)):
            raise TypeError(f"The prompt must be a string (an empty one is allowed), got {type(inputs).__name__}.")
        elif isinstance(inputs, tuple):
            inputs = list(inputs)
        if isinstance(inputs, list) and not inputs:
            return []
        return super().__call__(inputs, **kwargs)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_count(name: str, count: int, num_given_frames: int | None) -> None:
    """`num_given_frames` picks how many frames of a `video` are given; with `images` / `given_frames` their number
    says it, and a different `num_given_frames` is refused rather than ignored."""
    if num_given_frames is not None and num_given_frames != count:
        raise ValueError(
            f"`num_given_frames={num_given_frames}` but {count} frame(s) passed as `{name}`: the number of "
            f"`{name}` is the number of given frames (`num_given_frames` is for `video`)."
        )


def _check_batch_size(batch_size) -> int:
    if not _is_integer(batch_size) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    return int(batch_size)


def _as_uint8_frames(frames) -> np.ndarray:
    """Pipeline frames of any output type -> uint8 (N, H, W, 3)."""
    if isinstance(frames, torch.Tensor):
        return frames.permute(0, 2, 3, 1).numpy() if frames.shape[1] == 3 else frames.numpy()
    if isinstance(frames, list):
        return np.stack([np.asarray(frame.convert("RGB")) for frame in frames])
    return np.asarray(frames)


def save_completion_gif(result: dict, path: str | os.PathLike, fps: int = 8, scale: int = 1) -> Path:
    """The completed clip of a pipeline result as an animated GIF."""
    return save_gif(_as_uint8_frames(result["frames"]), path, fps=fps, scale=scale)


def save_completion_video(result: dict, path: str | os.PathLike, fps: int = 8) -> Path:
    """The completed clip of a pipeline result as an mp4 file that any player opens (H.264, yuv420p)."""
    return write_video(path, _as_uint8_frames(result["frames"]), fps=fps, lossless=False)


def save_completion_grid(result: dict, path: str | os.PathLike, scale: int = 2) -> Path:
    """A side-by-side PNG: the given frames (others black), the completion, and the ground truth if known; the
    given frames are outlined."""
    frames = _as_uint8_frames(result["frames"])
    given = result["given_frame_indices"]
    shown = np.zeros_like(frames)
    shown[given] = frames[given]
    videos, labels = [shown, frames], ["given frames", f"completion: {result['prompt']!r}"]
    if "ground_truth" in result:
        videos.append(_as_uint8_frames(result["ground_truth"]))
        labels.append("ground truth")
    return save_video_grid(videos, path, labels=labels, scale=scale, highlight=[given] * len(videos))



__all__ = [
    "VideoCompletionPipeline",
    "load_frame",
    "load_video_frames",
    "save_completion_gif",
    "save_completion_grid",
    "save_completion_video",
]
