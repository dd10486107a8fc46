"""The pure pieces of stage 2: tasks as given frames, the [SPAN] layout, adaptive p_t, training masks, sampling and
the parallel decoding schedule."""

import math

import pytest
import torch

from transformers_mmvg.decoding import filter_logits, masked_after_step, parallel_decode, sample_tokens
from transformers_mmvg.masking import (
    encoder_visual_layout,
    given_mask_from_indices,
    sample_given_frames,
    sample_token_mask,
    span_runs,
    task_given_indices,
    update_mask_probabilities,
)


def layout_as_text(given_indices, num_frames, tokens_per_frame=2):
    """The encoder's visual sequence of one clip written out: `z3.1` is token 1 of frame 3, `S2` a span at 2."""
    mask = given_mask_from_indices(given_indices, num_frames)[None]
    layout = encoder_visual_layout(mask, tokens_per_frame)
    items = []
    for frame, spatial, span, real in zip(
        layout.frame_index[0].tolist(),
        layout.spatial_index[0].tolist(),
        layout.is_span[0].tolist(),
        layout.attention_mask[0].tolist(),
    ):
        if real:
            items.append(f"S{frame}" if span else f"z{frame}.{spatial}")
    return items


# -- tasks and the [SPAN] layout -------------------------------------------------------------------------------


def test_task_given_indices():
    assert task_given_indices("prediction", 8) == [0]
    assert task_given_indices("rewind", 8) == [7]
    assert task_given_indices("infilling", 8) == [0, 7]
    assert task_given_indices("prediction", 8, num_given=3) == [0, 1, 2]
    assert task_given_indices("rewind", 8, num_given=2) == [6, 7]
    assert task_given_indices("infilling", 8, num_given=3) == [0, 1, 7]


@pytest.mark.parametrize(
    "task, num_given, message",
    [("sideways", 1, "Unknown task"), ("prediction", 8, "between 1 and 7"), ("infilling", 1, "between 2 and 7")],
)
def test_task_given_indices_rejects_bad_requests(task, num_given, message):
    with pytest.raises(ValueError, match=message):
        task_given_indices(task, 8, num_given=num_given)


def test_given_mask_rejects_out_of_range_and_repeats():
    assert given_mask_from_indices([0, 3], 4).tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="out of range"):
        given_mask_from_indices([8], 8)
    with pytest.raises(ValueError, match="out of range"):
        given_mask_from_indices([-1], 8)
    with pytest.raises(ValueError, match="distinct"):
        given_mask_from_indices([2, 2], 8)


def test_span_layout_of_the_three_tasks():
    # the paper's table: prediction [z_1, SPAN], rewind [SPAN, z_N], infilling [z_1, SPAN, z_N]
    assert layout_as_text([0], 5) == ["z0.0", "z0.1", "S1"]
    assert layout_as_text([4], 5) == ["S0", "z4.0", "z4.1"]
    assert layout_as_text([0, 4], 5) == ["z0.0", "z0.1", "S1", "z4.0", "z4.1"]


def test_span_layout_of_a_random_mask_and_of_no_given_frame():
    assert layout_as_text([1, 4], 7) == ["S0", "z1.0", "z1.1", "S2", "z4.0", "z4.1", "S5"]
    assert layout_as_text([], 6) == ["S0"]
    assert layout_as_text([0, 1, 2], 3) == ["z0.0", "z0.1", "z1.0", "z1.1", "z2.0", "z2.1"]
    assert span_runs(given_mask_from_indices([1, 4], 7)) == [(0, 1), (2, 2), (5, 2)]


def test_span_layout_pads_a_batch_and_gathers_token_ids():
    given = torch.stack([given_mask_from_indices([0], 3), given_mask_from_indices([0, 2], 3)])
    layout = encoder_visual_layout(given, tokens_per_frame=2)
    assert layout.attention_mask.tolist() == [[True, True, True, False, False], [True] * 5]
    token_ids = torch.tensor([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 10], [11, 12]]])
    assert layout.gather_token_ids(token_ids).tolist() == [[1, 2, 0, 0, 0], [7, 8, 0, 11, 12]]


# -- adaptive p_t --------------------------------------------------------------------------------------------------


def test_mask_probability_update_matches_the_formula_on_a_worked_example():
    # p_t <- p_t + alpha * ((L_t / L_M) * sum(p) - p_t); L_M = 8, sum(p) = 2, targets 0.25 0.25 0.5 1.0
    p = torch.tensor([0.5, 0.5, 0.5, 0.5])
    losses = torch.tensor([1.0, 1.0, 2.0, 4.0])
    updated = update_mask_probabilities(p, losses, alpha=0.1)
    assert torch.allclose(updated, torch.tensor([0.475, 0.475, 0.5, 0.55]))
    # alpha = 1 jumps to the targets; the clamp bounds them
    assert torch.allclose(update_mask_probabilities(p, losses, alpha=1.0), torch.tensor([0.25, 0.25, 0.5, 1.0]))
    assert torch.allclose(
        update_mask_probabilities(p, losses, alpha=1.0, bounds=(0.3, 0.9)), torch.tensor([0.3, 0.3, 0.5, 0.9])
    )


def test_mask_probability_update_skips_positions_without_loss():
    p = torch.tensor([0.4, 0.6, 0.8])
    losses = torch.tensor([3.0, 0.0, 1.0])
    valid = torch.tensor([True, False, True])
    # over the valid positions: L_M = 4, sum(p) = 1.2 -> targets 0.9 and 0.3
    updated = update_mask_probabilities(p, losses, alpha=0.5, valid=valid)
    assert torch.allclose(updated, torch.tensor([0.65, 0.6, 0.55]))
    assert torch.equal(update_mask_probabilities(p, torch.zeros(3), alpha=0.5), p)


# -- training masks ------------------------------------------------------------------------------------------------


def test_sample_given_frames_follows_p_and_keeps_a_hidden_frame():
    generator = torch.Generator().manual_seed(0)
    p = torch.tensor([0.0, 1.0, 0.5, 0.5])
    given = sample_given_frames(p, 4000, generator=generator)
    assert given[:, 0].all() and not given[:, 1].any()
    assert abs(given[:, 2].float().mean().item() - 0.5) < 0.03
    everything_given = sample_given_frames(torch.zeros(5), 50, generator=generator)
    assert (~everything_given).sum(dim=1).tolist() == [1] * 50


def test_sample_given_frames_with_tasks_only():
    generator = torch.Generator().manual_seed(0)
    given = sample_given_frames(torch.full((6,), 0.5), 300, task_probability=1.0, generator=generator)
    patterns = {tuple(row.nonzero().flatten().tolist()) for row in given}
    assert patterns == {(0,), (5,), (0, 5)}


def test_token_mask_never_masks_given_frames_and_always_masks_something():
    generator = torch.Generator().manual_seed(0)
    given = sample_given_frames(torch.full((8,), 0.5), 500, generator=generator)
    mask = sample_token_mask(given, tokens_per_frame=4, sequential_probability=0.5, generator=generator)
    assert mask.shape == (500, 8, 4)
    assert not (mask & given[:, :, None]).any()
    assert mask.flatten(1).any(dim=1).all()


def test_a_clip_with_every_frame_given_masks_nothing():
    given = torch.ones(3, 4, dtype=torch.bool)
    for sequential_probability in (0.0, 1.0):
        assert not sample_token_mask(given, 2, sequential_probability).any()


def test_sequential_token_mask_is_one_step_of_frame_by_frame_decoding():
    generator = torch.Generator().manual_seed(1)
    given = given_mask_from_indices([0], 6)[None].expand(200, -1)
    mask = sample_token_mask(given, tokens_per_frame=4, sequential_probability=1.0, generator=generator)
    for clip in mask:
        per_frame = clip.sum(dim=1).tolist()  # masked tokens per frame
        current = next(index for index, count in enumerate(per_frame) if count > 0)
        assert current >= 1
        assert all(count == 0 for count in per_frame[:current])
        assert all(count == 4 for count in per_frame[current + 1 :])


def test_parallel_token_mask_ratio_follows_the_cosine_schedule():
    generator = torch.Generator().manual_seed(2)
    given = torch.zeros(4000, 4, dtype=torch.bool)
    mask = sample_token_mask(given, tokens_per_frame=16, sequential_probability=0.0, generator=generator)
    ratio = mask.flatten(1).float().mean(dim=1)
    # r = cos(pi/2 u), u uniform: E[r] = 2/pi
    assert abs(ratio.mean().item() - 2 / math.pi) < 0.02


# -- sampling and the parallel schedule ----------------------------------------------------------------------------


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [True, True, False, False]
    # nucleus 0.75: 0.5 + 0.3 reaches it, the rest go
    assert torch.isfinite(filter_logits(logits, top_p=0.75)).tolist() == [True, True, False, False]
    assert torch.isfinite(filter_logits(logits, top_p=0.4)).tolist() == [True, False, False, False]
    assert torch.isfinite(filter_logits(logits)).all()


