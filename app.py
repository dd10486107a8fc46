"""The Hugging Face Space of transformers-mmvg: text-guided video completion in the browser.

    make app                      # set-up included; serves http://127.0.0.1:7860
    python app.py --port 7861     # once the `app` extra is installed (pip install -e ".[app]")

A Space built from this repository runs this file from the repository's root; its settings (`sdk: gradio`,
`app_file: app.py`, the Gradio version it is tested with) are the YAML front matter at the top of README.md, the
only place the Hub reads them. `requirements.txt` lists what the Space installs.

Two domains, each one model folder read through `pipeline("text-guided-video-completion", model=folder)` (the
same pipeline as the README, the demo and the command line; loaded once per domain, on its first use):

- TextShapes: coloured shapes on black, `checkpoints/mmvg-textshapes-64x8` (or `$MMVG_TEXTSHAPES_MODEL`);
- TextCam: camera moves over photographs, `checkpoints/mmvg-textcam-64x8` (or `$MMVG_TEXTCAM_MODEL`).

A person picks the task (prediction: the first frame is given; rewind: the last; infilling: both), uploads the
frame(s) (a photo of any size, or a frame of a clip), writes the caption and gets the completed clip as a GIF, a
strip of its frames with the given ones outlined, and the files (GIF, mp4, PNG). Every input the app or the pipeline
refuses is shown in the page as a message (`gr.Error`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image
from transformers import pipeline

REPOSITORY = Path(__file__).resolve().parent
try:
    import transformers_mmvg  # noqa: F401  (importing the package registers the task "text-guided-video-completion")
except ImportError:  # a checkout run without installing the package (a Space): its source is beside this file
    sys.path.insert(0, str(REPOSITORY / "src"))

from transformers_mmvg import VideoCompletionPipeline
from transformers_mmvg.data import textcam, textshapes
from transformers_mmvg.masking import TASKS
from transformers_mmvg.pipeline_video_completion import (
    TASK_NAME,
    save_completion_gif,
    save_completion_grid,
    save_completion_video,
)

GIF_SCALE = 4  # the clip is shown 4x its model size (64 -> 256 px), nearest neighbour
GRID_SCALE = 2
# the clip and the strip are nearest-neighbour upscales of 64x64 frames: the browser keeps their pixels sharp too
CSS = "#clip img, #strip img { image-rendering: pixelated; }"
RUN_FOLDER_LIFETIME_S = 3600  # the files of a completion are kept an hour (gradio serves its own copies meanwhile)

# which frame(s) each task is given, in the order of the two image inputs
TASK_FRAMES: dict[str, tuple[str, ...]] = {
    "prediction": ("first frame",),
    "rewind": ("last frame",),
    "infilling": ("first frame", "last frame"),
}
assert tuple(TASK_FRAMES) == TASKS  # one entry per task of the package


@dataclass(frozen=True)
class Domain:
    """One kind of clip the app completes, with its model folder and examples.

    Attributes:
        label: the name shown in the page.
        env_var: the environment variable that overrides `default_model`.
        default_model: the model folder, relative to the repository.
        description: a line under the domain switch (what the frames look like).
        captions: caption examples, in the data set's own wording.
        fps: frames per second of the clips shown (the data set preset's).
    """

    label: str
    env_var: str
    default_model: str
    description: str
    captions: tuple[str, ...]
    fps: int

    @property
    def model_folder(self) -> Path:
        """The folder the pipeline loads: `$env_var` when set, else `default_model` in the repository."""
        return Path(os.environ.get(self.env_var) or REPOSITORY / self.default_model)


DOMAINS: dict[str, Domain] = {
    domain.label: domain
    for domain in (
        Domain(
            label="TextShapes",
            env_var="MMVG_TEXTSHAPES_MODEL",
            default_model="checkpoints/mmvg-textshapes-64x8",
            description="One coloured shape (square, circle, triangle) moving on black, 64x64; upload a frame of "
            "such a clip. Colours: " + ", ".join(textshapes.COLORS) + ".",
            captions=tuple(
                textshapes.format_caption(color, shape, directions)
                for color, shape, directions in (
                    ("red", "circle", ("left", "up")),
                    ("cyan", "triangle", ("down", "right")),
                    ("yellow", "square", ("right",)),
                    ("green", "circle", ("up", "left")),
                    ("magenta", "triangle", ("left",)),
                    ("white", "square", ("down",)),
                )
            ),
            fps=textshapes.get_preset(textshapes.DEFAULT_PRESET).fps,
        ),
        Domain(
            label="TextCam",
            env_var="MMVG_TEXTCAM_MODEL",
            default_model="checkpoints/mmvg-textcam-64x8",
            description="A camera panning and zooming over a photograph; upload a photo of any size (the camera "
            "looks at its centre, a square half as wide as its shorter side, as in training).",
            captions=tuple(
                textcam.format_caption(motions)
                for motions in (("left",), ("in", "left"), ("right", "up"), ("out",), ("down", "in"), ("up",))
            ),
            fps=textcam.get_preset(textcam.DEFAULT_PRESET).fps,
        ),
    )
}  # fmt: skip
DEFAULT_DOMAIN = "TextShapes"

# the page's examples: (task, clip) of TextShapes, whose given frames the package draws; (task, photo, motions) of
# TextCam on the held-out photos of `textcam.DEFAULT_HELD_OUT_PHOTOS`
TEXTSHAPES_EXAMPLES = (
    ("prediction", textshapes.ClipParams("circle", "red", ("left", "up"), x0=40, y0=40)),
    ("infilling", textshapes.ClipParams("triangle", "cyan", ("down", "right"), x0=10, y0=8)),
    ("rewind", textshapes.ClipParams("square", "yellow", ("right",), x0=14, y0=25)),
)
TEXTCAM_EXAMPLES = (("prediction", "chelsea.png", ("in", "left")), ("rewind", "rocket.jpg", ("left",)))


def refuse(message: str) -> gr.Error:
    """An input the app cannot complete from, as a message in the page that stays until closed (the person's to fix:
    no traceback in the server's log)."""
    return gr.Error(message, duration=None, print_exception=False)


# -- models --------------------------------------------------------------------------------------------------------

_PIPELINES: dict[Path, VideoCompletionPipeline] = {}
_PIPELINES_LOCK = threading.Lock()


def load_pipeline(domain: Domain) -> VideoCompletionPipeline:
    """The domain's completion pipeline, loaded from `domain.model_folder` on first use and kept. A missing or
    unreadable folder is a `gr.Error` naming it and the variable that chooses another."""
    folder = domain.model_folder
    with _PIPELINES_LOCK:
        if folder not in _PIPELINES:
            if not (folder / "config.json").is_file():
                raise gr.Error(
                    f"The {domain.label} model is not here: {folder} holds no config.json. Point "
                    f"{domain.env_var} at a model folder (a checkpoint of examples/run_mmvg.py) and restart the app.",
                    duration=None,
                )
            try:
                _PIPELINES[folder] = pipeline(TASK_NAME, model=str(folder))
            except (OSError, ValueError, TypeError) as error:
                raise gr.Error(f"Cannot load the {domain.label} model from {folder}: {error}", duration=None) from error
        return _PIPELINES[folder]


# -- one completion ------------------------------------------------------------------------------------------------

_RUNS = Path(tempfile.gettempdir()) / "mmvg-app-runs"


def new_run_folder() -> Path:
    """A new folder for one completion's files; those of runs older than `RUN_FOLDER_LIFETIME_S` are removed."""
    _RUNS.mkdir(parents=True, exist_ok=True)
    for old in _RUNS.iterdir():
        if old.is_dir() and time.time() - old.stat().st_mtime > RUN_FOLDER_LIFETIME_S:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=_RUNS))


