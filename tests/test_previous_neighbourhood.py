"""The decoder's previous- and next-frame neighbourhoods (`MMVGConfig.previous_frame_radius`, `next_frame_copy`,
issue 17): what each offset carries, and that a model built with them trains and decodes in both modes."""

import pytest
import torch

from transformers_mmvg import MMVGConfig
from transformers_mmvg.modeling_mmvg import adjacent_frame, neighbourhood


def test_each_offset_carries_the_neighbouring_code_and_its_known_flag():
    # one clip, one frame, a 3x3 grid; code of position (r, c) is the scalar 10 * r + c + 1
    codes = (10 * torch.arange(3.0)[:, None] + torch.arange(3.0) + 1).view(1, 1, 3, 3, 1)
    known = torch.ones(1, 1, 3, 3, dtype=torch.bool)
    known[0, 0, 0, 1] = False  # (0, 1) is masked
    features = neighbourhood(codes, known, radius=1)
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

    model = tiny_model(previous_frame_radius=1, previous_frame_copy=True, next_frame_copy=True)
    for parameter in (model.model.embeddings.next_token_projection.weight, model.head.next_copy_weights.weight):
        torch.nn.init.normal_(parameter)  # zero at the start: give the next frame's terms a part
    embeddings = model.model.embeddings
    generator = torch.Generator().manual_seed(0)
    token_ids = torch.randint(0, 32, (2, 6, 4, 4), generator=generator)
    known = torch.rand(2, 6, 4, 4, generator=generator) < 0.5
    known[:, 2] = True  # a finished frame, which does not read frame 3
    whole = embeddings.decoder_inputs(token_ids, known).view(2, 6, 16, -1)
    for frame in range(6):
        assert torch.allclose(embeddings.decoder_inputs(token_ids, known, frame_index=frame)[:, :16], whole[:, frame])
    hidden = torch.randn(2, 6 * 16, model.config.hidden_size, generator=generator)
    codes = torch.randn(32, model.config.tvq_config.codebook_dim, generator=generator)
    whole_logits = model.head(hidden, codes, token_ids, known).view(2, 6, 16, 32)
    for frame in range(6):
        one = model.head(hidden.view(2, 6, 16, -1)[:, frame], codes, token_ids, known, frame_index=frame)
        assert torch.allclose(one, whole_logits[:, frame])


