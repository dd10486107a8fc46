"""Bad input end to end (issue 8, item 4): every case gives an error naming the file or field, or a documented and
counted skip; never a silent wrong result.

Covered elsewhere, not repeated here:
- corrupt, truncated, zero-byte and missing mp4 read directly:
  tests/test_video_data.py::test_bad_files_raise_errors_that_name_the_file
- zero-byte, missing and too-short videos in a folder, raise or skip-and-count:
  tests/test_video_data.py::test_bad_videos_stop_the_load_or_are_skipped_and_counted
- an unreadable video file given to the pipeline: tests/test_pipeline.py::test_an_unreadable_video_file_is_named
- float (non-uint8) frames given to the pipeline as `images`: tests/test_pipeline.py::test_bad_inputs_name_the_problem
- long captions truncated to 77 CLIP tokens with a warning:
  tests/test_processing.py::test_processor_truncates_long_captions_with_a_warning and
  tests/test_processing.py::test_clip_tokenizer_truncates_long_captions_to_context_length
- too many text tokens given to the model: tests/test_mmvg.py::test_bad_training_masks_and_decoding_names_are_rejected
- NaN pixels in `model.complete`: tests/test_mmvg.py::test_completion_rejects_bad_input
- `from_tvq` copying a T-VQ of the same codebook size: tests/test_mmvg.py::test_from_tvq_copies_the_trained_tokenizer
"""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

from transformers_mmvg import MMVGForVideoCompletion, TVQConfig, TVQModel
from transformers_mmvg.data.video_folder import VideoFolderError, load_video_folder
from transformers_mmvg.video_io import read_video, resize_center_crop, sample_frame_indices, write_video
from transformers_mmvg.masking import given_mask_from_indices
from transformers_mmvg.trainer_mmvg import MMVGDataCollator

from tiny_models import TINY, TINY_TVQ, tiny_model, tiny_processor

SIZE, FRAMES = TINY_TVQ["image_size"], TINY["num_frames"]


def ramp_video(num_frames: int, height: int, width: int) -> np.ndarray:
    """Frame t is filled with 8 * t: a decoded (and resized) frame tells which index it came from."""
    return np.stack([np.full((height, width, 3), 8 * t, np.uint8) for t in range(num_frames)])


def write_metadata(folder: Path, rows: list[dict]) -> None:
    with open(folder / "metadata.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-mmvg")
    tiny_model().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tvq_64_codes_dir(tmp_path_factory):
    """A 16px T-VQ like the tiny MMVG's, but with 64 codes instead of 32."""
    folder = tmp_path_factory.mktemp("tvq-64-codes")
    torch.manual_seed(0)
    TVQModel(TVQConfig(**{**TINY_TVQ, "codebook_size": 64})).save_pretrained(folder)
    return folder


# -- video folders -------------------------------------------------------------------------------------------------


def test_videos_of_different_sizes_and_frame_rates_load_as_uniform_frames(tmp_path):
    # frames are sampled by index, spread over each whole video: the frame rate does not change which are taken
    videos = {"small_8fps.mp4": (ramp_video(10, 48, 64), 8), "square_25fps.mp4": (ramp_video(30, 80, 80), 25)}
    for name, (frames, fps) in videos.items():
        write_video(tmp_path / name, frames, fps=fps)
    good_bytes = (tmp_path / "square_25fps.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(good_bytes[: len(good_bytes) // 3])
    (tmp_path / "zero.mp4").write_bytes(b"")
    names = ["small_8fps.mp4", "truncated.mp4", "square_25fps.mp4", "zero.mp4"]
    write_metadata(tmp_path, [{"file_name": name, "text": f"clip {name}"} for name in names])

    with pytest.raises(VideoFolderError, match="2 unusable video") as error:
        load_video_folder(tmp_path, num_frames=FRAMES, resolution=SIZE)
    assert "truncated.mp4: cannot decode" in str(error.value) and "zero.mp4: video file is empty" in str(error.value)

    dataset = load_video_folder(tmp_path, num_frames=FRAMES, resolution=SIZE, on_bad_file="skip")
    assert dataset["file_name"] == ["small_8fps.mp4", "square_25fps.mp4"]
    assert [name for name, _ in json.loads(dataset.info.description)["skipped_videos"]] == ["truncated.mp4", "zero.mp4"]
    rows = [dataset[0], dataset[1]]
    for row, (frames, _) in zip(rows, videos.values()):
        assert row["frames"].shape == (FRAMES, 3, SIZE, SIZE) and row["frames"].dtype == torch.uint8
        expected_indices = sample_frame_indices(len(frames), FRAMES)
        assert row["frames"][:, :, 0, 0].tolist() == [[8 * t] * 3 for t in expected_indices]
        decoded = torch.from_numpy(read_video(tmp_path / row["file_name"], num_frames=FRAMES)).permute(0, 3, 1, 2)
        assert torch.equal(row["frames"], resize_center_crop(decoded, SIZE))

    # run_mmvg.py's collation: one batch of model pixels, and the model trains on it
    batch = MMVGDataCollator(tiny_processor())(rows)
    pixels = batch["pixel_values_videos"]
    assert pixels.shape == (2, FRAMES, 3, SIZE, SIZE) and pixels.dtype == torch.float32
    assert pixels[0, :, 0, 0, 0].tolist() == pytest.approx([8 * t / 127.5 - 1 for t in sample_frame_indices(10, FRAMES)])
    model = tiny_model().train()
    assert torch.isfinite(model(**model.draw_training_masks(**batch)).loss)


@pytest.mark.parametrize(
    "metadata_name, content, line",
    [
        ("metadata.jsonl", b'{"file_name": "a.mp4", "text": "ok"}\n{"file_name": "b.mp4", "text": "caf\xe9"}\n', 2),
        ("metadata.csv", b"file_name,text\na.mp4,ok\nb.mp4,caf\xe9\n", 3),  # line 1 is the header
    ],
    ids=["jsonl", "csv"],
)
def test_metadata_that_is_not_utf8_names_the_file_and_line(tmp_path, metadata_name, content, line):
    for name in ("a.mp4", "b.mp4"):
        write_video(tmp_path / name, ramp_video(FRAMES, SIZE, SIZE))
    (tmp_path / metadata_name).write_bytes(content)
    with pytest.raises(VideoFolderError, match=f"{metadata_name} line {line} is not valid UTF-8 \\(byte 0xe9"):
        load_video_folder(tmp_path, num_frames=FRAMES, resolution=SIZE)


def test_long_captions_of_cached_tokens_are_truncated_with_a_warning(caplog):
    # the collator's cached-token path tokenizes like the pixel path: 77 tokens, and a warning naming the caption
    rows = [{"text": text, "video_token_ids": np.zeros((FRAMES, 4, 4), np.int16)} for text in ("a cat", "word " * 100)]
    with caplog.at_level(logging.WARNING):
        batch = MMVGDataCollator(tiny_processor())(rows)
    assert batch["input_ids"].shape == (2, 77) and batch["video_token_ids"].shape == (2, FRAMES, 4, 4)
    assert "truncated to 77 tokens: #1 (102 tokens)" in caplog.text


# -- non-finite pixels ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pixels_are_rejected_in_training_and_tokenization(bad_value):
    model = tiny_model().train()
    input_ids = torch.randint(0, 1000, (2, 5))
    pixels = torch.zeros(2, FRAMES, 3, SIZE, SIZE)
    pixels[1, 3, 0, 7, 7] = bad_value
    with pytest.raises(ValueError, match="`pixel_values_videos` contains NaN or infinite values"):
        model(**model.draw_training_masks(input_ids, None, pixels))
    with pytest.raises(ValueError, match="`pixel_values_videos` contains NaN or infinite values"):
        model.tokenize_video(pixels)
    given = given_mask_from_indices([0], FRAMES)[None].expand(2, -1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.eval().complete(input_ids, None, pixels, given)


def test_pipeline_rejects_float_given_frames(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    tiny_processor().save_pretrained(tmp_path)
    pipe = pipeline("text-guided-video-completion", model=str(tmp_path))
    frame = np.full((SIZE, SIZE, 3), np.nan, np.float32)
    with pytest.raises(ValueError, match="Given frames must be uint8 images \\(0-255\\); got dtype torch.float32"):
        pipe("a", given_frames={2: frame}, progress=False)


# -- checkpoints that do not fit -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, named",
    [
        (dict(num_frames=4), "num_frames: checkpoint 6, requested 4"),
        (dict(hidden_size=64), "hidden_size: checkpoint 32, requested 64"),
        (dict(tvq_config={**TINY_TVQ, "codebook_size": 64}), "tvq_config.codebook_size: checkpoint 32, requested 64"),
    ],
)
def test_loading_a_checkpoint_into_another_config_names_the_fields(checkpoint_dir, overrides, named):
    with pytest.raises(RuntimeError, match="holds weights of another shape than the requested config") as error:
        MMVGForVideoCompletion.from_pretrained(checkpoint_dir, **overrides)
    message = str(error.value)
    assert named in message and "ignore_mismatched_sizes=True" in message
    assert message.count(", requested ") == 1  # only the config field asked for, not every derived one


def test_mmvg_training_refuses_a_checkpoint_of_another_number_of_frames(checkpoint_dir):
    from transformers_mmvg.training_runs import MMVGModelArguments, build_mmvg_model

    args = MMVGModelArguments(model_name_or_path=str(checkpoint_dir))
    with pytest.raises(ValueError, match="the model expects 6 frames of 16px; the data has 8 frames of 16px"):
        build_mmvg_model(args, num_frames=8, resolution=SIZE)
    assert build_mmvg_model(args, num_frames=FRAMES, resolution=SIZE).config.num_frames == FRAMES


def test_a_tvq_of_another_codebook_size(checkpoint_dir, tvq_64_codes_dir):
    # from_tvq builds the MMVG around the T-VQ: the output head scores its 64 codes
    model = MMVGForVideoCompletion.from_tvq(str(tvq_64_codes_dir), **TINY)
    assert model.config.codebook_size == model.config.tvq_config.codebook_size == 64
    assert model.head.class_logits.out_features == 64
    inputs = model.draw_training_masks(torch.randint(0, 1000, (1, 5)), None, torch.zeros(1, FRAMES, 3, SIZE, SIZE))
    logits = model(**inputs).logits
    assert logits.shape[-1] == 64
    # putting it into an MMVG trained on 32 codes is refused, naming the codebook
    trained = MMVGForVideoCompletion.from_pretrained(checkpoint_dir)
    other = TVQModel.from_pretrained(tvq_64_codes_dir)
    with pytest.raises(RuntimeError, match=r"size mismatch for quantizer.codebook.weight: .*\[64, 4\].*\[32, 4\]"):
        trained.tvq.load_state_dict(other.state_dict())