def given_images(task: str, first_upload: dict | None, last_upload: dict | None) -> list[tuple[str, str]]:
    """The uploaded image file(s) of `task`, in the pipeline's order, as (path, the name it was uploaded under); a
    missing one is a message saying which."""
    if task not in TASK_FRAMES:
        raise refuse(f"Pick a task: {', '.join(TASKS)}.")
    names = TASK_FRAMES[task]
    images = []
    for upload, name in zip([first_upload, last_upload], names):
        if not upload or not upload.get("path"):
            both = " (infilling is given both ends of the clip)" if len(names) == 2 else ""
            raise refuse(f"{task.capitalize()} needs the {name} of the clip{both}: upload it in the box "
                         f"\"{name.capitalize()}\".")  # fmt: skip
        images.append((upload["path"], upload.get("orig_name") or Path(upload["path"]).name))
    return images


def complete(
    domain_label: str,
    task: str,
    first_upload: dict | None,
    last_upload: dict | None,
    caption: str | None,
    decoding: str,
    num_inference_steps: float,
    guidance_scale: float,
    temperature: float,
    seed: float | None,
    progress: gr.Progress = gr.Progress(track_tqdm=True),
) -> tuple[str, str, list[str], str]:
    """The page's "Complete the clip": checks the inputs, completes the clip through the domain's pipeline and writes
    its files. Returns (GIF path, frame strip PNG path, [GIF, mp4, PNG] paths, a summary in Markdown).

    Called without gradio's preprocessing (`preprocess=False`): the image boxes give their upload records (`{"path",
    "orig_name", ...}`, files gradio has already checked into its upload folder) and the pipeline reads the files
    itself, so that a file that is not an image (a text file named `.png`) is refused by the pipeline's own check,
    as a message in the page, rather than failing in gradio's image decoding with a bare "Error"."""
    if domain_label not in DOMAINS:
        raise refuse(f"Pick a domain: {', '.join(DOMAINS)}.")
    domain = DOMAINS[domain_label]
    images = given_images(task, first_upload, last_upload)
    caption = (caption or "").strip()
    if not caption:
        raise refuse(
            f"Write a caption: it is what says how the clip moves (e.g. \"{domain.captions[0]}\"; click an example "
            "under the caption box)."
        )
    if seed is None or float(seed) != int(seed):
        raise refuse(f"The seed must be a whole number, got {seed!r}.")
    progress(0.0, desc=f"Loading the {domain.label} model")
    pipe = load_pipeline(domain)
    started = time.perf_counter()
    try:
        result = pipe(
            caption,
            images=[path for path, _ in images],
            task=task,
            decoding=decoding,
            num_inference_steps=int(num_inference_steps),
            guidance_scale=float(guidance_scale),
            temperature=float(temperature),
            seed=int(seed),
            output_type="np",
            progress=True,  # the decoding loop's tqdm bar, which gr.Progress(track_tqdm=True) shows in the page
        )
    except (ValueError, TypeError, OSError) as error:  # the pipeline's refusals: bad images, settings, caption
        raise refuse(_readable(str(error), images)) from error
    seconds = time.perf_counter() - started
    progress(1.0, desc="Writing the clip")
    folder = new_run_folder()
    gif = save_completion_gif(result, folder / "completion.gif", fps=domain.fps, scale=GIF_SCALE)
    video = save_completion_video(result, folder / "completion.mp4", fps=domain.fps)
    grid = save_completion_grid(result, folder / "frames.png", scale=GRID_SCALE)
    num_frames = len(result["frames"])
    given = [str(index + 1) for index in result["given_frame_indices"]]
    given = f"frame {given[0]}" if len(given) == 1 else f"frames {', '.join(given[:-1])} and {given[-1]}"
    summary = (
        f"**{num_frames} frames**, {given} given (outlined in the strip). "
        f"{domain.label} model `{domain.model_folder.name}`, {decoding} decoding"
        + {"parallel": f" in {int(num_inference_steps)} steps",
           "frame_by_frame": f" in {int(num_inference_steps)} steps a frame"}.get(decoding, "")  # fmt: skip
        + f", guidance {float(guidance_scale):g}, temperature {float(temperature):g}"
        + (f", seed {int(seed)}" if float(temperature) > 0 else " (greedy)")
        + f"; {seconds:.1f} s."
    )
    return str(gif), str(grid), [str(gif), str(video), str(grid)], summary