def test_sample_tokens_greedy_and_seeded():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
    ids, confidence = sample_tokens(logits, temperature=0)
    assert ids.tolist() == [1, 0]
    assert torch.allclose(confidence, logits.softmax(-1).max(-1).values)
    first = sample_tokens(logits.repeat(32, 1), generator=torch.Generator().manual_seed(3))[0]
    second = sample_tokens(logits.repeat(32, 1), generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(first, second)


def test_masked_after_step_is_the_cosine_schedule():
    remaining = [int(masked_after_step(torch.tensor([16]), step, 4)) for step in range(4)]
    # floor(16 cos(pi/2 * s/4)) for s = 1, 2, 3, then 0
    assert remaining == [14, 11, 6, 0]
    assert [int(masked_after_step(torch.tensor([3]), step, 12)) for step in range(3)] == [2, 1, 0]


def test_parallel_decode_keeps_known_tokens_and_uses_num_steps_calls():
    calls = []
    target = torch.arange(20) % 7

    def logits_fn(token_ids, known, frame=None):
        calls.append(known.sum().item())
        return torch.nn.functional.one_hot(target, 7).float().expand(2, -1, -1) * 10

    token_ids = torch.full((2, 20), 5)
    known = torch.zeros(2, 20, dtype=torch.bool)
    known[:, :4] = True
    out = parallel_decode(logits_fn, token_ids, known, num_steps=5, temperature=0)
    assert len(calls) == 5
    assert calls == sorted(calls) and calls[0] == 8  # known tokens only grow
    assert torch.equal(out[:, :4], torch.full((2, 4), 5))
    assert torch.equal(out[:, 4:], target[4:].expand(2, -1))


def test_parallel_decode_rejects_zero_steps():
    with pytest.raises(ValueError, match="num_steps"):
        parallel_decode(lambda ids, known, frame: None, torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2).bool(), 0)


# -- frame-by-frame decoding -------------------------------------------------------------------------------------


def test_decoding_order_starts_next_to_the_given_frames():
    from transformers_mmvg.decoding import decoding_order

    def known_of(*rows):  # one clip per row of given-frame flags, 2 x 2 tokens a frame
        return torch.tensor(rows, dtype=torch.bool)[:, :, None, None].expand(-1, -1, 2, 2)

    # prediction, rewind, infilling, two given frames inside, none given
    known = known_of([1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [1, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 0, 0, 0, 0])
    assert decoding_order(known).tolist() == [
        [1, 2, 3, 4, -1], [3, 2, 1, 0, -1], [1, 3, 2, -1, -1], [0, 2, 4, -1, -1], [0, 1, 2, 3, 4]
    ]
    # a frame with some known tokens is still decoded; a clip with nothing to do gets an empty order
    partly = known_of([1, 0, 0]).clone()
    partly[0, 2, 0, 0] = True
    assert decoding_order(partly).tolist() == [[1, 2]]
    assert decoding_order(known_of([1, 1])).shape == (1, 0)


def test_frame_by_frame_decode_finishes_each_frame_before_the_next():
    from transformers_mmvg.decoding import frame_by_frame_decode

    target = torch.arange(2 * 4 * 3).view(2, 4, 3) % 7  # (B, N, tokens)
    seen = []

    def logits_fn(token_ids, known, frame=None):
        seen.append(known.clone())
        return torch.nn.functional.one_hot(target, 7).float() * 10

    token_ids = torch.full((2, 4, 3), 5)
    known = torch.zeros(2, 4, 3, dtype=torch.bool)
    known[0, 0] = True  # clip 0: prediction from frame 0
    known[1, 3] = True  # clip 1: rewind from frame 3
    out = frame_by_frame_decode(logits_fn, token_ids, known, num_steps=2, temperature=0)
    assert len(seen) == 3 * 2  # three frames, two calls each
    # clip 0 goes forwards, clip 1 backwards: at the first call of the k-th frame, exactly the frames before it in
    # that order are finished and the rest are masked
    for rank, (forward, backward) in enumerate([(1, 2), (2, 1), (3, 0)]):
        first = seen[2 * rank]
        assert first[0].all(dim=-1).tolist() == [frame < forward for frame in range(4)]
        assert first[1].all(dim=-1).tolist() == [frame > backward for frame in range(4)]
        assert not first[0, forward].any() and not first[1, backward].any()
    assert torch.equal(out[0, 0], token_ids[0, 0]) and torch.equal(out[1, 3], token_ids[1, 3])  # given: unchanged
    assert torch.equal(out[0, 1:], target[0, 1:]) and torch.equal(out[1, :3], target[1, :3])
