"""The helpers of the `tvq-rate-distortion` benchmark (benchmarks/bench_rate_distortion.py) on hand-worked inputs: the
entropies and adaptive code lengths of token grids, the interpolation of a rate-distortion curve, and the in-memory
H.264 round trip whose bits it counts."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest


def load_bench_rate_distortion():
    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    sys.path.insert(0, str(benchmarks))  # the module imports `common` from there
    spec = importlib.util.spec_from_file_location("bench_rate_distortion", benchmarks / "bench_rate_distortion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rate_distortion = load_bench_rate_distortion()


def test_entropy_of_known_distributions():
    assert rate_distortion.entropy_bits(np.array([2, 2])) == pytest.approx(1.0)
    assert rate_distortion.entropy_bits(np.array([1, 1, 2, 0])) == pytest.approx(1.5)  # unused codes cost nothing
    assert rate_distortion.entropy_bits(np.array([[3, 0], [0, 0]])) == 0.0


def test_kt_code_length_of_short_sequences():
    # "a": P = 1/2; "aa": 1/2 * (1 + 1/2) / (1 + 1) = 3/8; "ab": 1/2 * (1/2) / 2 = 1/8
    assert rate_distortion.kt_code_bits(np.array([1, 0])) == pytest.approx(1.0)
    assert rate_distortion.kt_code_bits(np.array([2, 0])) == pytest.approx(math.log2(8 / 3))
    assert rate_distortion.kt_code_bits(np.array([1, 1])) == pytest.approx(3.0)
    # one model per row (context); an unused context costs nothing
    assert rate_distortion.kt_code_bits(np.array([[2, 0], [1, 1], [0, 0]])) == pytest.approx(math.log2(8 / 3) + 3)


def test_token_rates_of_a_hand_worked_grid():
    # one clip of 2 frames of 1x2 tokens: frame 0 = [0, 1], frame 1 = [0, 0]; codebook of 2
    token_ids = np.array([[[[0, 1]], [[0, 0]]]])
    rates = rate_distortion.token_rates(token_ids, codebook_size=2)
    entropy = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))  # three 0s, one 1
    assert rates["entropy"] == pytest.approx(entropy)
    # pairs (previous, token): (0, 0) and (1, 0): the previous token determines the token, H(token | previous) = 0
    assert rates["conditional"] == pytest.approx(entropy / 2)
    assert rates["adaptive"] == pytest.approx(rate_distortion.kt_code_bits(np.array([3, 1])) / 4)
    # first frame [0, 1] coded alone (3 bits), then one token in each of the contexts 0 and 1 (1 bit each)
    assert rates["adaptive_conditional"] == pytest.approx((3 + 1 + 1) / 4)
    with pytest.raises(ValueError, match="T >= 2"):
        rate_distortion.token_rates(token_ids[:, :1], codebook_size=2)


def test_interpolation_is_linear_in_log_bpp():
    points = [(1.0, 30.0), (0.1, 20.0), (10.0, 35.0)]  # any order
    assert rate_distortion.interpolate_psnr(points, math.sqrt(0.1)) == pytest.approx(25.0)
    assert rate_distortion.interpolate_psnr(points, 1.0) == pytest.approx(30.0)
    assert rate_distortion.interpolate_psnr(points, 10**0.5) == pytest.approx(32.5)
    assert rate_distortion.interpolate_psnr(points, 0.05) is None
    assert rate_distortion.interpolate_psnr(points, 20.0) is None


def test_h264_round_trip_counts_what_the_decoder_needs():
    frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    bits, bits_as_written, decoded = rate_distortion.h264_clip(frames, crf=0, pix_fmt="yuv444p")
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    # lossless in YUV: only the RGB <-> YUV conversion differs from the input
    assert np.abs(decoded.astype(int) - frames).mean() < 3
    # the decoder got every frame without x264's SEI, which takes hundreds of bytes of what libx264 wrote
    assert 0 < bits < bits_as_written - 8 * 300
