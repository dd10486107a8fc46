"""`pipeline("text-guided-video-completion")`: complete a clip from any given frames and a caption.

    from transformers import pipeline
    import transformers_mmvg  # registers the task

    pipe = pipeline("text-guided-video-completion", model="outputs/demo/mmvg")
    out = pipe("the red circle moves left", images=[first_frame], task="prediction")
    out = pipe("the red circle moves left", images=[last_frame], task="rewind")
    out = pipe("the red circle moves left then up", images=[first_frame, last_frame], task="infilling")
    out = pipe("the red circle moves left", video="clip.mp4", task="prediction", num_given_frames=2)
    out = pipe("the red circle moves left", given_frames={0: first_frame, 5: sixth_frame})
    out["frames"]                                   # N PIL images (output_type="pil", the default)

Frames may be PIL images, image file paths, uint8 arrays / tensors (H, W, 3) or (3, H, W); any size (they are
resized to cover the model's resolution and centre-cropped). A list of prompts completes a batch (the other inputs
then are lists of the same length). `save_completion_gif`, `save_completion_video` and `save_completion_grid` write
the result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .video_io import read_video, resize_center_crop, sample_frame_indices, write_video
from .masking import TASKS, given_mask_from_indices, task_given_indices
from .visualization import save_gif, save_video_grid

TASK_NAME = "text-guided-video-completion"
OUTPUT_TYPES = ("pil", "np", "pt")


def load_frame(frame, resolution: int) -> torch.Tensor:
    """One frame (PIL image, image path, uint8 array or tensor, HWC or CHW) -> uint8 (3, R, R), resized to cover
    `resolution` and centre-cropped."""
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
        frame = np.array(frame.convert("RGB"))
    tensor = frame if isinstance(frame, torch.Tensor) else torch.as_tensor(np.array(frame))
    if tensor.dtype != torch.uint8:
        raise ValueError(f"Given frames must be uint8 images (0-255); got dtype {tensor.dtype}.")
    if tensor.ndim == 3 and tensor.shape[-1] == 3:
        tensor = tensor.permute(2, 0, 1)
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"A given frame must have shape (H, W, 3) or (3, H, W); got {tuple(tensor.shape)}.")
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

    Sampling knobs: `decoding` (`"parallel"`, default, or `"autoregressive"`), `num_inference_steps` (12),
    `guidance_scale` (1.0), `temperature` (1.0), `top_k`, `top_p`, `generator` or `seed`; `output_type` (`"pil"`,
    `"np"`: uint8 (N, H, W, 3), `"pt"`: uint8 (N, 3, H, W)); `progress` (a bar over decoding, default True).
    Returns `{"frames", "given_frame_indices", "prompt"}` (and `"ground_truth"` for a video), or a list of them.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def _sanitize_parameters(
        self,
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
        if unknown:
            raise TypeError(f"Unknown arguments for {TASK_NAME}: {sorted(unknown)}.")
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
        if generator is not None and seed is not None:
            raise ValueError("Pass `generator` or `seed`, not both.")
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        if generator is not None:
            forward["generator"] = generator
        postprocess = {}
        if output_type is not None:
            if output_type not in OUTPUT_TYPES:
                raise ValueError(f"Unknown `output_type` {output_type!r}; expected one of {OUTPUT_TYPES}.")
            postprocess["output_type"] = output_type
        return {}, forward, postprocess

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
            indices = [int(index) for index in given_frames]
            given_mask_from_indices(indices, num_frames)  # range and repeat checks
            frames = {int(index): load_frame(frame, resolution) for index, frame in given_frames.items()}
        elif images is not None:
            stacked = isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4
            images = list(images) if isinstance(images, (list, tuple)) or stacked else [images]
            task = task or "prediction"
            try:
                indices = task_given_indices(task, num_frames, len(images))
            except ValueError as error:
                raise ValueError(f"{len(images)} image(s) for task {task!r}: {error}") from error
            frames = {index: load_frame(image, resolution) for index, image in zip(indices, images)}
        else:
            if task is None:
                raise ValueError("With `video`, pass `task` (prediction, rewind or infilling).")
            ground_truth = load_video_frames(video, num_frames, resolution)
            indices = task_given_indices(task, num_frames, num_given_frames)
            frames = {index: ground_truth[index] for index in indices}
        return {"prompt": prompt, "frames": frames, "ground_truth": ground_truth}

    def preprocess(self, request: dict) -> dict:
        config = self.model.config
        num_frames, resolution = config.num_frames, config.image_size
        clip = torch.zeros(num_frames, 3, resolution, resolution, dtype=torch.uint8)
        for index, frame in request["frames"].items():
            clip[index] = frame
        inputs = self.processor(text=[request["prompt"]], videos=[clip], return_tensors="pt", do_sample_frames=False)
        given = given_mask_from_indices(sorted(request["frames"]), num_frames)[None]
        return {
            "input_ids": inputs["input_ids"],
            "attention_mask": inputs["attention_mask"],
            "pixel_values_videos": inputs["pixel_values_videos"],
            "given_frames_mask": given,
            "request": request,
        }

    @staticmethod
    def _collate(items: list[dict], pad_token_id: int) -> dict:
        width = max(item["input_ids"].shape[1] for item in items)

        def pad(tensor, value):
            return torch.nn.functional.pad(tensor, (0, width - tensor.shape[1]), value=value)

        return {
            "input_ids": torch.cat([pad(item["input_ids"], pad_token_id) for item in items]),
            "attention_mask": torch.cat([pad(item["attention_mask"], 0) for item in items]),
            "pixel_values_videos": torch.cat([item["pixel_values_videos"] for item in items]),
            "given_frames_mask": torch.cat([item["given_frames_mask"] for item in items]),
            "requests": [item["request"] for item in items],
        }

    # -- model and outputs -------------------------------------------------------------------------------------

    def _forward(self, model_inputs: dict, progress: bool = True, **complete_kwargs) -> dict:
        requests = model_inputs.pop("requests")
        output = self.model.complete(
            model_inputs["input_ids"],
            model_inputs["attention_mask"],
            model_inputs["pixel_values_videos"],
            model_inputs["given_frames_mask"],
            progress=progress,
            **complete_kwargs,
        )
        return {"frames": output.frames, "given_frames_mask": output.given_frames_mask, "requests": requests}

    def postprocess(self, model_outputs: dict, output_type: str = "pil") -> list[dict]:
        video_processor = self.processor.video_processor
        results = []
        for frames, given, request in zip(
            model_outputs["frames"].cpu(), model_outputs["given_frames_mask"].cpu(), model_outputs["requests"]
        ):
            result = {
                "frames": video_processor.postprocess_video(frames.float(), output_type=output_type),
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
            results.append(result)
        return results

    def __call__(
        self,
        prompt: str | Sequence[str],
        images=None,
        video=None,
        given_frames=None,
        task: str | None = None,
        num_given_frames: int | None = None,
        batch_size: int = 8,
        **kwargs,
    ):
        """Complete one clip (`prompt` a string) or a batch (`prompt` a list; `images` / `video` / `given_frames`
        then lists of the same length). See the class docstring for the inputs and knobs."""
        batched = not isinstance(prompt, str)
        prompts = list(prompt) if batched else [prompt]
        per_clip = {"images": images, "video": video, "given_frames": given_frames}
        if batched:
            for name, value in per_clip.items():
                if value is not None and (not isinstance(value, Sequence) or len(value) != len(prompts)):
                    raise ValueError(f"With {len(prompts)} prompts, `{name}` must be a list of {len(prompts)} entries.")
        requests = [
            self._request(
                text,
                *((per_clip[name][index] if batched and per_clip[name] is not None else per_clip[name])
                  for name in ("images", "video", "given_frames")),
                task,
                num_given_frames,
            )
            for index, text in enumerate(prompts)
        ]
        _, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        pad_token_id = self.processor.tokenizer.pad_token_id
        results = []
        for start in range(0, len(requests), batch_size):
            items = [self.preprocess(request) for request in requests[start : start + batch_size]]
            outputs = self.forward(self._collate(items, pad_token_id), **forward_params)
            results.extend(self.postprocess(outputs, **postprocess_params))
        return results if batched else results[0]


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


PIPELINE_REGISTRY.register_pipeline(
    TASK_NAME, pipeline_class=VideoCompletionPipeline, pt_model=AutoModel, type="multimodal"
)

__all__ = [
    "VideoCompletionPipeline",
    "load_frame",
    "load_video_frames",
    "save_completion_gif",
    "save_completion_grid",
    "save_completion_video",
]
