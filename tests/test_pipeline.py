"""`pipeline("text-guided-video-completion")` on a tiny saved model: every input form, output types, batching,
errors that name the problem, the save helpers and the command line."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from transformers_mmvg import MMVGForVideoCompletion, MMVGProcessor
from transformers_mmvg.cli import main as cli_main
from transformers_mmvg.video_io import VideoReadError, count_frames, read_video, write_video
from transformers_mmvg.pipeline_video_completion import (
    VideoCompletionPipeline,
    save_completion_gif,
    save_completion_grid,
    save_completion_video,
)

TASK = "text-guided-video-completion"
SIZE, FRAMES = 16, 6


@pytest.fixture(scope="module")
def pipe(model_dir):
    return pipeline(TASK, model=str(model_dir))


def frame(seed, size=SIZE):
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def clip(seed, size=SIZE, num_frames=FRAMES):
    return np.stack([frame(seed + index, size) for index in range(num_frames)])


def test_the_task_loads_the_pipeline_model_and_processor(pipe):
    assert isinstance(pipe, VideoCompletionPipeline)
    assert isinstance(pipe.model, MMVGForVideoCompletion)
    assert isinstance(pipe.processor, MMVGProcessor)


@pytest.mark.parametrize(
    "task, num_images, expected", [("prediction", 1, [0]), ("rewind", 1, [5]), ("infilling", 2, [0, 5]),
                                   ("prediction", 2, [0, 1])]
)
def test_images_for_each_task_are_kept_exactly(pipe, task, num_images, expected):
    images = [frame(index) for index in range(num_images)]
    out = pipe("the red circle moves left", images=images, task=task, output_type="np", seed=0, progress=False)
    assert out["frames"].shape == (FRAMES, SIZE, SIZE, 3) and out["frames"].dtype == np.uint8
    assert out["given_frame_indices"] == expected
    for image, index in zip(images, expected):
        assert np.array_equal(out["frames"][index], image)


def test_given_frames_at_any_positions_and_pil_or_tensor_frames(pipe):
    given = {1: Image.fromarray(frame(1)), 3: torch.from_numpy(frame(3)).permute(2, 0, 1), 4: frame(4)}
    out = pipe("", given_frames=given, seed=0, progress=False)
    assert len(out["frames"]) == FRAMES and all(isinstance(image, Image.Image) for image in out["frames"])
    assert out["given_frame_indices"] == [1, 3, 4]
    assert np.array_equal(np.asarray(out["frames"][3]), frame(3))


def test_video_file_and_video_frames(pipe, tmp_path):
    path = write_video(tmp_path / "clip.mp4", clip(0, num_frames=12))
    out = pipe("a", video=str(path), task="rewind", num_given_frames=2, output_type="pt", seed=0, progress=False)
    assert out["frames"].shape == (FRAMES, 3, SIZE, SIZE) and out["frames"].dtype == torch.uint8
    assert out["given_frame_indices"] == [4, 5]
    truth = out["ground_truth"]
    assert truth.shape == (FRAMES, 3, SIZE, SIZE)
    assert torch.equal(out["frames"][4:], truth[4:])
    expected = torch.from_numpy(read_video(path, num_frames=FRAMES)).permute(0, 3, 1, 2)
    assert torch.equal(truth, expected)
    from_frames = pipe("a", video=list(clip(0)), task="prediction", output_type="np", seed=0, progress=False)
    assert np.array_equal(from_frames["ground_truth"], clip(0))


def test_frames_of_another_size_are_resized(pipe):
    # a 40px frame, red on its left half and blue on its right: the given frame comes back at 16px with the colours
    # where they were (only the two columns at the seam, 7 and 8, may mix them)
    halves = np.zeros((40, 40, 3), np.uint8)
    halves[:, :20, 0] = 255
    halves[:, 20:, 2] = 255
    out = pipe("a", images=[halves], output_type="np", seed=0, progress=False)
    assert out["frames"].shape == (FRAMES, SIZE, SIZE, 3)
    given = out["frames"][0].astype(int)
    assert (given[:, :7] == [255, 0, 0]).all() and (given[:, 9:] == [0, 0, 255]).all()
    assert (given[:, 7:9, 1] == 0).all() and (given[:, 7:9, 0] + given[:, 7:9, 2] >= 250).all()


def test_batched_prompts_match_single_calls_under_greedy_decoding(pipe):
    images = [[frame(0)], [frame(1)], [frame(2)]]
    batch = pipe(["a", "b", ""], images=images, task="prediction", output_type="np", temperature=0, progress=False,
                 batch_size=2)
    assert len(batch) == 3
    for prompt, image, result in zip(["a", "b", ""], images, batch):
        single = pipe(prompt, images=image, output_type="np", temperature=0, progress=False)
        assert np.array_equal(single["frames"], result["frames"])


@pytest.mark.parametrize("decoding", ["parallel", "frame_by_frame", "autoregressive"])
def test_seed_and_generator_make_sampling_reproducible(pipe, decoding):
    kwargs = dict(images=[frame(0)], output_type="np", decoding=decoding, num_inference_steps=3, progress=False,
                  top_k=5, top_p=0.9, guidance_scale=2.0)
    first = pipe("a", seed=3, **kwargs)["frames"]
    second = pipe("a", generator=torch.Generator().manual_seed(3), **kwargs)["frames"]
    assert np.array_equal(first, second)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(images=[frame(0)], task="infilling"), ValueError, "1 image\\(s\\) for task 'infilling'"),
        (dict(images=[frame(0)] * 6, task="prediction"), ValueError, "between 1 and 5"),
        (dict(given_frames={6: frame(0)}), ValueError, "out of range"),
        (dict(images=[frame(0)], task="sideways"), ValueError, "Unknown task 'sideways'"),
        (dict(images=[frame(0)], given_frames={0: frame(0)}), ValueError, "exactly one of"),
        (dict(video=list(clip(0))), ValueError, "pass `task`"),
        (dict(images=[frame(0).astype(np.float32)]), ValueError, "uint8"),
        (dict(images=[frame(0)], seed=1, generator=torch.Generator()), ValueError, "not both"),
        (dict(images=[frame(0)], output_type="gif"), ValueError, "output_type"),
        (dict(images=[frame(0)], beam_width=3), TypeError, "beam_width"),
    ],
)
def test_bad_inputs_name_the_problem(pipe, kwargs, error, message):
    with pytest.raises(error, match=message):
        pipe("a", progress=False, **kwargs)


def test_an_unreadable_video_file_is_named(pipe, tmp_path):
    broken = tmp_path / "broken_clip.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(VideoReadError, match="broken_clip.mp4"):
        pipe("a", video=str(broken), task="prediction", progress=False)
    with pytest.raises(FileNotFoundError, match="missing_frame.png"):
        pipe("a", images=[str(tmp_path / "missing_frame.png")], progress=False)


def test_save_helpers(pipe, tmp_path):
    out = pipe("a", video=list(clip(0)), task="infilling", seed=0, progress=False)
    gif = save_completion_gif(out, tmp_path / "out.gif")
    assert Image.open(gif).n_frames == FRAMES
    mp4 = save_completion_video(out, tmp_path / "out.mp4")
    assert count_frames(mp4) == FRAMES
    grid = Image.open(save_completion_grid(out, tmp_path / "grid.png"))
    assert grid.width >= FRAMES * SIZE * 2 and grid.height >= 3 * SIZE * 2  # given, completion, ground truth rows


def test_command_line(model_dir, tmp_path, capsys):
    Image.fromarray(frame(0)).save(tmp_path / "first.png")
    code = cli_main(["complete", "--model", str(model_dir), "--image", str(tmp_path / "first.png"), "--prompt",
                     "the red circle moves left", "--task", "prediction", "--out", str(tmp_path / "out.gif"),
                     "--grid", str(tmp_path / "grid.png"), "--steps", "2"])
    assert code == 0 and "wrote" in capsys.readouterr().out
    assert Image.open(tmp_path / "out.gif").n_frames == FRAMES
    assert (tmp_path / "grid.png").is_file()
    write_video(tmp_path / "clip.mp4", clip(1))
    cli_main(["complete", "--model", str(model_dir), "--video", str(tmp_path / "clip.mp4"), "--prompt", "",
              "--task", "rewind", "--out", str(tmp_path / "out.mp4"), "--steps", "2"])
    assert count_frames(tmp_path / "out.mp4") == FRAMES
    with pytest.raises(SystemExit, match="--out"):
        cli_main(["complete", "--model", str(model_dir), "--image", str(tmp_path / "first.png"), "--prompt", "a",
                  "--out", str(tmp_path / "out.avi")])


# -- the Pipeline contract: settings at construction and at call time, lists, dicts, iterators --------------------


def test_settings_given_to_pipeline_apply_and_a_call_overrides_them(model_dir):
    # (`task` is the pipeline's own name in `pipeline(...)`; the completion task is chosen per call)
    configured = pipeline(TASK, model=str(model_dir), output_type="np", num_given_frames=2, seed=5, progress=False,
                          num_inference_steps=3, decoding="autoregressive", batch_size=2)
    assert configured._batch_size == 2
    out = configured("a", video=list(clip(0)), task="rewind")
    assert isinstance(out["frames"], np.ndarray) and out["given_frame_indices"] == [FRAMES - 2, FRAMES - 1]
    plain = pipeline(TASK, model=str(model_dir))
    same = plain("a", video=list(clip(0)), task="rewind", output_type="np", num_given_frames=2, seed=5,
                 progress=False, num_inference_steps=3, decoding="autoregressive")
    np.testing.assert_array_equal(out["frames"], same["frames"])  # every construction setting took effect
    other = plain("a", video=list(clip(0)), task="rewind", output_type="np", num_given_frames=2, seed=5,
                  progress=False, num_inference_steps=3)
    assert not np.array_equal(out["frames"], other["frames"])  # the decoding setting mattered
    overridden = configured("a", video=list(clip(0)), task="prediction", output_type="pt", num_given_frames=1)
    assert overridden["given_frame_indices"] == [0] and isinstance(overridden["frames"], torch.Tensor)


def test_dicts_lists_and_iterators_of_inputs(pipe):
    requests = [{"prompt": "a", "images": [frame(1)]}, {"prompt": "b", "given_frames": {2: frame(2)}},
                {"prompt": "", "video": list(clip(3))}]
    settings = dict(output_type="np", temperature=0, progress=False, task=None)
    as_list = pipe(requests[:2], batch_size=2, **settings)
    assert [result["prompt"] for result in as_list] == ["a", "b"]
    assert [result["given_frame_indices"] for result in as_list] == [[0], [2]]
    one_by_one = [pipe(request, **settings) for request in requests[:2]]
    for batched, single in zip(as_list, one_by_one):
        np.testing.assert_array_equal(batched["frames"], single["frames"])
    lazy = pipe((request for request in requests[:2]), batch_size=2, **settings)
    assert not isinstance(lazy, list)  # an iterator: results come as they are made
    for streamed, expected in zip(lazy, as_list):
        np.testing.assert_array_equal(streamed["frames"], expected["frames"])
    with pytest.raises(ValueError, match="With `video`, pass `task`"):
        pipe(requests[2], **settings)
    with pytest.raises(ValueError, match="An input dict holds `prompt`"):
        pipe({"text": "a", "images": [frame(1)]}, progress=False)
    with pytest.raises(ValueError, match="inside each dict"):
        pipe(requests[:1], images=[[frame(1)]], progress=False)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "2"])
def test_a_batch_size_that_is_not_a_positive_integer_is_refused(pipe, model_dir, batch_size):
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        pipe(["a"], images=[[frame(1)]], batch_size=batch_size, progress=False)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        pipeline(TASK, model=str(model_dir), batch_size=batch_size)
