"""The `transformers-mmvg` command line.

    transformers-mmvg complete --model checkpoints/mmvg-textshapes-64x8 --image first.png --prompt "the red circle moves left" \
        --task prediction --out out.gif
    transformers-mmvg complete --model DIR --image first.png --image last.png --task infilling --prompt "..." \
        --out out.mp4 --grid side_by_side.png
    transformers-mmvg complete --model DIR --video clip.mp4 --task rewind --prompt "..." --out out.gif

`--out` is written by its extension: `.gif` (animated), `.mp4` (H.264) or `.png` (the side-by-side grid).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .decoding import DECODING_MODES
from .masking import TASKS

OUTPUT_SUFFIXES = (".gif", ".mp4", ".png")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transformers-mmvg", description="MMVG text-guided video completion.")
    commands = parser.add_subparsers(dest="command", required=True)
    complete = commands.add_parser("complete", help="complete a clip from given frames and a caption")
    complete.add_argument("--model", required=True, help="a folder or Hub repo id with the model and processor")
    complete.add_argument("--prompt", required=True, help="the caption (may be empty)")
    frames = complete.add_mutually_exclusive_group(required=True)
    frames.add_argument("--image", action="append", help="a given frame (repeat for several), in task order")
    frames.add_argument("--video", help="a video file: the task's frames are given, the rest is the ground truth")
    complete.add_argument("--task", choices=TASKS, default="prediction")
    complete.add_argument("--num-given-frames", type=int, default=None, help="with --video: frames given")
    complete.add_argument("--out", required=True, help=f"output file ({', '.join(OUTPUT_SUFFIXES)})")
    complete.add_argument("--grid", default=None, help="also write the side-by-side PNG here")
    complete.add_argument("--decoding", choices=tuple(DECODING_MODES), default="parallel")
    complete.add_argument("--steps", type=int, default=12,
                          help="parallel decoding steps (per frame for frame_by_frame)")  # fmt: skip
    complete.add_argument("--guidance-scale", type=float, default=1.0)
    complete.add_argument("--temperature", type=float, default=1.0)
    complete.add_argument("--top-k", type=int, default=None)
    complete.add_argument("--top-p", type=float, default=None)
    complete.add_argument("--seed", type=int, default=0)
    complete.add_argument("--fps", type=int, default=8)
    return parser


def complete(args: argparse.Namespace) -> Path:
    from transformers import pipeline

    from .pipeline_video_completion import (
        TASK_NAME,
        save_completion_gif,
        save_completion_grid,
        save_completion_video,
    )

    out = Path(args.out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise SystemExit(f"--out must end with one of {', '.join(OUTPUT_SUFFIXES)}, got {out.name!r}")
    pipe = pipeline(TASK_NAME, model=args.model)
    inputs = {"images": args.image} if args.image else {"video": args.video, "num_given_frames": args.num_given_frames}
    result = pipe(
        args.prompt,
        task=args.task,
        decoding=args.decoding,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        **inputs,
    )
    suffix = out.suffix.lower()
    if suffix == ".gif":
        save_completion_gif(result, out, fps=args.fps)
    elif suffix == ".mp4":
        save_completion_video(result, out, fps=args.fps)
    else:
        save_completion_grid(result, out)
    if args.grid:
        save_completion_grid(result, args.grid)
    print(f"wrote {out}" + (f" and {args.grid}" if args.grid else ""))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "complete":
        complete(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
