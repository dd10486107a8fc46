"""The decoder's previous-frame neighbourhood (`MMVGConfig.previous_frame_radius`, issue 17): what each offset
carries, and that a model built with it trains and decodes in both modes."""

import pytest
import torch

from transformers_mmvg import MMVGConfig
from transformers_mmvg.modeling_mmvg import previous_neighbourhood


def test_each_offset_carries_the_neighbouring_code_and_its_known_flag():
    # one clip, one frame, a 3x3 grid; code of position (r, c) is the scalar 10 * r + c + 1
    codes = (10 * torch.arange(3.0)[:, None] + torch.arange(3.0) + 1).view(1, 1, 3, 3, 1)
    known = torch.ones(1, 1, 3, 3, dtype=torch.bool)
    known[0, 0, 0, 1] = False  # (0, 1) is masked
    features = previous_neighbourhood(codes, known, radius=1)
    assert features.shape == (1, 1, 3, 3, 9 * 2)
    offsets = features[0, 0].view(3, 3, 9, 2)  # (row, column, offset, [code, known])
    # at the centre (1, 1): offset k is (dy, dx) = (k // 3 - 1, k % 3 - 1); the masked (0, 1) gives zeros
    assert offsets[1, 1, :, 0].tolist() == [1.0, 0.0, 3.0, 11.0, 12.0, 13.0, 21.0, 22.0, 23.0]
    assert offsets[1, 1, :, 1].tolist() == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    # at the corner (0, 0): the offsets off the grid are zeros, code and flag
    assert offsets[0, 0, :, 0].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 11.0, 12.0]
    assert offsets[0, 0, :, 1].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]


def test_radius_needs_the_previous_frame_input():
    with pytest.raises(ValueError, match="previous_frame_radius"):
        MMVGConfig(previous_frame_radius=1, use_previous_frame_input=False)
    with pytest.raises(ValueError, match="previous_frame_radius"):
        MMVGConfig(previous_frame_radius=-1)


def test_one_frames_inputs_equal_that_frame_of_the_whole_clips():
    # autoregressive decoding embeds one frame at a time: it must see what the parallel path sees
    from tiny_models import tiny_model

    model = tiny_model(previous_frame_radius=1)
    embeddings = model.model.embeddings
    generator = torch.Generator().manual_seed(0)
    token_ids = torch.randint(0, 32, (2, 6, 4, 4), generator=generator)
    known = torch.rand(2, 6, 4, 4, generator=generator) < 0.5
    whole = embeddings.decoder_inputs(token_ids, known).view(2, 6, 16, -1)
    for frame in range(6):
        assert torch.allclose(embeddings.decoder_inputs(token_ids, known, frame_index=frame)[:, :16], whole[:, frame])


@pytest.mark.parametrize("copy", [False, True, "frame"])
@pytest.mark.parametrize("decoding", ["parallel", "autoregressive"])
def test_a_model_with_a_neighbourhood_trains_and_completes(decoding, copy):
    from tiny_models import tiny_model, tiny_processor

    from transformers_mmvg.memory import mmvg_parameter_counts

    model = tiny_model(previous_frame_radius=1, previous_frame_copy=bool(copy), frame_copy_bias=copy == "frame")
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    assert mmvg_parameter_counts(model.config)[0] == trainable
    processor = tiny_processor()
    pixels = torch.rand(2, 6, 3, 16, 16) * 2 - 1
    text = processor(text=["the camera pans left", "the camera zooms in"], return_tensors="pt")
    model.train()
    inputs = model.draw_training_masks(text["input_ids"], text["attention_mask"], pixel_values_videos=pixels,
                                       generator=torch.Generator().manual_seed(0))
    loss = model(**inputs).loss
    loss.backward()
    assert torch.isfinite(loss) and model.model.embeddings.previous_token_projection.weight.grad.abs().sum() > 0
    assert not copy or model.head.copy_weights.weight.grad.abs().sum() > 0
    assert copy != "frame" or model.head.frame_copy_bias.offset_weights.weight.grad.abs().sum() > 0
    model.eval()
    given = torch.zeros(2, 6, dtype=torch.bool)
    given[:, 0] = True
    result = model.complete(text["input_ids"], text["attention_mask"], pixels, given, decoding=decoding,
                            num_inference_steps=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(result.frames[given], pixels[given])


def _copy_case(frame_copy_bias: bool):
    """A tiny model whose head has every term at zero but a weight of 4 on copy offset (0, +1): in the per-token
    part, or in the per-frame part (`frame_copy_bias`); with random decoder states, tokens, known flags and encoder
    states."""
    from tiny_models import tiny_model

    model = tiny_model(previous_frame_radius=1, previous_frame_copy=True, frame_copy_bias=frame_copy_bias)
    head = model.head
    for linear in (head.code_query, head.class_logits, head.copy_weights):
        torch.nn.init.zeros_(linear.weight), torch.nn.init.zeros_(linear.bias)
    weighted = head.frame_copy_bias.offset_weights if frame_copy_bias else head.copy_weights
    torch.nn.init.zeros_(weighted.weight)
    with torch.no_grad():
        weighted.bias.zero_()
        weighted.bias[5] = 4.0  # offset 5 = (dy, dx) = (0, +1)
    generator = torch.Generator().manual_seed(0)
    hidden_size = model.config.hidden_size
    inputs = {
        "token_ids": torch.randint(0, 32, (2, 6, 4, 4), generator=generator),
        "known": torch.rand(2, 6, 4, 4, generator=generator) < 0.6,
        "encoder_hidden_states": torch.randn(2, 7, hidden_size, generator=generator),
        "encoder_attention_mask": torch.ones(2, 7, dtype=torch.bool),
    }
    hidden = torch.randn(2, 6 * 16, hidden_size, generator=generator)
    return model, hidden, inputs


@pytest.mark.parametrize("frame_copy_bias", [False, True])
def test_the_copy_term_adds_each_offsets_weight_to_the_token_found_there(frame_copy_bias):
    """`previous_frame_copy` (and its per-frame part, `frame_copy_bias`): with the head's other terms at zero and a
    weight on offset (0, +1) only, every token whose right-hand neighbour in the previous frame is known gets that
    neighbour's id as its argmax."""
    model, hidden, inputs = _copy_case(frame_copy_bias)
    head, token_ids, known = model.head, inputs["token_ids"], inputs["known"]
    codes = torch.randn(32, model.config.tvq_config.codebook_dim)
    logits = head(hidden, codes, **inputs).view(2, 6, 4, 4, 32)
    copied = torch.zeros(2, 6, 4, 4, dtype=torch.bool)
    copied[:, 1:, :, :3] = known[:, :-1, :, 1:]  # the right-hand neighbour in frame t - 1 is known
    expected = torch.zeros_like(token_ids)
    expected[:, 1:, :, :3] = token_ids[:, :-1, :, 1:]
    assert torch.equal(logits.argmax(-1)[copied], expected[copied])
    assert torch.equal(logits.amax(-1)[copied], torch.full((int(copied.sum()),), 4.0))
    assert torch.equal(logits[~copied], torch.zeros_like(logits[~copied]))  # nothing known there: no term
    # one frame's logits (autoregressive decoding) equal that frame of the whole clip's
    whole = head(hidden, codes, **inputs).view(2, 6, 16, 32)
    for frame in range(6):
        one = head(hidden.view(2, 6, 16, -1)[:, frame], codes, frame_index=frame, **inputs)
        assert torch.equal(one, whole[:, frame])


def test_the_copy_term_needs_the_previous_frame_input():
    with pytest.raises(ValueError, match="previous_frame_copy"):
        MMVGConfig(previous_frame_copy=True, use_previous_frame_input=False)


def test_frame_copy_bias_needs_the_copy_term():
    with pytest.raises(ValueError, match="frame_copy_bias"):
        MMVGConfig(previous_frame_radius=1, frame_copy_bias=True)


def test_previous_frame_matches_read_a_pan_as_one_offset():
    """Frame 1 is frame 0 with its content slid one column right (a camera panning left); frame 2 equals frame 1.
    Frame 2's features show the pan (offset (0, -1), index 3); frame 3's show no motion (the centre, index 4)."""
    from transformers_mmvg.modeling_mmvg import previous_frame_matches

    frame0 = torch.arange(16).view(4, 4)
    frame1 = torch.cat([torch.full((4, 1), 99), frame0[:, :-1]], dim=1)
    token_ids = torch.stack([frame0, frame1, frame1, frame1])[None]
    known = torch.ones(1, 4, 4, 4, dtype=torch.bool)
    features = previous_frame_matches(token_ids, known, radius=1)
    assert features.shape == (1, 4, 10)
    assert torch.equal(features[0, :2], torch.zeros(2, 10))  # nothing before frame 1 to compare
    pan = torch.zeros(10)
    pan[3], pan[9] = 1.0, 1.0  # every pair at (0, -1) matches (the new column has none on the grid); all known
    assert torch.equal(features[0, 2], pan)
    # no motion: the centre matches everywhere; the column of 99s also matches one row up or down (3 of 12 pairs)
    assert torch.equal(features[0, 3], torch.tensor([0.0, 0.25, 0.0, 0.0, 1.0, 0.0, 0.0, 0.25, 0.0, 1.0]))
    known[0, 1, :, :2] = False  # half of frame 1 unknown: the shares count known pairs only
    features = previous_frame_matches(token_ids, known, radius=1)
    assert features[0, 2, 3] == 1.0 and features[0, 2, 9] == 0.5


def test_the_frame_copy_bias_reads_the_encoder_alike_for_a_frames_tokens():
    """`frame_copy_bias` with weights on what its query read: one weight per offset and frame, which depends on the
    encoder states; one frame's logits still equal that frame of the whole clip's."""
    model, hidden, inputs = _copy_case(frame_copy_bias=True)
    frame_part = model.head.frame_copy_bias
    torch.nn.init.normal_(frame_part.offset_weights.weight)
    weights = frame_part(**inputs)
    assert weights.shape == (2, 6, 9)
    doubled = {**inputs, "encoder_hidden_states": 2 * inputs["encoder_hidden_states"]}
    assert not torch.allclose(weights, frame_part(**doubled))
    codes = torch.zeros(32, model.config.tvq_config.codebook_dim)
    whole = model.head(hidden, codes, **inputs).view(2, 6, 16, 32)
    for frame in range(6):
        one = model.head(hidden.view(2, 6, 16, -1)[:, frame], codes, frame_index=frame, **inputs)
        assert torch.allclose(one, whole[:, frame], atol=1e-6)
