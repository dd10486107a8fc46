"""Fréchet Video Distance as an `evaluate` metric, computed by `transformers_mmvg.fvd`."""

import datasets
import evaluate
import numpy as np

from transformers_mmvg.evaluate_metrics import video_feature
from transformers_mmvg.fvd import I3D_INPUT_SIZE, fvd, load_i3d

_DESCRIPTION = """
Fréchet Video Distance: the Fréchet distance between Gaussians fitted to the I3D features (Kinetics-400 logits) of
the generated and the real videos, each resized to 224x224 and scaled to [-1, 1]. The I3D weights must be supplied
(`weights_path`); without them the network has seeded random weights and the result is labelled
"random-weight FVD: a code-path check, not comparable to published FVD".
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated uint8 videos, each (T, H, W, 3); at least 2.
    references: real uint8 videos, each (T, H, W, 3); at least 2.
    weights_path: a Kinetics-400 I3D state dict (see `transformers_mmvg.fvd`); None for random weights.
    input_size: frame size fed to I3D (224 for published FVD).
    batch_size: clips per I3D forward pass.
Returns:
    fvd: the distance (>= 0);
    random_weights: whether the I3D had random weights;
    label: which weights produced the number (the random-weight warning when random_weights).
Examples:
    >>> metric = evaluate.load(evaluate_module_path("fvd"))
    >>> metric.compute(predictions=fake, references=real, weights_path="i3d_kinetics400.pt")["fvd"]
"""

_CITATION = """
@article{unterthiner2018towards,
  title   = {Towards Accurate Generative Models of Video: A New Metric \\& Challenges},
  author  = {Unterthiner, Thomas and van Steenkiste, Sjoerd and Kurach, Karol and Marinier, Raphael and
             Michalski, Marcin and Gelly, Sylvain},
  journal = {arXiv preprint arXiv:1812.01717},
  year    = {2018}
}
@inproceedings{carreira2017quo,
  title     = {Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset},
  author    = {Carreira, Joao and Zisserman, Andrew},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2017}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FVD(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": video_feature("uint8"), "references": video_feature("uint8")}),
        )

    def _compute(self, predictions, references, weights_path=None, input_size=I3D_INPUT_SIZE, batch_size=8):
        # the I3D is built once per (weights, size) and kept for later calls
        networks = self.__dict__.setdefault("_i3d_networks", {})
        if (weights_path, input_size) not in networks:
            networks[weights_path, input_size] = load_i3d(weights_path, input_size=input_size)
        model = networks[weights_path, input_size]
        real = np.asarray(references, dtype=np.uint8)
        fake = np.asarray(predictions, dtype=np.uint8)
        score = fvd(real, fake, model, batch_size=batch_size)
        return {"fvd": float(score), "random_weights": score.random_weights, "label": score.label}
