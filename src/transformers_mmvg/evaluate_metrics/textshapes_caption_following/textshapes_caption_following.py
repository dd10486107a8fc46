"""TextShapes caption following as an `evaluate` metric, computed by `transformers_mmvg.metrics.caption_following`."""

import datasets
import evaluate
import numpy as np

from transformers_mmvg.data.textshapes import DEFAULT_PRESET, parse_caption
from transformers_mmvg.evaluate_metrics import video_feature
from transformers_mmvg.metrics import caption_following

_DESCRIPTION = """
Does a generated TextShapes clip do what its caption says? The object's pixels are those nearest to the caption's
color; their centroid must move, in every segment of the caption, along the caption's direction by at least half
the intended distance, with no larger sideways drift (docs/TEXTSHAPES.md). Accuracy is the share of clips that
pass. With the true per-frame positions of the object, also the mean distance in pixels between generated and
true centroids.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated uint8 clips, each (N, R, R, 3) at the preset's size.
    references: their captions, e.g. "the cyan triangle moves up then left".
    preset: the TextShapes preset, default "textshapes-64x8".
    positions: optional, per clip the true top-left [x, y] of the object's box in each frame (N x 2), for the
        centroid error; without them centroid_error is NaN.
Returns:
    accuracy: share of clips following their caption;
    centroid_error: mean centroid distance in pixels (NaN without positions);
    num_clips: number of clips.
Examples:
    >>> metric = evaluate.load(evaluate_module_path("textshapes_caption_following"))
    >>> metric.compute(predictions=[clip.frames], references=[clip.text])["accuracy"]
    1.0
"""

_CITATION = """
@inproceedings{fu2023tellme,
  title     = {Tell Me What Happened: Unifying Text-guided Video Completion via Multimodal Masked Video Generation},
  author    = {Fu, Tsu-Jui and Yu, Licheng and Zhang, Ning and Fu, Cheng-Yang and Su, Jong-Chyi and
               Wang, William Yang and Bell, Sean},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TextShapesCaptionFollowing(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": video_feature("uint8"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, preset=DEFAULT_PRESET, positions=None):
        videos = [np.asarray(video, dtype=np.uint8) for video in predictions]
        if positions is None:
            return caption_following(videos, references, preset)
        metadata = []
        for text, clip_positions in zip(references, positions, strict=True):
            color, shape, directions = parse_caption(text)
            metadata.append({"color": color, "shape": shape, "directions": directions, "positions": clip_positions})
        return caption_following(videos, metadata, preset)