def _readable(message: str, images: list[tuple[str, str]]) -> str:
    """A pipeline message for the page: the uploads' paths in gradio's folder replaced by their file names."""
    for path, name in images:
        message = message.replace(path, name)
    return message


# -- the page ------------------------------------------------------------------------------------------------------


def example_rows(folder: Path) -> list[list]:
    """The page's examples as rows (domain, task, first image, last image, caption), their images written into
    `folder` (gradio serves files of the temporary folder): the given frames of TextShapes clips drawn by the package,
    and the two held-out TextCam photos, which no model saw in training (left out if scikit-image lacks them)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for task, params in TEXTSHAPES_EXAMPLES:
        frames = textshapes.render_clip(params).frames
        images = []
        for name in TASK_FRAMES[task]:
            path = folder / f"{params.text.replace(' ', '-')}-{name.replace(' ', '-')}.png"
            Image.fromarray(frames[0 if name == "first frame" else -1]).save(path)
            images.append(str(path))
        rows.append(["TextShapes", task, *images, *[None] * (2 - len(images)), params.text])
    try:
        photos = {path.name: path for path in textcam.default_photo_paths("held_out")}
    except FileNotFoundError:
        photos = {}
    for task, name, motions in TEXTCAM_EXAMPLES:
        if name in photos:
            photo = shutil.copy(photos[name], folder / name)
            rows.append(["TextCam", task, photo, None, textcam.format_caption(motions)])
    return rows


def domain_note(domain: Domain) -> str:
    """The line under the domain switch, saying where the model comes from (or that it is missing)."""
    folder = domain.model_folder
    found = (folder / "config.json").is_file()
    where = f"model: `{folder}`" if found else f"**no model in `{folder}`** (set `{domain.env_var}`)"
    return f"{domain.description} ({where})"


def build_app() -> gr.Blocks:
    """The page: inputs on the left, the completed clip on the right, examples below."""
    first_domain = DOMAINS[DEFAULT_DOMAIN]
    with gr.Blocks(title="MMVG: text-guided video completion") as app:
        gr.Markdown(
            "# MMVG: text-guided video completion\n"
            "Give one or two frames of a clip and a caption; the model ([MMVG](https://arxiv.org/abs/2211.12824), "
            "CVPR 2023, trained here on small synthetic data) generates the whole 8-frame clip so that it moves as "
            "the caption says. **Prediction** is given the first frame, **rewind** the last, **infilling** both."
        )
        with gr.Row():
            with gr.Column(scale=1):
                domain = gr.Radio(list(DOMAINS), value=DEFAULT_DOMAIN, label="Domain", elem_id="domain")
                note = gr.Markdown(domain_note(first_domain), elem_id="domain-note")
                task = gr.Radio(list(TASKS), value=TASKS[0], label="Task", elem_id="task")
                with gr.Row():
                    first_frame = gr.Image(
                        type="filepath", image_mode=None, sources=["upload", "clipboard"], label="First frame",
                        height=220, elem_id="first-frame",
                    )  # fmt: skip
                    last_frame = gr.Image(
                        type="filepath", image_mode=None, sources=["upload", "clipboard"], label="Last frame",
                        height=220, visible=False, elem_id="last-frame",
                    )  # fmt: skip
                caption = gr.Textbox(
                    label="Caption", placeholder=first_domain.captions[0], lines=1, max_lines=2, elem_id="caption"
                )
                caption_examples = gr.Dataset(
                    components=[caption], samples=[[text] for text in first_domain.captions],
                    label="Caption examples (click one)", elem_id="caption-examples",
                )  # fmt: skip
                with gr.Accordion("Settings", open=False):
                    decoding = gr.Radio(
                        ["parallel", "frame_by_frame", "autoregressive"], value="parallel", label="Decoding",
                        info="parallel: MaskGIT-style, a few model calls; frame_by_frame: the same, one frame at a "
                        "time from the given frames outwards (steps per frame); autoregressive: one token at a time "
                        "(slow)",
                    )  # fmt: skip
                    num_inference_steps = gr.Slider(1, 32, value=12, step=1, label="Parallel decoding steps")
                    guidance_scale = gr.Slider(
                        0.0, 5.0, value=1.0, step=0.25, label="Guidance scale",
                        info="1: the caption as trained; above 1 pushes away from the caption-free completion",
                    )  # fmt: skip
                    temperature = gr.Slider(
                        0.0, 2.0, value=0.0, step=0.1, label="Temperature",
                        info="0: greedy (the README's results); above 0 samples, and the seed matters",
                    )  # fmt: skip
                    seed = gr.Number(value=0, precision=0, label="Seed")
                run = gr.Button("Complete the clip", variant="primary", elem_id="run")
            with gr.Column(scale=1):
                clip = gr.Image(label="Completed clip (GIF)", format="gif", interactive=False, height=300,
                                elem_id="clip")  # fmt: skip
                strip = gr.Image(label="Frames: given (outlined) and completed", format="png", interactive=False,
                                 elem_id="strip")  # fmt: skip
                summary = gr.Markdown(elem_id="summary")
                files = gr.File(label="Files (GIF, mp4, PNG)", file_count="multiple", interactive=False,
                                elem_id="files")  # fmt: skip
        gr.Examples(
            examples=example_rows(Path(tempfile.gettempdir()) / "mmvg-app-examples"),
            inputs=[domain, task, first_frame, last_frame, caption],
            label="Examples (the TextCam photos are held out: no model was trained on them)",
            cache_examples=False,
        )

        def show_domain(label: str) -> tuple[str, gr.Dataset, gr.Textbox]:
            """The domain switch: its note, the caption examples and placeholder of that domain."""
            chosen = DOMAINS[label]
            return (
                domain_note(chosen),
                gr.Dataset(samples=[[text] for text in chosen.captions]),
                gr.Textbox(placeholder=chosen.captions[0]),
            )

        def show_task(task_name: str) -> tuple[gr.Image, gr.Image]:
            """The task switch: the first image input is the given frame, the second one shows for infilling."""
            frames = TASK_FRAMES.get(task_name, TASK_FRAMES[TASKS[0]])
            return (
                gr.Image(label=frames[0].capitalize()),
                gr.Image(visible=len(frames) == 2),
            )

        domain.change(show_domain, inputs=domain, outputs=[note, caption_examples, caption])
        task.change(show_task, inputs=task, outputs=[first_frame, last_frame])
        caption_examples.click(lambda sample: sample[0], inputs=caption_examples, outputs=caption)
        run.click(  # one completion at a time (the default of an event): a CPU Space has few cores
            complete,
            inputs=[domain, task, first_frame, last_frame, caption, decoding, num_inference_steps, guidance_scale,
                    temperature, seed],
            outputs=[clip, strip, files, summary],
            preprocess=False,  # see `complete`
        )  # fmt: skip
    return app


demo = build_app()  # the name gradio's tools (and Spaces) look for


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # gradio's own variables first: a Space sets GRADIO_SERVER_NAME=0.0.0.0 and the port it serves
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args(argv)
    demo.queue().launch(server_name=args.host, server_port=args.port, css=CSS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
