"""Video PSNR as an `evaluate` metric, computed by `transformers_mmvg.metrics.psnr`."""

import evaluate

from transformers_mmvg import evaluate_metrics
from transformers_mmvg.metrics import psnr

_DESCRIPTION = """
Peak signal-to-noise ratio in dB of each generated video against its reference, over all its frames and pixels:
10 log10(data_range^2 / MSE); inf for identical videos. Videos are (T, H, W, C) with values in [0, data_range]
(uint8 frames with the default data_range 255); they are stored as float32 on the way.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated videos, each (T, H, W, C).
    references: the true videos, same shapes.
    data_range: the largest possible value (255 for uint8 frames, 2 for [-1, 1]).
Returns:
    psnr: mean over videos (inf if any pair is identical);
    psnr_per_video: one value per video.
Examples:
    >>> metric = evaluate.load(evaluate_module_path("video_psnr"))
    >>> metric.compute(predictions=videos, references=videos)["psnr"]
    inf
"""

_CITATION = """
@article{huynh2008scope,
  title   = {Scope of validity of PSNR in image/video quality assessment},
  author  = {Huynh-Thu, Quan and Ghanbari, Mohammed},
  journal = {Electronics Letters},
  volume  = {44},
  number  = {13},
  pages   = {800--801},
  year    = {2008}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VideoPSNR(evaluate_metrics.VideoPairMetric):
    score_name = "psnr"
    score_function = staticmethod(psnr)
    DESCRIPTION, CITATION, INPUTS_DESCRIPTION = _DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION
