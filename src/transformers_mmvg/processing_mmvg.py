"""Processor for MMVG: one caption and one clip per example."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from transformers import BatchFeature, CLIPTokenizer
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin, Unpack
from transformers.utils import logging
from transformers.video_utils import VideoInput, make_batched_videos

from .tokenization_mmvg import load_clip_tokenizer
from .video_processing_mmvg import MMVGVideoProcessor


logger = logging.get_logger(__name__)


class MMVGProcessorKwargs(ProcessingKwargs, total=False):
    # Processor-level defaults (lowest priority; call kwargs override them). transformers >= 5.23 also reads them from
    # the processor's class attributes (below); earlier 5.x releases only from here.
    _defaults = {
        "text_kwargs": {"padding": "longest", "truncation": True, "return_tensors": "pt"},
        "videos_kwargs": {"return_tensors": "pt"},
    }


class MMVGProcessor(ProcessorMixin):
    r"""
    Wraps the CLIP tokenizer and [`MMVGVideoProcessor`] into one processor.

    `MMVGProcessor()` builds the offline CLIP tokenizer ([`load_clip_tokenizer`]) and a default
    video processor; pass either to override it.

    Args:
        tokenizer ([`~transformers.CLIPTokenizer`], *optional*):
            Caption tokenizer; defaults to `load_clip_tokenizer()` (context length 77).
        video_processor ([`MMVGVideoProcessor`], *optional*):
            Frame processor; defaults to `MMVGVideoProcessor()` (8 frames of 64x64).
    """

    valid_processor_kwargs = MMVGProcessorKwargs
    # Processor-level defaults (lowest priority; call kwargs override them): `MMVGProcessorKwargs._defaults`.
    text_kwargs = MMVGProcessorKwargs._defaults["text_kwargs"]
    videos_kwargs = MMVGProcessorKwargs._defaults["videos_kwargs"]

    def __init__(
        self,
        tokenizer: CLIPTokenizer | None = None,
        video_processor: MMVGVideoProcessor | None = None,
        **kwargs,
    ):
        tokenizer = tokenizer if tokenizer is not None else load_clip_tokenizer()
        video_processor = video_processor if video_processor is not None else MMVGVideoProcessor()
        super().__init__(tokenizer, video_processor, **kwargs)

    def __call__(
        self,
        text: str | list[str] | None = None,
        videos: VideoInput | None = None,
        **kwargs: Unpack[MMVGProcessorKwargs],
    ) -> BatchFeature:
        """Tokenize captions and preprocess clips.

        Args:
            text (`str` or `list[str]`, *optional*):
                One caption per clip. Padded to the longest caption and truncated to the
                tokenizer's `model_max_length` by default (a warning names truncated captions).
            videos (*optional*):
                One clip or a list of clips, in any form [`MMVGVideoProcessor`] accepts.
            **kwargs:
                Tokenizer or video processor arguments (`padding`, `max_length`, `num_frames`,
                `return_tensors` ...), flat or as `text_kwargs` / `videos_kwargs`.

        Returns:
            [`~transformers.BatchFeature`] with `input_ids` and `attention_mask` (batch_size,
            text_length) when `text` is given, and `pixel_values_videos` (batch_size, num_frames, 3,
            height, width) when `videos` is given.
        """
        if text is None and videos is None:
            raise ValueError("MMVGProcessor needs `text`, `videos` or both")
        if text is not None and not _is_text(text):
            raise ValueError(f"`text` must be a string or a list of strings, got {type(text).__name__}")
        if isinstance(text, tuple):
            text = list(text)  # the tokenizer reads a tuple as a (text, text_pair)
        if text is not None and videos is not None:
            num_captions = 1 if isinstance(text, str) else len(text)
            num_videos = len(make_batched_videos(videos))
            if num_captions != num_videos:
                raise ValueError(f"got {num_captions} captions for {num_videos} videos; pass one caption per video")

        # the kwargs class is passed explicitly: transformers < 5.23 requires it as the first argument
        output_kwargs = self._merge_kwargs(
            MMVGProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs
        )
        data = {}
        if text is not None:
            text_kwargs = output_kwargs["text_kwargs"]
            self._warn_about_truncation(text, text_kwargs)
            data.update(self.tokenizer(text, **text_kwargs))
        if videos is not None:
            data.update(self.video_processor(videos, **output_kwargs["videos_kwargs"]))
        return BatchFeature(data)

    def _warn_about_truncation(self, text: str | list[str], text_kwargs: dict) -> None:
        truncation = text_kwargs.get("truncation")
        if truncation in (None, False, "do_not_truncate"):
            return
        max_length = text_kwargs.get("max_length") or self.tokenizer.model_max_length
        captions = [text] if isinstance(text, str) else list(text)
        add_special_tokens = text_kwargs.get("add_special_tokens", True)
        encoded = self.tokenizer(captions, add_special_tokens=add_special_tokens, verbose=False)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        truncated = [index for index, length in enumerate(lengths) if length > max_length]
        if truncated:
            details = ", ".join(f"#{index} ({lengths[index]} tokens)" for index in truncated)
            logger.warning(f"Captions truncated to {max_length} tokens: {details}")

    def postprocess_video(
        self,
        pixel_values_videos: torch.Tensor | np.ndarray,
        output_type: Literal["np", "pil", "pt"] = "np",
    ):
        """Map model pixels back to uint8 frames; see [`MMVGVideoProcessor.postprocess_video`]."""
        return self.video_processor.postprocess_video(pixel_values_videos, output_type=output_type)


def _is_text(text) -> bool:
    if isinstance(text, str):
        return True
    return isinstance(text, (list, tuple)) and all(isinstance(caption, str) for caption in text)


# saved folders carry this code and an `auto_map`, so they load with `trust_remote_code=True` without the package
MMVGProcessor.register_for_auto_class("AutoProcessor")


__all__ = ["MMVGProcessor"]
