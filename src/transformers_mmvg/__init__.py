"""transformers-mmvg: MMVG text-guided video completion for the Hugging Face ecosystem."""

__version__ = "0.1.0"

# --- MMVG processor and config (tokenizer, video processor, processor) ---
from transformers import AutoConfig, AutoProcessor, AutoVideoProcessor  # noqa: E402

from .configuration_mmvg import MMVGConfig  # noqa: E402
from .processing_mmvg import MMVGProcessor  # noqa: E402
from .tokenization_mmvg import load_clip_tokenizer  # noqa: E402
from .video_processing_mmvg import MMVGVideoProcessor  # noqa: E402

AutoConfig.register("mmvg", MMVGConfig)
AutoVideoProcessor.register(MMVGConfig, MMVGVideoProcessor)
AutoProcessor.register(MMVGConfig, MMVGProcessor)
# --- end MMVG processor and config ---
