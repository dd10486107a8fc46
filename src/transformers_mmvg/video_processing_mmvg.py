"""Video processor for MMVG: frames in, `pixel_values_videos` in [-1, 1] out, and back."""

from __future__ import annotations

from typing import Literal

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling, infer_channel_dimension_format
from transformers.utils import logging
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.processing_utils import VideosKwargs
from transformers.video_utils import VideoInput, VideoMetadata, make_batched_videos

from .video_io import VideoTooShortError, sample_frame_indices


logger = logging.get_logger(__name__)


class MMVGVideoProcessorKwargs(VideosKwargs, total=False):
    """`VideosKwargs` and MMVG's own setting: `photo_crop_fraction` (see `MMVGVideoProcessor`)."""

    photo_crop_fraction: float


class MMVGVideoProcessor(BaseVideoProcessor):
    r"""
    Turns clips into the pixel tensor the MMVG frame tokenizer (T-VQ) encodes, and turns generated
    pixels back into frames.

    `preprocess` (also `__call__`): sample `num_frames` frames, resize to `size` (bilinear,
    antialiased), rescale by 1/255 and normalize with mean = std = 0.5, so that uint8 value `v`
    becomes `v / 127.5 - 1` in [-1, 1]. `postprocess_video` inverts this exactly for frames at model
    size.

    Accepted clips (one clip or a list of clips): numpy or torch arrays of shape (T, H, W, 3) or
    (T, 3, H, W) with values 0-255 (uint8, or any integer or float type holding such values), a 5D
    batch of those, or lists of `PIL.Image` frames (8 bits per channel; EXIF orientation applied).
    Grayscale and RGBA frames are converted to RGB. Decode video files first
    (`transformers_mmvg.video_io.read_video`). Refused with a `ValueError` naming the clip: values
    outside 0-255 (e.g. uint16 or signed frames), boolean frames, 16-bit / float PIL images, and a
    layout that reads both ways (e.g. (T, 3, H, 3)) unless `input_data_format` says which.

    Frame sampling: with `do_sample_frames=True` (the default) `num_frames` frames are picked
    evenly from each clip, first and last frame included (the same rule as
    `video_io.sample_frame_indices`); a clip of exactly `num_frames` frames passes unchanged and a
    shorter clip is an error. With `do_sample_frames=False` every frame is kept.

    Output: a [`~transformers.BatchFeature`] with `pixel_values_videos`, float32 of shape
    (batch_size, num_frames, 3, height, width).

    `photo_crop_fraction` (default 1.0) frames a photograph given to the completion pipeline as the model's training
    frames framed theirs: the pipeline takes the centre square of this fraction of a photo's shorter side before
    resizing it (an image of exactly the model's size is a frame and is used whole). A TextCam model's processor
    has 0.5: its frames show a window of half the photo's shorter side (TEXTCAM.md: W / P = 128 / 256).
    """

    model_input_names = ["pixel_values_videos"]
    valid_kwargs = MMVGVideoProcessorKwargs
    photo_crop_fraction = 1.0

    size = {"height": 64, "width": 64}
    num_frames = 8
    do_sample_frames = True
    # Bilinear with antialiasing: no overshoot (bicubic rings around the flat shapes of TextShapes)
    # and a proper low-pass filter when downscaling real footage.
    resample = PILImageResampling.BILINEAR
    do_resize = True
    do_center_crop = False
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    do_convert_rgb = True
    return_tensors = "pt"

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        fps: int | float | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Indices of `num_frames` frames spread evenly over the clip, first and last included.

        Raises:
            ValueError: if `fps` is given (MMVG clips have a fixed number of frames) or the clip
                has fewer than `num_frames` frames.
        """
        if fps is not None:
            raise ValueError(
                "MMVGVideoProcessor samples a fixed number of frames per clip; pass `num_frames`, not `fps`."
            )
        num_frames = num_frames if num_frames is not None else self.num_frames
        try:
            indices = sample_frame_indices(metadata.total_num_frames, num_frames)
        except VideoTooShortError as error:
            raise ValueError(
                f"{error}; pass a longer clip, a smaller `num_frames`, or `do_sample_frames=False` to keep "
                "every frame"
            ) from None
        return np.asarray(indices, dtype=int)

    def preprocess(self, videos: VideoInput, **kwargs) -> BatchFeature:
        """Preprocess one clip or a batch of clips; see the class docstring. Keyword arguments override
        the processor's settings for this call (`num_frames`, `do_sample_frames`, `size`, `return_tensors` ...)."""
        if isinstance(videos, (list, tuple)) and videos and isinstance(videos[0], PIL.Image.Image):
            videos = np.stack([pil_to_rgb_array(frame, f"frame {index}") for index, frame in enumerate(videos)])
        videos = make_batched_videos(videos)
        do_rescale = kwargs.get("do_rescale", self.do_rescale)
        for index, video in enumerate(videos):
            _check_frames(video, index, kwargs.get("input_data_format"), do_rescale)
        if do_rescale and any(_looks_rescaled(video) for video in videos):
            logger.warning_once(
                "MMVGVideoProcessor got floating-point frames with all values in [0, 1] but rescales by "
                f"{self.rescale_factor}; pass uint8 frames in [0, 255], or `do_rescale=False`"
            )
        return super().preprocess(videos, **kwargs)

    def _prepare_input_videos(self, videos, input_data_format=None, **kwargs) -> list[torch.Tensor]:
        # The base class infers the channel axis once, from the first clip, and without RGBA;
        # infer it per clip so that a batch may mix layouts and RGBA frames are accepted.
        prepared = []
        for index, video in enumerate(videos):
            data_format = input_data_format or infer_channel_dimension_format(video, num_channels=(1, 3, 4))
            (video,) = super()._prepare_input_videos([video], input_data_format=data_format, **kwargs)
            if video.shape[1] != 3:
                raise ValueError(
                    f"video {index} has {video.shape[1]} channels after conversion, expected 3 (RGB); "
                    "keep `do_convert_rgb=True` for grayscale or RGBA frames"
                )
            prepared.append(video)
        return prepared

    def _preprocess(self, videos: list[torch.Tensor], return_tensors=None, **kwargs) -> BatchFeature:
        kwargs.pop("photo_crop_fraction", None)  # the pipeline's framing of photos, not a step of preprocessing
        frame_counts = sorted({video.shape[0] for video in videos})
        if return_tensors is not None and len(frame_counts) > 1:
            raise ValueError(
                f"cannot stack clips with different numbers of frames {frame_counts} into one tensor; "
                "use `do_sample_frames=True` with a common `num_frames`, or `return_tensors=None`"
            )
        return super()._preprocess(videos, return_tensors=return_tensors, **kwargs)

    def postprocess_video(
        self,
        pixel_values_videos: torch.Tensor | np.ndarray,
        output_type: Literal["np", "pil", "pt"] = "np",
    ) -> np.ndarray | torch.Tensor | list:
        """Map model-space pixels back to uint8 frames (the inverse of `preprocess`).

        Undoes normalization and rescaling with this processor's `image_mean`, `image_std` and
        `rescale_factor`, clamps to [0, 255] and rounds to the nearest integer.

        Args:
            pixel_values_videos (`torch.Tensor` or `np.ndarray`):
                Float pixels of shape (batch_size, num_frames, 3, height, width) or
                (num_frames, 3, height, width), in [-1, 1] for the default settings.
            output_type (`str`, *optional*, defaults to `"np"`):
                - `"np"`: uint8 `np.ndarray` of shape (batch_size, num_frames, height, width, 3),
                  or (num_frames, height, width, 3) for a 4D input;
                - `"pil"`: a list (batch) of lists (frames) of RGB `PIL.Image.Image`, or one list of
                  frames for a 4D input;
                - `"pt"`: uint8 `torch.Tensor` with the input's channel-first layout.

        Returns:
            The frames in the requested type; a 4D input gives one clip, a 5D input a batch.
        """
        if output_type not in ("np", "pil", "pt"):
            raise ValueError(f"`output_type` must be 'np', 'pil' or 'pt', got {output_type!r}")
        pixels = torch.as_tensor(pixel_values_videos)
        if pixels.ndim not in (4, 5) or pixels.shape[-3] != 3:
            raise ValueError(
                "`pixel_values_videos` must have shape (batch_size, num_frames, 3, height, width) or "
                f"(num_frames, 3, height, width), got {tuple(pixels.shape)}"
            )
        if not pixels.is_floating_point():
            raise ValueError(f"`pixel_values_videos` must be floating point, got {pixels.dtype}")

        pixels = pixels.detach().to(device="cpu", dtype=torch.float32)
        if self.do_normalize:
            mean = torch.tensor(self.image_mean, dtype=torch.float32).view(3, 1, 1)
            std = torch.tensor(self.image_std, dtype=torch.float32).view(3, 1, 1)
            pixels = pixels * std + mean
        if self.do_rescale:
            pixels = pixels / self.rescale_factor
        videos = pixels.clamp(0, 255).round().to(torch.uint8)

        if output_type == "pt":
            return videos
        videos = videos.movedim(-3, -1).numpy()  # (..., T, H, W, 3)
        if output_type == "np":
            return videos
        if videos.ndim == 4:
            return [PIL.Image.fromarray(frame) for frame in videos]
        return [[PIL.Image.fromarray(frame) for frame in video] for video in videos]


