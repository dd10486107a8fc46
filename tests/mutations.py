#!/usr/bin/env python
"""Mutation checks: break a claim on purpose and see the test suite fail.

Each mutation is one textual change to the source that breaks one claim the README or the benchmarks make. For
each, this script copies the repository (the files git tracks, plus new ones it does not ignore) into a temporary
folder, applies the change there (the working tree is never touched), and runs pytest on the named tests against the
copy. A mutation is *caught* when pytest fails. Exit status 0 only when every mutation is caught.

    python tests/mutations.py                  # every mutation, against the tests named for it
    python tests/mutations.py --only ssim-sigma
    python tests/mutations.py --full           # against the whole default suite (-m "not slow") instead

A mutation whose anchor text no longer occurs exactly once in its file is reported as stale (exit status 2): the
code moved, so update the anchor here (docs/TESTING.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    claim: str
    path: str  # relative to the repository
    anchor: str  # must occur exactly once in the file
    replacement: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation(
        name="infilling-ignores-caption",
        claim="the committed MMVG follows the caption when infilling (README: 100%)",
        path="src/transformers_mmvg/modeling_mmvg.py",
        anchor="        known = given_frames_mask[:, :, None, None].expand_as(token_ids)\n",
        replacement=(
            "        known = given_frames_mask[:, :, None, None].expand_as(token_ids)\n"
            "        if given_frames_mask[:, 0].all() and given_frames_mask[:, -1].all():\n"
            "            input_ids, attention_mask = self._null_text(input_ids)\n"
        ),
        tests=("tests/test_checkpoints.py",),
    ),
    Mutation(
        name="p_t-from-wrong-frames",
        claim="p_t follows the paper's rule from each frame's own loss L_t",
        path="src/transformers_mmvg/modeling_mmvg.py",
        anchor="            self.mask_probabilities, frame_losses, config.mask_probability_alpha,",
        replacement="            self.mask_probabilities, frame_losses.roll(1), config.mask_probability_alpha,",
        tests=("tests/test_mmvg.py", "tests/test_masking_decoding.py"),
    ),
    Mutation(
        name="trainer-p_t-from-wrong-frames",
        claim="training updates p_t from each frame's own loss L_t of the global batch",
        path="src/transformers_mmvg/trainer_mmvg.py",
        anchor="        model.update_mask_probabilities(sums / counts.clamp(min=1), counts)",
        replacement="        model.update_mask_probabilities((sums / counts.clamp(min=1)).roll(1), counts)",
        tests=("tests/test_trainer_mmvg.py",),
    ),
    Mutation(
        name="dead-code-counters-not-saved",
        claim="T-VQ training resumes exactly (dead-code restarts included)",
        path="src/transformers_mmvg/modeling_tvq.py",
        anchor='self.register_buffer("steps_since_used", torch.zeros(config.codebook_size, dtype=torch.long))',
        replacement=(
            'self.register_buffer("steps_since_used", torch.zeros(config.codebook_size, dtype=torch.long), '
            "persistent=False)"
        ),
        tests=("tests/test_resume.py", "tests/test_tvq.py"),
    ),
    Mutation(
        name="ssim-sigma",
        claim="SSIM is Wang et al.'s (Gaussian window, sigma 1.5)",
        path="src/transformers_mmvg/metrics.py",
        anchor="SSIM_SIGMA = 1.5\n",
        replacement="SSIM_SIGMA = 4.0\n",
        tests=("tests/test_metrics.py", "tests/test_metrics_extra.py"),
    ),
    Mutation(
        name="video-folder-reads-outside",
        claim="a video folder's metadata reaches no file outside the folder (issue 14, item 5)",
        path="src/transformers_mmvg/data/video_folder.py",
        anchor="    if not path.is_relative_to(root):\n",
        replacement="    if False:\n",
        tests=("tests/test_safe_data.py",),
    ),
    Mutation(
        name="negative-temperature-accepted",
        claim="decoding settings that would sample another distribution are refused (issue 14, item 10)",
        path="src/transformers_mmvg/decoding.py",
        anchor='            if not math.isfinite(value) or (name == "temperature" and value < 0):\n',
        replacement="            if not math.isfinite(value):\n",
        tests=("tests/test_refusals.py",),
    ),
    Mutation(
        name="held-out-photos-gathered",
        claim="the TextCam T-VQ never trains on the held-out photos (issue 16)",
        path="src/transformers_mmvg/data/photos.py",
        anchor='    photos = {path.name: ("scikit-image", path) for path in default_photo_paths("train")} |',
        replacement='    photos = {path.name: ("scikit-image", path) for path in default_photo_paths("all")} |',
        tests=("tests/test_natural_tvq.py",),
    ),
    Mutation(
        name="augmentation-reverses-time",
        claim="augmentation mirrors and recolours whole clips, so the motion and the frame order are kept (issue 16)",
        path="src/transformers_mmvg/trainer_tvq.py",
        anchor="pixel_values.flip(-1), pixel_values)",
        replacement="pixel_values.flip(1), pixel_values)",  # mirrored in time: the frames reversed
        tests=("tests/test_natural_tvq.py",),
    ),
)


def repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def copy_repository(target: Path) -> None:
    for name in repository_files():
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, destination)


def apply(mutation: Mutation, copy: Path) -> None:
    path = copy / mutation.path
    text = path.read_text()
    count = text.count(mutation.anchor)
    if count != 1:
        raise LookupError(f"{mutation.name}: its anchor occurs {count} times in {mutation.path} (expected once)")
    path.write_text(text.replace(mutation.anchor, mutation.replacement))


def run(mutation: Mutation, full: bool) -> tuple[bool, float, str]:
    """(caught, seconds, last line of pytest's report)."""
    with tempfile.TemporaryDirectory(prefix=f"mutation-{mutation.name}-") as folder:
        copy = Path(folder)
        copy_repository(copy)
        apply(mutation, copy)
        # the copy's sources first on the path, ahead of the editable install of the working tree
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy / "src"), os.environ.get("PYTHONPATH", "")])}
        selection = ["-m", "not slow"] if full else list(mutation.tests)
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *selection],
            cwd=copy, env=env, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        return result.returncode != 0, seconds, lines[-1] if lines else result.stderr.strip()[-200:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help=f"comma-separated: {', '.join(m.name for m in MUTATIONS)}")
    parser.add_argument("--full", action="store_true", help="run the whole default suite against each mutation")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else [mutation.name for mutation in MUTATIONS]
    unknown = sorted(set(names) - {mutation.name for mutation in MUTATIONS})
    if unknown:
        parser.error(f"unknown mutation(s) {unknown}")
    status = 0
    print("| mutation | claim it breaks | caught | seconds | pytest says |\n|---|---|---|---|---|", flush=True)
    for mutation in MUTATIONS:
        if mutation.name not in names:
            continue
        try:
            caught, seconds, summary = run(mutation, args.full)
        except LookupError as error:
            print(f"| {mutation.name} | {mutation.claim} | STALE | - | {error} |", flush=True)
            status = max(status, 2)
            continue
        print(f"| {mutation.name} | {mutation.claim} | {'yes' if caught else 'NO'} | {seconds:.0f} | {summary} |",
              flush=True)
        if not caught:
            status = max(status, 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
