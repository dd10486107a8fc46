"""`evaluate` modules for the metrics of this package, one folder each, loadable offline:

    import evaluate
    from transformers_mmvg.metrics import evaluate_module_path

    psnr = evaluate.load(evaluate_module_path("video_psnr"))
    psnr.compute(predictions=generated_videos, references=true_videos)

Folders: `video_psnr`, `video_ssim`, `textshapes_caption_following`, `fvd`. Each script computes through the
functions of `transformers_mmvg.metrics` / `transformers_mmvg.fvd`, so both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import datasets
import evaluate
import numpy as np

__all__ = ["VideoPairMetric", "video_feature"]


def video_feature(dtype: str) -> datasets.Sequence:
    """The `datasets` feature of one video (T, H, W, C): four nested sequences of `dtype` values."""
    feature = datasets.Value(dtype)
    for _ in range(4):
        feature = datasets.Sequence(feature)
    return feature


class VideoPairMetric(evaluate.Metric):
    """A score of each predicted video against its reference video, and its mean: PSNR, SSIM.

    A script subclasses it (through the module, `evaluate_metrics.VideoPairMetric`, so that `evaluate.load` finds
    the subclass as the script's metric) and sets the score's name, function and texts.
    """

    score_name: str
    score_function: Callable  # (prediction, reference, data_range=...) -> 0-d tensor
    DESCRIPTION: str
    CITATION: str
    INPUTS_DESCRIPTION: str

    def _info(self):
        return evaluate.MetricInfo(
            description=self.DESCRIPTION,
            citation=self.CITATION,
            inputs_description=self.INPUTS_DESCRIPTION,
            features=datasets.Features({"predictions": video_feature("float32"), "references": video_feature("float32")}),
        )

    def _compute(self, predictions, references, data_range=255.0):
        # one video at a time: the videos of a set may differ in size
        values = [
            self.score_function(np.asarray(prediction), np.asarray(reference), data_range=data_range).item()
            for prediction, reference in zip(predictions, references)
        ]
        return {self.score_name: float(np.mean(values)), f"{self.score_name}_per_video": values}
