"""The data sets' own checks, measured on many clips: textcam-check (the TextCam motion check on true clips)."""

from __future__ import annotations

import argparse

from common import benchmark, header


@benchmark("textcam-check")
def textcam_check(args: argparse.Namespace, num_clips: int = 300, seed: int = 2026) -> str:
    """The TextCam motion check (`textcam.caption_check`, pixels only) on true clips drawn by the data set's sampler,
    in every preset: how many follow their caption, how many steps it reads right, and whether any other of the 30
    programs would also pass (it must not)."""
    from transformers_mmvg.data.textcam import (
        DEFAULT_HELD_OUT_PHOTOS,
        PRESETS,
        PROGRAMS,
        caption_check,
        default_photo_paths,
        draw_clip_params,
        load_photo,
        render_clip,
        segment_follows,
        step_motions,
    )

    rows = ["| preset | photos | clips | follow their caption | steps read right | other programs rejected |",
            "|---|---|---|---|---|---|"]
    for name in PRESETS:
        for split in ("all", "held_out"):
            if split == "held_out" and name != "textcam-64x8":
                continue
            photos = {path.name: load_photo(path, name) for path in default_photo_paths(split)}
            params = draw_clip_params(num_clips, seed, {key: photo.size for key, photo in photos.items()}, name)
            followed = steps_right = steps = rejected = others = 0
            for clip_params in params:
                frames = render_clip(clip_params, photos[clip_params.photo], name).frames
                check = caption_check(frames, clip_params, name)
                followed += check.follows
                truth = step_motions(clip_params.motions, name)
                checked = [(read, true) for read, true in zip(check.step_motions, truth) if true is not None]
                steps += len(checked)
                steps_right += sum(read == true for read, true in checked)
                for program in PROGRAMS:
                    if program != clip_params.motions:
                        others += 1
                        rejected += not all(segment_follows(check.step_motions, program, name))
            label = "all 14" if split == "all" else ", ".join(DEFAULT_HELD_OUT_PHOTOS) + " (held out)"
            rows.append(f"| {name} | {label} | {num_clips} | {followed} ({followed / num_clips:.1%}) "
                        f"| {steps_right} / {steps} | {rejected} / {others} |")
    body = (
        "## TextCam: the motion check on true clips\n\n"
        f"{num_clips} clips per row drawn by `textcam.draw_clip_params` (seed {seed}, programs and photos uniform, "
        "start centres inside the photo), rendered, and read back by `textcam.caption_check` from their pixels "
        "alone (phase correlation against a zoom by the preset's factor). A step is read right when its label is "
        "its true motion (resting steps are not checked); other programs rejected: of the 29 programs each clip "
        "was not drawn with, how often the check's step labels do not pass as that program.\n\n"
    )
    return body + header("textcam-check", "python benchmarks/run.py --only textcam-check") + "\n" + "\n".join(rows) + "\n"
