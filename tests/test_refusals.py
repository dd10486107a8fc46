"""Issue 14: inputs that used to be answered wrongly in silence are refused with an error naming the argument
(items 8, 10-16), and a property test throws random argument combinations at the pipeline: each call gives a
`ValueError` / `TypeError` that names an argument, or a valid result, never anything else.

Items 7 (settings given to `pipeline(...)`) and 9 (`batch_size`) are covered in tests/test_pipeline.py
(`test_settings_given_to_pipeline_apply_and_a_call_overrides_them`,
`test_a_batch_size_that_is_not_a_positive_integer_is_refused`)."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers import pipeline

from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion, MMVGProcessor, MMVGVideoProcessor
from transformers_mmvg.decoding import check_decoding_settings
from transformers_mmvg.memory import check_model_size

from tiny_models import TINY, TINY_TVQ, tiny_processor

TASK = "text-guided-video-completion"
SIZE, FRAMES = TINY_TVQ["image_size"], TINY["num_frames"]


@pytest.fixture(scope="module")
def pipe(model_dir):
    return pipeline(TASK, model=str(model_dir), progress=False)


def frame(seed: int = 0, size: int = SIZE) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


# -- item 8: a tokenizer that does not fit the model ----------------------------------------------------------------


def test_a_model_folder_without_its_tokenizer_is_refused(model_dir, tmp_path):
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for path in model_dir.iterdir():
        if path.name != "tokenizer.json":
            (folder / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match=r"tokenizer has 2 tokens but the model reads 49408 \(`config.text_vocab_size`\)"):
        pipeline(TASK, model=str(folder))
    # the documented way out: the CLIP tokenizer
    processor = MMVGProcessor(video_processor=MMVGVideoProcessor.from_pretrained(folder))
    completed = pipeline(TASK, model=str(folder), processor=processor, progress=False)
    assert len(completed("a", images=[frame()])["frames"]) == FRAMES


# -- item 10: decoding settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, error, message",
    [
        (dict(temperature=-1.0), ValueError, r"`temperature` must be a finite number >= 0"),
        (dict(temperature=float("inf")), ValueError, r"`temperature` must be a finite number >= 0"),
        (dict(temperature="hot"), TypeError, r"`temperature` must be a real number"),
        (dict(top_k=0), ValueError, r"`top_k` must be >= 1"),
        (dict(top_k=-3), ValueError, r"`top_k` must be >= 1"),
        (dict(top_k=2.5), TypeError, r"`top_k` must be an integer or None"),
        (dict(top_k=True), TypeError, r"`top_k` must be an integer or None"),
        (dict(top_p=0.0), ValueError, r"`top_p` must lie in \(0, 1\]"),
        (dict(top_p=1.5), ValueError, r"`top_p` must lie in \(0, 1\]"),
        (dict(top_p=float("nan")), ValueError, r"`top_p` must lie in \(0, 1\]"),
        (dict(guidance_scale=float("nan")), ValueError, r"`guidance_scale` must be a finite number"),
        (dict(guidance_scale=True), TypeError, r"`guidance_scale` must be a real number"),
        (dict(num_inference_steps=0), ValueError, r"`num_inference_steps` must be >= 1"),
        (dict(num_inference_steps=2.0), TypeError, r"`num_inference_steps` must be an integer"),
        (dict(decoding="beam"), ValueError, r"Unknown `decoding` 'beam'"),
        (dict(progress="no"), TypeError, r"`progress` must be True or False"),
        (dict(progress=0), TypeError, r"`progress` must be True or False"),
        (dict(generator=3), TypeError, r"`generator` must be a torch.Generator"),
        (dict(seed=1.7), TypeError, r"`seed` must be an integer"),
        (dict(seed=True), TypeError, r"`seed` must be an integer"),
        (dict(num_given_frames=1.0), TypeError, r"`num_given_frames` must be an integer"),
        (dict(num_given_frames=0), ValueError, r"`num_given_frames` must be >= 1"),
    ],
)
def test_bad_decoding_settings_are_refused_at_call_and_at_construction(pipe, model_dir, setting, error, message):
    with pytest.raises(error, match=message):
        pipe("a", images=[frame()], **setting)
    with pytest.raises(error, match=message):
        pipeline(TASK, model=str(model_dir), **setting)


def test_the_model_and_the_decoding_loop_refuse_bad_settings_too(pipe):
    """`model.complete` (and through it `decode_tokens`) check the same settings before any work."""
    model = pipe.model
    ids = torch.tensor([[49406, 49407]])
    pixels = torch.zeros(1, FRAMES, 3, SIZE, SIZE)
    given = torch.zeros(1, FRAMES, dtype=torch.bool)
    given[0, 0] = True
    with pytest.raises(ValueError, match=r"`temperature` must be a finite number >= 0"):
        model.complete(ids, pixel_values_videos=pixels, given_frames_mask=given, temperature=-0.5)
    with pytest.raises(ValueError, match=r"`guidance_scale` must be a finite number"):
        model.complete(ids, pixel_values_videos=pixels, given_frames_mask=given, temperature=0,
                       guidance_scale=float("nan"))  # fmt: skip
    check_decoding_settings(temperature=0, top_k=1, top_p=1.0, guidance_scale=3, num_inference_steps=1,
                            decoding="autoregressive", generator=None, progress=False)  # fmt: skip


def test_given_frame_indices_must_be_integers(pipe):
    for index in (1.9, 1.0, True, "1"):
        with pytest.raises(TypeError, match="`given_frames` keys must be integer frame indices"):
            pipe("a", given_frames={index: frame()})
    assert pipe("a", given_frames={np.int64(2): frame()})["given_frame_indices"] == [2]


# -- item 11: pixel dtype, range, mode, orientation, layout -------------------------------------------------------


@pytest.mark.parametrize(
    "image, message",
    [
        (Image.fromarray(np.full((SIZE, SIZE), 1000.0, np.float32), mode="F"), r"mode 'F'"),
        (Image.new("I;16", (SIZE, SIZE), 1000), r"mode 'I;16'"),
        (Image.new("I", (SIZE, SIZE), 1000), r"mode 'I'"),
        (np.full((SIZE, SIZE, 3), 1000, np.uint16), r"uint8"),
        (np.ones((SIZE, SIZE, 3), bool), r"uint8"),
        (np.zeros((3, SIZE, 3), np.uint8), r"reads both as \(H, W, 3\) and as \(3, H, W\)"),
        ({"pixels": 1}, r"must be a PIL image, an image path or a uint8 array"),
    ],
)
def test_frames_that_are_not_8_bit_images_are_refused_by_the_pipeline(pipe, image, message):
    with pytest.raises((ValueError, TypeError), match=message):
        pipe("a", images=[image])


@pytest.mark.parametrize(
    "clip, message",
    [
        (np.full((FRAMES, SIZE, SIZE, 3), 1000, np.uint16), r"video 0 holds uint16 values in \[1000, 1000\]"),
        (np.full((FRAMES, SIZE, SIZE, 3), -5, np.int16), r"video 0 holds int16 values in \[-5, -5\]"),
        (np.full((FRAMES, SIZE, SIZE, 3), 300.0, np.float32), r"video 0 holds float32 values in \[300.0, 300.0\]"),
        (np.full((FRAMES, SIZE, SIZE, 3), np.nan, np.float32), r"video 0 holds float32 values in \[nan, nan\]"),
        (np.ones((FRAMES, SIZE, SIZE, 3), bool), r"video 0 is boolean"),
        (np.zeros((FRAMES, 3, SIZE, 3), np.uint8), r"reads as \(T, C, H, W\) and as \(T, H, W, C\)"),
        ([Image.new("I;16", (SIZE, SIZE), 1000)] * FRAMES, r"frame 0 is a PIL image of mode 'I;16'"),
    ],
)
def test_frames_that_are_not_8_bit_images_are_refused_by_the_processor(clip, message):
    processor = tiny_processor()
    with pytest.raises(ValueError, match=message):
        processor(text=["a"], videos=[clip] if not isinstance(clip, list) else clip, num_frames=FRAMES)


def test_the_processor_still_takes_integer_frames_in_range_and_states_an_ambiguous_layout():
    processor = tiny_processor()
    as_uint8 = processor(videos=np.full((FRAMES, SIZE, SIZE, 3), 200, np.uint8), num_frames=FRAMES)
    as_int64 = processor(videos=np.full((FRAMES, SIZE, SIZE, 3), 200, np.int64), num_frames=FRAMES)
    torch.testing.assert_close(as_int64["pixel_values_videos"], as_uint8["pixel_values_videos"], rtol=0, atol=0)
    told = processor(videos=np.zeros((FRAMES, 3, SIZE, 3), np.uint8), num_frames=FRAMES,
                     input_data_format="channels_last")  # fmt: skip
    assert tuple(told["pixel_values_videos"].shape) == (1, FRAMES, 3, SIZE, SIZE)


def test_exif_orientation_is_applied(pipe, tmp_path):
    """A photo stored sideways with EXIF orientation 6 ("rotate 90 clockwise to view") is read as a viewer shows
    it: here a left-bright image stored turned a quarter counter-clockwise (bright half at the bottom)."""
    upright = np.zeros((SIZE, SIZE, 3), np.uint8)
    upright[:, : SIZE // 2] = 255  # the left half bright, as the photo is meant to be seen
    stored = Image.fromarray(np.rot90(upright, k=1).copy())  # as the camera stored it: bright half at the bottom
    exif = stored.getexif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif, quality=100)
    for image in (path, Image.open(path)):
        result = pipe("a", images=[image], output_type="np")["frames"][0]
        assert result[:, : SIZE // 2].mean() > 200 and result[:, SIZE // 2 :].mean() < 50


def test_the_model_refuses_pixels_outside_minus_one_to_one(pipe):
    ids = torch.tensor([[49406, 49407]])
    given = torch.ones(1, FRAMES, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"`pixel_values_videos` must lie in \[-1, 1\].*got values in \[0, 255\]"):
        pipe.model.complete(ids, pixel_values_videos=torch.full((1, FRAMES, 3, SIZE, SIZE), 255.0).index_fill(
            1, torch.tensor([0]), 0.0), given_frames_mask=given)  # fmt: skip


# -- item 12: prompts of other types ----------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", [None, 3, b"a red circle", {"a red circle": 1}, 2.5])
def test_a_prompt_that_is_not_a_string_is_refused(pipe, prompt):
    with pytest.raises((TypeError, ValueError), match=r"prompt must be a string|inside each dict"):
        pipe(prompt, images=[frame()])


@pytest.mark.parametrize("inputs", [None, 3, b"a red circle", 2.5])
def test_inputs_that_are_neither_prompts_nor_dicts_are_refused(pipe, inputs):
    with pytest.raises(TypeError, match=r"prompt must be a string"):
        pipe(inputs)


def test_a_prompt_inside_an_input_dict_must_be_a_string(pipe):
    with pytest.raises(TypeError, match=r"prompt must be a string .* got dict"):
        pipe({"prompt": {"a red circle": 1}, "images": [frame()]})


# -- item 13: from_pretrained with sizes that do not fit the weights -----------------------------------------------


def test_a_size_mismatch_names_the_weights_and_the_cause(model_dir, tmp_path):
    with pytest.raises(RuntimeError, match=r"frame_position_embeddings.weight: checkpoint \(6, 32\), model \(12, 32\)"
                                           r".*the overrides change num_frames: checkpoint 6, requested 12"):
        MMVGForVideoCompletion.from_pretrained(model_dir, num_frames=12)
    edited = tmp_path / "edited"
    edited.mkdir()
    for path in model_dir.iterdir():
        (edited / path.name).write_bytes(path.read_bytes())
    config = json.loads((edited / "config.json").read_text())
    config["hidden_size"] = 64
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match=r"checkpoint \(32,\), model \(64,\).*no override explains it: its "
                                           r"config.json does not describe its weights"):
        MMVGForVideoCompletion.from_pretrained(edited)


# -- item 14: num_given_frames with images ------------------------------------------------------------------------


def test_num_given_frames_that_contradicts_the_images_is_refused(pipe):
    with pytest.raises(ValueError, match=r"`num_given_frames=3` but 1 frame\(s\) passed as `images`"):
        pipe("a", images=[frame()], num_given_frames=3)
    with pytest.raises(ValueError, match=r"`num_given_frames=1` but 2 frame\(s\) passed as `given_frames`"):
        pipe("a", given_frames={0: frame(), 3: frame(1)}, num_given_frames=1)
    assert pipe("a", images=[frame(), frame(1)], num_given_frames=2)["given_frame_indices"] == [0, 1]


# -- item 15: impossible sizes refused before anything is allocated --------------------------------------------------


@pytest.mark.parametrize("field, value", [("num_frames", 10_000_000), ("num_decoder_layers", 1_000_000)])
def test_a_config_too_large_for_this_machine_is_refused_before_allocating(field, value):
    config = MMVGConfig(**{field: value})
    with pytest.raises(MemoryError, match=rf"{field}={value}[,)].* needs an estimated .* GiB .* GiB is available"):
        MMVGForVideoCompletion(config)
    check_model_size(MMVGConfig())  # the default fits


@pytest.mark.parametrize("field, value", [("num_frames", 1e7), ("num_decoder_layers", 4.0), ("hidden_size", True)])
def test_config_sizes_must_be_integers(field, value):
    with pytest.raises(Exception, match=rf"Field '{field}' expected int"):
        MMVGConfig(**{field: value})


# -- item 16: the seed's generator lives on the model's device --------------------------------------------------------


def test_the_seed_generator_is_built_on_the_models_device(pipe, monkeypatch):
    devices = []

    class RecordingGenerator(torch.Generator):  # a real generator that records the device it is asked for
        def __new__(cls, *args, **kwargs):
            devices.append(kwargs.get("device", args[0] if args else None))
            return super().__new__(cls, *args, **kwargs)

        def __init__(self, *args, **kwargs):
            pass

    monkeypatch.setattr(torch, "Generator", RecordingGenerator)
    pipe("a", images=[frame()], seed=3)
    assert devices == [pipe.model.device]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_seed_works_on_cuda(model_dir):
    on_gpu = pipeline(TASK, model=str(model_dir), device="cuda", progress=False)
    first, second = (on_gpu("a", images=[frame()], seed=4, output_type="np")["frames"] for _ in range(2))
    np.testing.assert_array_equal(first, second)


# -- the property: random argument combinations ------------------------------------------------------------------

NAMES_IN_ERRORS = ("prompt", "images", "given_frames", "task", "num_given_frames", "decoding", "num_inference_steps",
                   "guidance_scale", "temperature", "top_k", "top_p", "seed", "output_type", "progress", "frame",
                   "image")  # fmt: skip

frames_strategy = st.sampled_from([
    frame(0), frame(1, size=SIZE * 2), torch.from_numpy(frame(2)).permute(2, 0, 1), Image.fromarray(frame(3)),
    frame(4).astype(np.float32), frame(5).astype(np.uint16), np.zeros((SIZE, SIZE), np.uint8),
    np.zeros((3, SIZE, 3), np.uint8), Image.new("I;16", (SIZE, SIZE)), "not-a-file.png", None, 7,
])  # fmt: skip
numbers_strategy = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["2", "parallel"]),
)  # fmt: skip


@st.composite
def requests(draw):
    """A prompt, one way of giving frames (or none, or two), and some settings; all of them may be wrong."""
    kwargs = {}
    prompt = draw(st.one_of(st.text(max_size=12), st.none(), st.integers(), st.binary(max_size=4),
                            st.lists(st.text(max_size=4), min_size=1, max_size=2)))  # fmt: skip
    ways = draw(st.lists(st.sampled_from(["images", "given_frames"]), max_size=2, unique=True))
    if "images" in ways:
        kwargs["images"] = draw(st.one_of(frames_strategy, st.lists(frames_strategy, max_size=FRAMES)))
    if "given_frames" in ways:
        keys = st.one_of(st.integers(-2, FRAMES + 1), st.floats(0, FRAMES, width=32), st.booleans())
        kwargs["given_frames"] = draw(st.dictionaries(keys, frames_strategy, max_size=3))
    for name, values in (
        ("task", st.sampled_from(["prediction", "rewind", "infilling", "sideways", None, 1])),
        ("num_given_frames", numbers_strategy),
        ("decoding", st.sampled_from(["parallel", "autoregressive", "beam", None, 1])),
        ("num_inference_steps", numbers_strategy),
        ("guidance_scale", numbers_strategy),
        ("temperature", numbers_strategy),
        ("top_k", numbers_strategy),
        ("top_p", numbers_strategy),
        ("seed", numbers_strategy),
        ("output_type", st.sampled_from(["pil", "np", "pt", "gif", None])),
        ("progress", st.sampled_from([False, None, "no", 0])),
    ):
        if draw(st.booleans()):
            kwargs[name] = draw(values)
    return prompt, kwargs


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


VALID_SETTINGS = {
    "num_given_frames": lambda value: _is_int(value) and value >= 1,
    "num_inference_steps": lambda value: _is_int(value) and value >= 1,
    "guidance_scale": _is_finite,
    "temperature": lambda value: _is_finite(value) and value >= 0,
    "top_k": lambda value: _is_int(value) and value >= 1,
    "top_p": lambda value: _is_finite(value) and 0 < value <= 1,
    "seed": _is_int,
    "progress": lambda value: isinstance(value, bool),
}
"""What a call that returns a result must have been given (None means "not set", except for `progress`)."""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests())
def test_random_arguments_give_a_named_error_or_a_valid_result(pipe, request):
    prompt, kwargs = request
    kwargs.setdefault("progress", False)
    try:
        result = pipe(prompt, **kwargs)
    except (ValueError, TypeError, FileNotFoundError) as error:
        message = str(error)
        assert any(name in message for name in NAMES_IN_ERRORS), message
        return
    for name, valid in VALID_SETTINGS.items():  # a result never hides a setting it could not honour
        value = kwargs.get(name)
        assert (value is None and name != "progress") or valid(value), f"{name}={value!r} was accepted"
    results = result if isinstance(prompt, list) else [result]
    assert isinstance(results, list) and len(results) == (len(prompt) if isinstance(prompt, list) else 1)
    for item in results:
        frames = item["frames"]
        output_type = kwargs.get("output_type") or "pil"
        if output_type == "pil":
            assert len(frames) == FRAMES and all(f.size == (SIZE, SIZE) and f.mode == "RGB" for f in frames)
        else:
            shape = (FRAMES, SIZE, SIZE, 3) if output_type == "np" else (FRAMES, 3, SIZE, SIZE)
            assert tuple(frames.shape) == shape and frames.dtype in (np.uint8, torch.uint8)
        assert item["given_frame_indices"] == sorted(set(item["given_frame_indices"]))
        assert all(0 <= index < FRAMES for index in item["given_frame_indices"])
        assert isinstance(item["prompt"], str)
