"""Caption following, cross-entropy in bits, Fréchet distance and FVD, and the `evaluate` modules, with known answers."""

import importlib.util
import math

import evaluate
import numpy as np
import pytest
import torch

from transformers_mmvg.data.textshapes import render_clip, sample_clip_params
from transformers_mmvg.evaluation import OPPOSITE
from transformers_mmvg.fvd import (
    RANDOM_WEIGHT_LABEL,
    _trace_sqrt_product,
    frechet_distance,
    fvd,
    i3d_features,
    load_i3d,
)
from transformers_mmvg.metrics import caption_following, cross_entropy_bits, evaluate_module_path, psnr, ssim

PRESET = "textshapes-64x8"
FVD_SIZE = 64  # the I3D input size of these tests; published FVD uses 224


def load_module(name):
    return evaluate.load(evaluate_module_path(name), keep_in_memory=True)


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    return [render_clip(sample_clip_params(rng, PRESET, num_segments=1 + index % 2), PRESET) for index in range(6)]


@pytest.fixture(scope="module")
def random_i3d():
    with pytest.warns(UserWarning, match=RANDOM_WEIGHT_LABEL):
        return load_i3d(input_size=FVD_SIZE)


# ----------------------------------------------------------------------------------------------
# PSNR and SSIM, from Python and as evaluate modules
# ----------------------------------------------------------------------------------------------


def test_psnr_and_ssim_modules_give_the_known_values_of_the_functions(clips):
    videos = np.stack([clip.frames for clip in clips[:3]])
    offset = videos.astype(np.int16) + 10  # no clipping: the frames hold 0 and 255, so shift into int16
    psnr_module, ssim_module = load_module("video_psnr"), load_module("video_ssim")

    identical = psnr_module.compute(predictions=videos, references=videos)
    assert identical["psnr"] == math.inf and identical["psnr_per_video"] == [math.inf] * 3
    assert ssim_module.compute(predictions=videos, references=videos)["ssim"] == pytest.approx(1.0)

    # a constant offset of 10 is an MSE of 100
    expected = 10 * math.log10(255**2 / 100)
    assert psnr(offset, videos).tolist() == pytest.approx([expected] * 3)
    result = psnr_module.compute(predictions=offset, references=videos)
    assert result["psnr_per_video"] == pytest.approx([expected] * 3)

    noisy = np.clip(videos + np.random.default_rng(1).normal(0, 20, videos.shape), 0, 255).round()
    assert ssim_module.compute(predictions=noisy, references=videos)["ssim_per_video"] == pytest.approx(
        ssim(noisy, videos).tolist()
    )


def test_unknown_evaluate_module_is_refused():
    with pytest.raises(ValueError, match="video_psnr"):
        evaluate_module_path("psnr")


# ----------------------------------------------------------------------------------------------
# TextShapes caption following
# ----------------------------------------------------------------------------------------------


def swapped_caption(clip):
    """The caption with every direction replaced by its opposite."""
    return f"the {clip.color} {clip.shape} moves {' then '.join(OPPOSITE[d] for d in clip.directions)}"


def test_caption_following_accepts_true_clips_and_rejects_swapped_captions_and_frozen_frames(clips):
    videos = np.stack([clip.frames for clip in clips])
    assert caption_following(videos, clips, PRESET) == {"accuracy": 1.0, "centroid_error": 0.0, "num_clips": 6}
    # bare captions: the motion is checked, but there are no true positions for a centroid error
    by_text = caption_following(videos, [clip.text for clip in clips], PRESET)
    assert by_text["accuracy"] == 1.0 and math.isnan(by_text["centroid_error"])

    assert caption_following(videos, [swapped_caption(clip) for clip in clips], PRESET)["accuracy"] == 0.0
    # two-segment clips with the legs in the other order: same end frames, other path
    two_legs = [clip for clip in clips if len(clip.directions) == 2]
    reordered = [f"the {c.color} {c.shape} moves {c.directions[1]} then {c.directions[0]}" for c in two_legs]
    assert caption_following([clip.frames for clip in two_legs], reordered, PRESET)["accuracy"] == 0.0

    frozen = np.repeat(videos[:, :1], videos.shape[1], axis=1)
    result = caption_following(frozen, clips, PRESET)
    assert result["accuracy"] == 0.0
    # the frozen object sits at the first true position: the error is the mean distance travelled
    travelled = [np.linalg.norm(np.subtract(clip.positions, clip.positions[0]), axis=1).mean() for clip in clips]
    assert result["centroid_error"] == pytest.approx(np.mean(travelled))


def test_caption_following_module_matches_the_function(clips):
    videos = np.stack([clip.frames for clip in clips])
    texts = [clip.text for clip in clips[:3]] + [swapped_caption(clip) for clip in clips[3:]]
    module = load_module("textshapes_caption_following")
    result = module.compute(predictions=videos, references=texts, preset=PRESET)
    assert result["accuracy"] == 0.5 and math.isnan(result["centroid_error"])
    frozen = np.repeat(videos[:, :1], videos.shape[1], axis=1)
    true_texts, positions = [clip.text for clip in clips], [clip.positions for clip in clips]
    with_positions = module.compute(predictions=frozen, references=true_texts, preset=PRESET, positions=positions)
    assert with_positions == caption_following(frozen, clips, PRESET)


# ----------------------------------------------------------------------------------------------
# Cross-entropy in bits
# ----------------------------------------------------------------------------------------------


def test_cross_entropy_bits_of_known_distributions():
    # uniform logits over K classes: log2(K) bits for any target
    logits = torch.zeros(2, 3, 4, 4, 512)
    targets = torch.randint(0, 512, (2, 3, 4, 4))
    assert cross_entropy_bits(logits, targets) == pytest.approx(9.0)
    # probabilities (1/2, 1/4, 1/4): 1 bit for class 0, 2 bits for class 1; the mask picks the scored tokens
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]))
    targets = torch.tensor([0, 1])
    assert cross_entropy_bits(logits, targets) == pytest.approx(1.5)
    assert cross_entropy_bits(logits, targets, mask=torch.tensor([False, True])) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="selects nothing"):
        cross_entropy_bits(logits, targets, mask=torch.zeros(2, dtype=torch.bool))


# ----------------------------------------------------------------------------------------------
# Fréchet distance and FVD
# ----------------------------------------------------------------------------------------------


def samples_with(mean, variances, rotation, rng, num_samples=40):
    """Samples whose sample mean is exactly `mean` and sample covariance exactly rotation diag(variances) rotation^T."""
    noise = rng.normal(size=(num_samples, len(mean)))
    noise -= noise.mean(0)
    noise = noise @ np.linalg.inv(np.linalg.cholesky(np.cov(noise, rowvar=False))).T  # sample covariance I
    return mean + (noise * np.sqrt(variances)) @ rotation.T


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(4, 4)))  # the same rotation: covariances commute
    mean_a, mean_b = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 1.0])
    a = samples_with(mean_a, var_a, rotation, rng)
    b = samples_with(mean_b, var_b, rotation, rng)
    # |mu_a - mu_b|^2 + sum (sqrt(var_a) - sqrt(var_b))^2 = 5 + (1 + 1 + 0 + 0.25)
    assert frechet_distance(a, b) == pytest.approx(7.25)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(7.25)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # both matrix square roots: the eigen-decomposition used without SciPy, and SciPy's where it is installed
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    for use_scipy in (False, True) if importlib.util.find_spec("scipy") else (False,):
        assert _trace_sqrt_product(cov_a, cov_b, use_scipy) == pytest.approx(np.sqrt(var_a * var_b).sum())
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance(a[:1], b)


def test_random_weight_fvd_runs_and_says_so(clips, random_i3d):
    real = np.stack([clip.frames for clip in clips[:2]])
    fake = np.stack([clip.frames for clip in clips[2:4]])
    features = i3d_features(random_i3d, real)
    assert features.shape == (2, 400) and torch.isfinite(features).all()

    with pytest.warns(UserWarning, match=RANDOM_WEIGHT_LABEL):
        different = fvd(real, fake, random_i3d)
    with pytest.warns(UserWarning, match=RANDOM_WEIGHT_LABEL):
        same = fvd(real, real, random_i3d)
    assert different > 0 and same == pytest.approx(0.0, abs=1e-3 * different)
    assert different.random_weights and different.label == RANDOM_WEIGHT_LABEL
    assert RANDOM_WEIGHT_LABEL in repr(different) and RANDOM_WEIGHT_LABEL in str(same)

    module = load_module("fvd")
    with pytest.warns(UserWarning, match=RANDOM_WEIGHT_LABEL):
        result = module.compute(predictions=fake, references=real, input_size=FVD_SIZE)
    assert result == {"fvd": pytest.approx(float(different)), "random_weights": True, "label": RANDOM_WEIGHT_LABEL}


def test_i3d_loads_user_weights_without_the_features_prefix(clips, random_i3d, tmp_path):
    # a state dict named after the TensorFlow end points (no `features.` prefix), as converted checkpoints are
    state = {key.removeprefix("features."): value for key, value in random_i3d.state_dict().items()}
    path = tmp_path / "i3d.pt"
    torch.save(state, path)
    model = load_i3d(path, input_size=FVD_SIZE)
    assert not model.random_weights and model.weights_source == str(path)
    videos = np.stack([clip.frames for clip in clips[:2]])
    torch.testing.assert_close(i3d_features(model, videos), i3d_features(random_i3d, videos))
    score = fvd(videos, np.stack([clip.frames for clip in clips[2:4]]), model)
    assert RANDOM_WEIGHT_LABEL not in repr(score) and str(path) in score.label
