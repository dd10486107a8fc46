"""MMVG model configuration."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig


@strict
class MMVGConfig(PreTrainedConfig):
    r"""
    Configuration of an MMVG (Multimodal Masked Video Generation) model.

    This first version only holds the sizes that the processor and the model must agree on; it is
    the key under which `AutoProcessor` and `AutoVideoProcessor` find [`MMVGProcessor`] and
    [`MMVGVideoProcessor`]. The model issue extends it with the architecture fields (T-VQ
    sub-config, transformer sizes, masking, sampling).

    Args:
        num_frames (`int`, *optional*, defaults to 8):
            Frames per clip T (the default TextShapes preset).
        image_size (`int`, *optional*, defaults to 64):
            Height and width of a frame in pixels.
        text_vocab_size (`int`, *optional*, defaults to 49408):
            Size of the CLIP BPE vocabulary the captions are tokenized with.
        max_text_length (`int`, *optional*, defaults to 77):
            Maximum number of caption tokens, `<|startoftext|>` and `<|endoftext|>` included.

    Example:

    ```python
    >>> from transformers_mmvg import MMVGConfig

    >>> config = MMVGConfig(num_frames=16, image_size=128)
    >>> config.model_type
    'mmvg'
    ```"""

    model_type = "mmvg"

    num_frames: int = 8
    image_size: int = 64
    text_vocab_size: int = 49408
    max_text_length: int = 77

    def validate_architecture(self):
        """Part of `@strict` validation: sizes must be positive."""
        for name in ("num_frames", "image_size", "text_vocab_size", "max_text_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}")


__all__ = ["MMVGConfig"]
