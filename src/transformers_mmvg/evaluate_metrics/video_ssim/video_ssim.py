"""Video SSIM as an `evaluate` metric, computed by `transformers_mmvg.metrics.ssim`."""

import evaluate

from transformers_mmvg import evaluate_metrics
from transformers_mmvg.metrics import ssim

_DESCRIPTION = """
Structural similarity (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) of each generated
video against its reference: the SSIM map averaged over valid window positions, channels and frames; 1 for
identical videos. Videos are (T, H, W, C) with values in [0, data_range], frames at least 11x11; they are stored as
float32 on the way.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated videos, each (T, H, W, C).
    references: the true videos, same shapes.
    data_range: the largest possible value (255 for uint8 frames, 2 for [-1, 1]).
Returns:
    ssim: mean over videos;
    ssim_per_video: one value per video.
Examples:
    >>> metric = evaluate.load(evaluate_module_path("video_ssim"))
    >>> metric.compute(predictions=videos, references=videos)["ssim"]
    1.0
"""

_CITATION = """
@article{wang2004image,
  title   = {Image quality assessment: from error visibility to structural similarity},
  author  = {Wang, Zhou and Bovik, Alan C. and Sheikh, Hamid R. and Simoncelli, Eero P.},
  journal = {IEEE Transactions on Image Processing},
  volume  = {13},
  number  = {4},
  pages   = {600--612},
  year    = {2004}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VideoSSIM(evaluate_metrics.VideoPairMetric):
    score_name = "ssim"
    score_function = staticmethod(ssim)
    DESCRIPTION, CITATION, INPUTS_DESCRIPTION = _DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION
