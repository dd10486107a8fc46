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

# --- T-VQ (stage 1) ---
from transformers import AutoModel  # noqa: E402

from .configuration_tvq import TVQConfig  # noqa: E402
from .modeling_tvq import TVQModel  # noqa: E402

AutoConfig.register("tvq", TVQConfig)
AutoModel.register(TVQConfig, TVQModel)
# --- end T-VQ ---

# --- MMVG (stage 2) ---
from .modeling_mmvg import MMVGCompletionOutput, MMVGForVideoCompletion, MMVGModel, MMVGOutput  # noqa: E402

AutoModel.register(MMVGConfig, MMVGForVideoCompletion)
# --- end MMVG ---

# --- text-guided-video-completion pipeline ---
from transformers.pipelines import PIPELINE_REGISTRY  # noqa: E402

from .pipeline_video_completion import TASK_NAME, VideoCompletionPipeline  # noqa: E402

# here, not in the pipeline's module: a Hub folder carries a copy of that module, and loading it with
# trust_remote_code must not take the task over from the installed package in the same process
PIPELINE_REGISTRY.register_pipeline(TASK_NAME, pipeline_class=VideoCompletionPipeline, pt_model=AutoModel,
                                    type="multimodal")
# --- end pipeline ---

__all__ = [
    "MMVGCompletionOutput",
    "MMVGConfig",
    "MMVGForVideoCompletion",
    "MMVGModel",
    "MMVGOutput",
    "MMVGProcessor",
    "MMVGVideoProcessor",
    "TVQConfig",
    "TVQModel",
    "VideoCompletionPipeline",
    "load_clip_tokenizer",
]
