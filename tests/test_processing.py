"""The offline CLIP tokenizer, MMVGVideoProcessor and MMVGProcessor."""

import logging

import huggingface_hub.constants
import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoConfig, AutoProcessor, AutoTokenizer, AutoVideoProcessor, CLIPTokenizer

from transformers_mmvg import MMVGConfig, MMVGProcessor, MMVGVideoProcessor, load_clip_tokenizer


BOS, EOS = 49406, 49407


@pytest.fixture
def hub_offline(monkeypatch):
    """Loading must work with the Hub unreachable: `HF_HUB_OFFLINE=1` (read by huggingface_hub at import)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def random_clip(num_frames=8, height=64, width=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


def clip_of_frame_numbers(num_frames):
    """Frame i is filled with the value i, so the output says which frames were sampled."""
    return np.broadcast_to(np.arange(num_frames, dtype=np.uint8)[:, None, None, None], (num_frames, 64, 64, 3)).copy()


def sampled_frame_numbers(pixel_values_videos):
    """Inverse of `clip_of_frame_numbers` after preprocessing, for the first clip."""
    return MMVGVideoProcessor().postprocess_video(pixel_values_videos)[0, :, 0, 0, 0].tolist()


# ---------------------------------------------------------------- CLIP tokenizer


def test_clip_tokenizer_matches_openai_ids():
    tokenizer = load_clip_tokenizer()
    assert isinstance(tokenizer, CLIPTokenizer)
    assert tokenizer("a photo of a cat").input_ids == [BOS, 320, 1125, 539, 320, 2368, EOS]
    assert tokenizer("hello world").input_ids == [BOS, 3306, 1002, EOS]
    # lower-cased, whitespace collapsed; "!" is byte symbol 0 + end-of-word = id 256
    assert tokenizer("A  PHOTO of a Cat!").input_ids == [BOS, 320, 1125, 539, 320, 2368, 256, EOS]
    # digits are split one per token: "1</w>" is byte symbol 16 + 256
    assert tokenizer("12").input_ids == [BOS, 272, 273, EOS]


def test_clip_tokenizer_vocabulary_and_special_tokens():
    tokenizer = load_clip_tokenizer()
    assert len(tokenizer) == 49408
    # 256 byte symbols, the same with "</w>", 48,894 merges ("i n" first, "jeky ll</w>" last), 2 specials
    ids = [0, 255, 256, 511, 512, 49405, 49406, 49407]
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "!", "Ń", "!</w>", "Ń</w>", "in", "jekyll</w>", "<|startoftext|>", "<|endoftext|>"
    ]  # fmt: skip
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (BOS, EOS, EOS)
    assert tokenizer.model_max_length == 77
    assert tokenizer.decode(tokenizer("a photo of a cat").input_ids, skip_special_tokens=True) == "a photo of a cat"


def test_clip_tokenizer_returns_a_fresh_object_each_call():
    first, second = load_clip_tokenizer(), load_clip_tokenizer(model_max_length=100)
    assert first is not second
    assert (first.model_max_length, second.model_max_length) == (77, 100)


def test_clip_tokenizer_truncates_long_captions_to_context_length():
    tokenizer = load_clip_tokenizer()
    ids = tokenizer("word " * 200, truncation=True).input_ids
    assert len(ids) == 77
    assert (ids[0], ids[-1]) == (BOS, EOS)


# ---------------------------------------------------------------- video processor


def test_video_processor_output_shape_dtype_and_exact_values():
    clip = np.zeros((8, 64, 64, 3), dtype=np.uint8)
    clip[..., 1] = 255
    clip[..., 2] = 128
    pixels = MMVGVideoProcessor()(clip).pixel_values_videos
    assert pixels.shape == (1, 8, 3, 64, 64)
    assert pixels.dtype == torch.float32
    assert torch.all(pixels[:, :, 0] == -1.0)
    assert torch.all(pixels[:, :, 1] == 1.0)
    torch.testing.assert_close(pixels[:, :, 2], torch.full((1, 8, 64, 64), 128 / 127.5 - 1), rtol=0, atol=1e-7)


def test_video_processor_accepts_numpy_torch_and_pil_frames_alike():
    clip = random_clip()
    processor = MMVGVideoProcessor()
    expected = processor(clip).pixel_values_videos
    channels_first = torch.from_numpy(clip).permute(0, 3, 1, 2)
    for frames in (torch.from_numpy(clip), channels_first, [PIL.Image.fromarray(frame) for frame in clip]):
        assert torch.equal(processor(frames).pixel_values_videos, expected)
    batch = processor([clip, channels_first]).pixel_values_videos
    assert batch.shape == (2, 8, 3, 64, 64)
    assert torch.equal(batch[1], expected[0])


def test_video_processor_converts_grayscale_and_rgba_to_rgb():
    processor = MMVGVideoProcessor()
    gray = np.full((8, 64, 64, 1), 200, dtype=np.uint8)
    expected = processor(np.repeat(gray, 3, axis=-1)).pixel_values_videos
    assert torch.equal(processor(gray).pixel_values_videos, expected)
    opaque = np.concatenate([np.repeat(gray, 3, axis=-1), np.full_like(gray, 255)], axis=-1)
    assert torch.equal(processor(opaque).pixel_values_videos, expected)


def test_video_processor_resizes_other_sizes_to_model_size():
    clip = np.zeros((8, 96, 80, 3), dtype=np.uint8)
    clip[:, :, 40:] = 255  # left half black, right half white
    pixels = MMVGVideoProcessor()(clip).pixel_values_videos
    assert pixels.shape == (1, 8, 3, 64, 64)
    assert torch.all(pixels[..., :30] == -1.0)
    assert torch.all(pixels[..., 34:] == 1.0)


def test_video_processor_postprocess_inverts_preprocess_exactly():
    clips = np.stack([random_clip(seed=0), random_clip(seed=1)])
    processor = MMVGVideoProcessor()
    pixels = processor(list(clips)).pixel_values_videos

    frames = processor.postprocess_video(pixels)
    assert frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, clips)
    np.testing.assert_array_equal(processor.postprocess_video(pixels[0]), clips[0])

    as_tensor = processor.postprocess_video(pixels, output_type="pt")
    assert as_tensor.dtype == torch.uint8
    assert torch.equal(as_tensor, torch.from_numpy(clips).permute(0, 1, 4, 2, 3))

    images = processor.postprocess_video(pixels, output_type="pil")
    assert len(images) == 2 and len(images[0]) == 8
    assert images[1][3].mode == "RGB" and images[1][3].size == (64, 64)
    np.testing.assert_array_equal(np.asarray(images[1][3]), clips[1, 3])


def test_video_processor_postprocess_clamps_and_rounds():
    uint8_levels = torch.tensor([-100.0, 0.0, 255.0, 900.0, 128.0, 100.3, 100.7])
    pixels = (uint8_levels / 127.5 - 1).view(1, 1, 1, -1).expand(1, 3, 1, -1)
    frames = MMVGVideoProcessor().postprocess_video(pixels)
    assert frames[0, 0, :, 0].tolist() == [0, 0, 255, 255, 128, 100, 101]


def test_video_processor_samples_frames_evenly():
    processor = MMVGVideoProcessor()
    assert sampled_frame_numbers(processor(clip_of_frame_numbers(8)).pixel_values_videos) == list(range(8))
    assert sampled_frame_numbers(processor(clip_of_frame_numbers(15)).pixel_values_videos) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert sampled_frame_numbers(processor(clip_of_frame_numbers(16), num_frames=4).pixel_values_videos) == [0, 5, 10, 15]
    kept = processor(clip_of_frame_numbers(16), do_sample_frames=False).pixel_values_videos
    assert sampled_frame_numbers(kept) == list(range(16))


def test_video_processor_save_and_load(tmp_path, hub_offline):
    processor = MMVGVideoProcessor(num_frames=16, size={"height": 32, "width": 32})
    processor.save_pretrained(tmp_path)
    for loaded in (MMVGVideoProcessor.from_pretrained(tmp_path), AutoVideoProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is MMVGVideoProcessor
        assert loaded.to_dict() == processor.to_dict()


@pytest.mark.parametrize(
    ("video", "message"),
    [
        (np.zeros((8, 64, 64, 2), dtype=np.uint8), "no channel axis"),
        (np.zeros((8, 64, 64, 5), dtype=np.uint8), "no channel axis"),
        (np.zeros((5, 64, 64, 3), dtype=np.uint8), "5 frames, fewer than the 8"),
        (np.zeros((1, 1, 8, 64, 64, 3), dtype=np.uint8), "expected frames of shape"),
        ("clip.mp4", "pass decoded frames"),
    ],
)
def test_video_processor_rejects_bad_inputs(video, message):
    with pytest.raises(ValueError, match=message):
        MMVGVideoProcessor()(video)


def test_video_processor_rejects_fps_and_unstackable_batches():
    processor = MMVGVideoProcessor()
    with pytest.raises(ValueError, match="not `fps`"):
        processor(random_clip(16), fps=2)
    with pytest.raises(ValueError, match="different numbers of frames"):
        processor([random_clip(8), random_clip(9)], do_sample_frames=False)


def test_video_processor_postprocess_rejects_bad_shapes():
    processor = MMVGVideoProcessor()
    with pytest.raises(ValueError, match="must have shape"):
        processor.postprocess_video(torch.zeros(8, 4, 64, 64))
    with pytest.raises(ValueError, match="must have shape"):
        processor.postprocess_video(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="floating point"):
        processor.postprocess_video(torch.zeros(8, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="output_type"):
        processor.postprocess_video(torch.zeros(8, 3, 64, 64), output_type="jpg")


# ---------------------------------------------------------------- processor


def test_processor_builds_offline_defaults():
    processor = MMVGProcessor()
    assert isinstance(processor.tokenizer, CLIPTokenizer)
    assert isinstance(processor.video_processor, MMVGVideoProcessor)


def test_processor_text_and_videos():
    processor = MMVGProcessor()
    clips = [random_clip(seed=0), random_clip(seed=1)]
    inputs = processor(text=["a photo of a cat", "a red circle moves to the left"], videos=clips)
    assert set(inputs) == {"input_ids", "attention_mask", "pixel_values_videos"}
    assert inputs.input_ids.tolist() == [
        [BOS, 320, 1125, 539, 320, 2368, EOS, EOS, EOS],
        [BOS, 320, 736, 7117, 6880, 531, 518, 1823, EOS],
    ]
    assert inputs.attention_mask.tolist() == [[1] * 7 + [0] * 2, [1] * 9]
    assert inputs.pixel_values_videos.shape == (2, 8, 3, 64, 64)
    assert torch.equal(inputs.pixel_values_videos, processor.video_processor(clips).pixel_values_videos)
    assert processor.batch_decode(inputs.input_ids, skip_special_tokens=True) == [
        "a photo of a cat",
        "a red circle moves to the left",
    ]
    np.testing.assert_array_equal(processor.postprocess_video(inputs.pixel_values_videos), np.stack(clips))


def test_processor_text_only_video_only_and_call_kwargs():
    processor = MMVGProcessor()
    assert set(processor("a cat")) == {"input_ids", "attention_mask"}
    assert processor("a cat", padding="max_length").input_ids.shape == (1, 77)
    only_video = processor(videos=clip_of_frame_numbers(16), num_frames=4)
    assert set(only_video) == {"pixel_values_videos"}
    assert sampled_frame_numbers(only_video.pixel_values_videos) == [0, 5, 10, 15]
    assert processor(["a cat"], return_tensors=None).input_ids == [[BOS, 320, 2368, EOS]]


def test_processor_truncates_long_captions_with_a_warning(caplog):
    processor = MMVGProcessor()
    with caplog.at_level(logging.WARNING):
        inputs = processor(["a cat", "word " * 100])
    assert inputs.input_ids.shape == (2, 77)
    assert inputs.input_ids[1, -1].item() == EOS
    assert "truncated to 77 tokens: #1 (102 tokens)" in caplog.text


def test_processor_rejects_bad_inputs():
    processor = MMVGProcessor()
    with pytest.raises(ValueError, match="needs `text`, `videos` or both"):
        processor()
    with pytest.raises(ValueError, match="2 captions for 1 videos"):
        processor(["a", "b"], random_clip())
    with pytest.raises(ValueError, match="string or a list of strings"):
        processor(["a", 3])
    with pytest.raises(ValueError, match="no channel axis"):
        processor("a cat", np.zeros((8, 64, 64, 2), dtype=np.uint8))


def test_processor_save_and_load_round_trip(tmp_path, hub_offline):
    processor = MMVGProcessor(video_processor=MMVGVideoProcessor(num_frames=16))
    processor.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()  # the processor files alone are enough

    captions = ["a photo of a cat", "a blue square bounces"]
    expected = processor(captions).input_ids
    for loaded in (MMVGProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is MMVGProcessor
        assert type(loaded.video_processor) is MMVGVideoProcessor
        assert loaded.video_processor.to_dict() == processor.video_processor.to_dict()
        assert loaded.tokenizer.model_max_length == 77
        assert torch.equal(loaded(captions).input_ids, expected)
    assert type(AutoVideoProcessor.from_pretrained(tmp_path)) is MMVGVideoProcessor
    assert AutoTokenizer.from_pretrained(tmp_path)("a photo of a cat").input_ids == [BOS, 320, 1125, 539, 320, 2368, EOS]


def test_config_registered_with_auto_config(tmp_path, hub_offline):
    config = MMVGConfig(num_frames=16, image_size=128)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is MMVGConfig
    assert (loaded.num_frames, loaded.image_size, loaded.text_vocab_size, loaded.max_text_length) == (16, 128, 49408, 77)
    with pytest.raises(ValueError, match="`num_frames` must be a positive integer"):
        MMVGConfig(num_frames=0)