def test_the_next_frame_is_read_only_by_frames_with_masked_tokens():
    token_ids = torch.arange(4 * 4).view(1, 4, 2, 2)  # frame t holds ids 4t .. 4t + 3
    known = torch.ones(1, 4, 2, 2, dtype=torch.bool)
    known[0, 1, 0, 0] = False  # frame 1 has a masked token; frames 0, 2, 3 are finished
    ids, flags = adjacent_frame(token_ids, known, 1)
    assert ids[0, :3].flatten(1).tolist() == [[4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert flags[0].flatten(1).tolist() == [[False] * 4, [True] * 4, [False] * 4, [False] * 4]
    ids, flags = adjacent_frame(token_ids, known, -1)
    assert ids[0, 1:].flatten(1).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert flags[0].flatten(1).tolist() == [[False] * 4, [True] * 4, [False, True, True, True], [True] * 4]
    one_ids, one_flags = adjacent_frame(token_ids, known, 1, frame_index=1)
    assert torch.equal(one_ids[:, 0], token_ids[:, 2]) and one_flags.all()
    with pytest.raises(ValueError, match="step"):
        adjacent_frame(token_ids, known, 2)


@pytest.mark.parametrize("copy", ["none", "previous", "both"])
@pytest.mark.parametrize("decoding", ["parallel", "frame_by_frame", "autoregressive"])
def test_a_model_with_a_neighbourhood_trains_and_completes(decoding, copy):
    from tiny_models import tiny_model, tiny_processor

    from transformers_mmvg.memory import mmvg_parameter_counts

    model = tiny_model(previous_frame_radius=1, previous_frame_copy=copy != "none", next_frame_copy=copy == "both")
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
    assert copy == "none" or model.head.copy_weights.weight.grad.abs().sum() > 0
    if copy == "both":
        assert model.model.embeddings.next_token_projection.weight.grad.abs().sum() > 0
        assert model.head.next_copy_weights.weight.grad.abs().sum() > 0
    model.eval()
    given = torch.zeros(2, 6, dtype=torch.bool)
    given[:, 0] = True
    result = model.complete(text["input_ids"], text["attention_mask"], pixels, given, decoding=decoding,
                            num_inference_steps=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(result.frames[given], pixels[given])


def test_the_copy_term_adds_each_offsets_weight_to_the_token_found_there():
    """`previous_frame_copy`: with the head's other terms at zero and a weight on offset (0, +1) only, every token
    whose right-hand neighbour in the previous frame is known gets that neighbour's id as its argmax."""
    from tiny_models import tiny_model

    model = tiny_model(previous_frame_radius=1, previous_frame_copy=True)
    head = model.head
    torch.nn.init.zeros_(head.code_query.weight), torch.nn.init.zeros_(head.code_query.bias)
    torch.nn.init.zeros_(head.class_logits.weight), torch.nn.init.zeros_(head.class_logits.bias)
    torch.nn.init.zeros_(head.copy_weights.weight)
    with torch.no_grad():
        head.copy_weights.bias.zero_()
        head.copy_weights.bias[5] = 4.0  # offset 5 = (dy, dx) = (0, +1)
    generator = torch.Generator().manual_seed(0)
    token_ids = torch.randint(0, 32, (2, 6, 4, 4), generator=generator)
    known = torch.rand(2, 6, 4, 4, generator=generator) < 0.6
    hidden = torch.randn(2, 6 * 16, model.config.hidden_size, generator=generator)
    logits = head(hidden, torch.randn(32, model.config.tvq_config.codebook_dim), token_ids, known).view(2, 6, 4, 4, 32)
    copied = torch.zeros(2, 6, 4, 4, dtype=torch.bool)
    copied[:, 1:, :, :3] = known[:, :-1, :, 1:]  # the right-hand neighbour in frame t - 1 is known
    expected = torch.zeros_like(token_ids)
    expected[:, 1:, :, :3] = token_ids[:, :-1, :, 1:]
    assert torch.equal(logits.argmax(-1)[copied], expected[copied])
    assert torch.equal(logits.amax(-1)[copied], torch.full((int(copied.sum()),), 4.0))
    assert torch.equal(logits[~copied], torch.zeros_like(logits[~copied]))  # nothing known there: no term
    # one frame's logits (autoregressive decoding) equal that frame of the whole clip's
    for frame in range(6):
        one = head(hidden.view(2, 6, 16, -1)[:, frame], torch.zeros(32, model.config.tvq_config.codebook_dim),
                   token_ids, known, frame_index=frame)
        whole = head(hidden, torch.zeros(32, model.config.tvq_config.codebook_dim), token_ids, known)
        assert torch.equal(one, whole.view(2, 6, 16, 32)[:, frame])


def test_the_copy_term_needs_the_previous_frame_input():
    with pytest.raises(ValueError, match="previous_frame_copy"):
        MMVGConfig(previous_frame_copy=True, use_previous_frame_input=False)
    with pytest.raises(ValueError, match="next_frame_copy"):
        MMVGConfig(next_frame_copy=True)


def test_autoregressive_decoding_with_the_cache_equals_recomputing_the_whole_clip():
    """With the next frame's terms, a frame's cached keys/values (computed once it is finished, while the next frame
    is still masked) must equal what a pass over the whole clip computes at every later step."""
    from tiny_models import tiny_model

    from transformers_mmvg.decoding import autoregressive_decode
    from transformers_mmvg.masking import given_mask_from_indices
    from transformers_mmvg.modeling_mmvg import MMVGVideoLogits

    model = tiny_model(previous_frame_radius=1, previous_frame_copy=True, next_frame_copy=True).eval()
    for name, parameter in model.named_parameters():
        if "next" in name:
            torch.nn.init.normal_(parameter)  # zero at the start: give the next frame's terms a part
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, 1000, (3, 5), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    token_ids = torch.randint(0, 32, (3, 6, 4, 4), generator=generator)
    given = given_mask_from_indices([0, 5], 6)[None].expand(3, -1)
    known = given[:, :, None, None].expand_as(token_ids).clone()
    encoded = model.model.encode(input_ids, attention_mask, token_ids, given)
    states, mask = encoded.encoder_last_hidden_state, encoded.encoder_attention_mask
    seen = {"cached": [], "whole": []}

    def recording(name, logits_fn):
        def record(ids, flags, frame):
            logits = logits_fn(ids, flags, frame)
            seen[name].append(logits)
            return logits

        return record

    cached = recording("cached", MMVGVideoLogits(model, states, mask))
    whole = recording("whole", lambda ids, flags, frame: model.video_logits(ids, flags, states, mask)[:, frame])
    with torch.no_grad():
        first = autoregressive_decode(cached, token_ids, known, temperature=0)
        second = autoregressive_decode(whole, token_ids, known, temperature=0)
    assert torch.equal(first, second) and len(seen["cached"]) == 4 * 16
    for one, other in zip(seen["cached"], seen["whole"]):
        torch.testing.assert_close(one, other, atol=1e-5, rtol=1e-5)
