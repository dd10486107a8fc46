"""transformers-mmvg: MMVG text-guided video completion for the Hugging Face ecosystem."""

__version__ = "0.1.0"