def _looks_rescaled(video) -> bool:
    is_float = video.is_floating_point() if isinstance(video, torch.Tensor) else np.issubdtype(video.dtype, np.floating)
    return bool(is_float and video.min() >= 0 and video.max() <= 1)


def pil_to_rgb_array(image: PIL.Image.Image, name: str) -> np.ndarray:
    """A PIL image -> uint8 (H, W, 3), turned as its EXIF orientation says (as a viewer shows it); palette,
    grayscale and alpha images converted to RGB. 16-bit, 32-bit and float images (modes `I`, `I;16`, `F` ...) are
    refused: their values are not 0-255, and converting them would clip to white or black."""
    if image.mode.startswith(("I", "F")):
        raise ValueError(
            f"{name} is a PIL image of mode {image.mode!r} (16/32-bit or floating point), whose values are not "
            "0-255; scale it to 8 bits per channel first (e.g. an 'RGB' or 'L' image)."
        )
    return np.array(PIL.ImageOps.exif_transpose(image).convert("RGB"))  # a writable copy


def check_pixel_values(frames: np.ndarray | torch.Tensor, name: str) -> None:
    """Refuse frames whose values cannot be 8-bit pixels: booleans, and integers or floats outside [0, 255] (e.g.
    uint16 or signed frames, NaN). Raises `ValueError` naming `name`, the dtype and the range found."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        frames = (frames.float() if frames.dtype in (torch.bfloat16, torch.float16) else frames).numpy()
    array = np.asarray(frames)
    if array.dtype == np.bool_:
        raise ValueError(f"{name} is boolean; pass pixel values 0-255 (e.g. uint8, True as 255).")
    if array.size == 0 or array.dtype == np.uint8:
        return
    low, high = array.min().item(), array.max().item()
    if not (0 <= low and high <= 255):  # also False for NaN
        raise ValueError(
            f"{name} holds {array.dtype} values in [{low}, {high}]; pixel values must lie in [0, 255] (uint8)."
        )


def _check_frames(video, index: int, input_data_format=None, do_rescale: bool = True) -> None:
    """Reject inputs the base class would fail on with an obscure message, or read wrongly in silence."""
    if isinstance(video, str) or not hasattr(video, "ndim"):
        raise ValueError(
            f"video {index} is a {type(video).__name__}; pass decoded frames (decode files with "
            "`transformers_mmvg.video_io.read_video`)"
        )
    if video.ndim != 4:
        raise ValueError(
            f"video {index} has shape {tuple(video.shape)}; expected frames of shape (T, H, W, C) or (T, C, H, W)"
        )
    channels_first, channels_last = video.shape[1] in (1, 3, 4), video.shape[3] in (1, 3, 4)
    if not channels_first and not channels_last:
        raise ValueError(
            f"video {index} has shape {tuple(video.shape)}: no channel axis of size 3 (RGB), 1 (grayscale) "
            "or 4 (RGBA) at position 1 or 3"
        )
    if channels_first and channels_last and input_data_format is None:
        raise ValueError(
            f"video {index} has shape {tuple(video.shape)}, which reads as (T, C, H, W) and as (T, H, W, C); pass "
            "`input_data_format` ('channels_first' or 'channels_last') to say which"
        )
    if do_rescale:  # frames pre-scaled by the caller (`do_rescale=False`) may hold any range
        check_pixel_values(video, f"video {index}")


# saved folders carry this code and an `auto_map`, so they load with `trust_remote_code=True` without the package
MMVGVideoProcessor.register_for_auto_class("AutoVideoProcessor")


__all__ = ["MMVGVideoProcessor", "check_pixel_values", "pil_to_rgb_array"]
