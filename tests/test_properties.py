"""Properties of the masking and decoding index logic for ANY number of frames and ANY set of given frames
(hypothesis draws them), and of the tiny model's completion for random given-frame sets."""

import functools
import math

import pytest
import torch
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from transformers_mmvg.decoding import masked_after_step, parallel_decode
from transformers_mmvg.masking import (
    TASKS,
    encoder_visual_layout,
    given_mask_from_indices,
    sample_token_mask,
    span_runs,
    task_given_indices,
    update_mask_probabilities,
)

from tiny_models import TINY, tiny_model

MAX_FRAMES = 64
FAST = settings(max_examples=60, deadline=None)


@st.composite
def given_masks(draw, min_frames=1, max_frames=MAX_FRAMES):
    """An (N,) bool mask: any N in range, any subset of frames given (none and all included)."""
    num_frames = draw(st.integers(min_frames, max_frames))
    return torch.tensor(draw(st.lists(st.booleans(), min_size=num_frames, max_size=num_frames)), dtype=torch.bool)


@st.composite
def batched_given_masks(draw, max_batch=4, max_frames=16):
    """A (B, N) bool mask of clips with the same N and independent given frames."""
    num_frames = draw(st.integers(1, max_frames))
    batch_size = draw(st.integers(1, max_batch))
    rows = draw(st.lists(st.lists(st.booleans(), min_size=num_frames, max_size=num_frames),
                         min_size=batch_size, max_size=batch_size))
    return torch.tensor(rows, dtype=torch.bool)


def maximal_runs(flags: list[bool]) -> list[tuple[int, int]]:
    """Reference: maximal runs of False as (first, length), written independently of `span_runs`."""
    runs = []
    for index, flag in enumerate(flags):
        if flag:
            continue
        if runs and runs[-1][0] + runs[-1][1] == index:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((index, 1))
    return runs


# -- tasks ---------------------------------------------------------------------------------------------------------


@FAST
@given(task=st.sampled_from(TASKS), num_frames=st.integers(1, MAX_FRAMES), data=st.data())
def test_task_given_indices_for_any_valid_number_of_given_frames(task, num_frames, data):
    minimum = 2 if task == "infilling" else 1
    assume(minimum < num_frames)
    num_given = data.draw(st.integers(minimum, num_frames - 1))
    indices = task_given_indices(task, num_frames, num_given)
    assert indices == sorted(set(indices)) and len(indices) == num_given
    assert all(0 <= index < num_frames for index in indices)
    if task == "prediction":
        assert indices == list(range(num_given))
    elif task == "rewind":
        assert indices == list(range(num_frames - num_given, num_frames))
    else:
        assert indices[0] == 0 and indices[-1] == num_frames - 1
        head = [index for index in indices if index < num_frames - num_given // 2]
        assert head == list(range(math.ceil(num_given / 2)))


@FAST
@given(task=st.sampled_from(TASKS), num_frames=st.integers(1, MAX_FRAMES), num_given=st.integers(-3, MAX_FRAMES + 3))
def test_task_given_indices_rejects_every_invalid_number_of_given_frames(task, num_frames, num_given):
    minimum = 2 if task == "infilling" else 1
    assume(not minimum <= num_given < num_frames)
    with pytest.raises(ValueError, match="given frames"):
        task_given_indices(task, num_frames, num_given)


# -- given masks and runs ------------------------------------------------------------------------------------------


@FAST
@given(mask=given_masks())
def test_given_mask_round_trips_with_its_indices(mask):
    indices = mask.nonzero().flatten().tolist()
    assert torch.equal(given_mask_from_indices(indices, len(mask)), mask)
    # any order gives the same mask
    assert torch.equal(given_mask_from_indices(indices[::-1], len(mask)), mask)


@FAST
@given(num_frames=st.integers(1, MAX_FRAMES), data=st.data())
def test_given_mask_rejects_out_of_range_and_repeated_indices(num_frames, data):
    indices = data.draw(st.lists(st.integers(0, num_frames - 1), max_size=num_frames, unique=True))
    outside = data.draw(st.one_of(st.integers(-100, -1), st.integers(num_frames, num_frames + 100)))
    with pytest.raises(ValueError, match="out of range"):
        given_mask_from_indices(indices + [outside], num_frames)
    assume(indices)
    repeated = data.draw(st.sampled_from(indices))
    with pytest.raises(ValueError, match="distinct"):
        given_mask_from_indices(indices + [repeated], num_frames)


@FAST
@given(mask=given_masks())
def test_span_runs_are_the_maximal_runs_of_hidden_frames(mask):
    runs = span_runs(mask)
    flags = mask.tolist()
    assert runs == maximal_runs(flags)
    covered = [frame for first, length in runs for frame in range(first, first + length)]
    assert covered == [index for index, flag in enumerate(flags) if not flag]  # disjoint, in order, exact cover
    for first, length in runs:
        assert length >= 1
        assert first == 0 or flags[first - 1]  # maximal on the left
        assert first + length == len(flags) or flags[first + length]  # and on the right
    assert len(runs) == sum(1 for index, flag in enumerate(flags) if not flag and (index == 0 or flags[index - 1]))


# -- the encoder's visual layout -----------------------------------------------------------------------------------


@FAST
@given(given_mask=batched_given_masks(), tokens_per_frame=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_encoder_visual_layout_of_a_random_batch(given_mask, tokens_per_frame, seed):
    layout = encoder_visual_layout(given_mask, tokens_per_frame)
    batch_size, num_frames = given_mask.shape
    length = layout.frame_index.shape[1]
    for tensor in (layout.spatial_index, layout.is_span, layout.attention_mask):
        assert tensor.shape == (batch_size, length)
    token_ids = torch.randint(1, 1000, (batch_size, num_frames, tokens_per_frame),
                              generator=torch.Generator().manual_seed(seed))
    gathered = layout.gather_token_ids(token_ids)
    lengths = []
    for row in range(batch_size):
        real = layout.attention_mask[row]
        count = int(real.sum())
        lengths.append(count)
        assert count >= 1  # never an empty clip
        assert real[:count].all() and not real[count:].any()  # padding only at the end
        frames = layout.frame_index[row, :count].tolist()
        spatial = layout.spatial_index[row, :count].tolist()
        spans = layout.is_span[row, :count].tolist()
        assert frames == sorted(frames)  # time order
        # exactly tokens_per_frame slots 0 .. P-1 per given frame, and one span at the first frame of each run
        expected = []
        runs = dict(span_runs(given_mask[row]))
        for frame, is_given in enumerate(given_mask[row].tolist()):
            if is_given:
                expected += [(frame, position, False) for position in range(tokens_per_frame)]
            elif frame in runs:
                expected.append((frame, 0, True))
        assert list(zip(frames, spatial, spans)) == expected
        ids = [int(token_ids[row, frame, position]) if not span else 0 for frame, position, span in expected]
        assert gathered[row, :count].tolist() == ids
        assert (gathered[row, count:] == 0).all()
    assert length == max(lengths)


# -- training token masks ------------------------------------------------------------------------------------------


@FAST
@given(given_mask=batched_given_masks(max_batch=6), tokens_per_frame=st.integers(1, 6),
       sequential_probability=st.sampled_from([0.0, 0.5, 1.0]), seed=st.integers(0, 2**16))
def test_token_mask_never_masks_given_tokens_and_masks_something(given_mask, tokens_per_frame,
                                                                 sequential_probability, seed):
    # a clip with every frame given has nothing to predict; the training draw (`sample_given_frames`) never makes one
    assume((~given_mask).any(dim=1).all())
    generator = torch.Generator().manual_seed(seed)
    mask = sample_token_mask(given_mask, tokens_per_frame, sequential_probability, generator=generator)
    assert mask.shape == (*given_mask.shape, tokens_per_frame)
    assert not (mask & given_mask[:, :, None]).any()
    assert mask.flatten(1).any(dim=1).all()


@FAST
@given(given_mask=batched_given_masks(max_batch=6), tokens_per_frame=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_sequential_token_mask_is_one_step_of_frame_by_frame_decoding(given_mask, tokens_per_frame, seed):
    assume((~given_mask).any(dim=1).all())
    generator = torch.Generator().manual_seed(seed)
    mask = sample_token_mask(given_mask, tokens_per_frame, sequential_probability=1.0, generator=generator)
    for clip, given_frames in zip(mask, given_mask):
        per_frame = clip.sum(dim=1).tolist()
        current = next(index for index, count in enumerate(per_frame) if count > 0)
        assert not given_frames[current]
        assert all(count == 0 for count in per_frame[:current])
        for frame in range(current + 1, len(per_frame)):
            assert per_frame[frame] == (0 if given_frames[frame] else tokens_per_frame)


# -- the parallel schedule -----------------------------------------------------------------------------------------


@FAST
@given(num_unknown=st.lists(st.integers(0, 2000), min_size=1, max_size=8), num_steps=st.integers(1, 40))
def test_masked_after_step_is_a_valid_schedule(num_unknown, num_steps):
    n = torch.tensor(num_unknown)
    counts = [masked_after_step(n, step, num_steps) for step in range(num_steps)]
    previous = n
    for step, count in enumerate(counts):
        assert (count >= 0).all()
        assert (count <= previous).all()  # non-increasing, starting from n
        assert (count <= (n - step - 1).clamp(min=0)).all()  # at least step + 1 committed
        previous = count
    assert (counts[-1] == 0).all()


class FakeLogits:
    """A deterministic stand-in for the model: logits depend only on the position (so greedy decoding must give
    their argmax), and every call records how many tokens were still unknown."""

    def __init__(self, batch_size, length, num_classes, seed):
        self.logits = torch.randn(batch_size, length, num_classes, generator=torch.Generator().manual_seed(seed))
        self.unknown_per_call = []

    def __call__(self, token_ids, known, frame=None):
        self.unknown_per_call.append((~known).sum(dim=1))
        return self.logits


@FAST
@given(
    batch_size=st.integers(1, 3), length=st.integers(1, 40), num_classes=st.integers(2, 8),
    num_steps=st.integers(1, 12), temperature=st.sampled_from([0.0, 1.0]), seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_parallel_decode_keeps_known_tokens_and_follows_the_schedule(batch_size, length, num_classes, num_steps,
                                                                     temperature, seed, data):
    known = torch.tensor(data.draw(st.lists(st.lists(st.booleans(), min_size=length, max_size=length),
                                            min_size=batch_size, max_size=batch_size)), dtype=torch.bool)
    generator = torch.Generator().manual_seed(seed)
    token_ids = torch.randint(0, num_classes, (batch_size, length), generator=generator).masked_fill(~known, -1)
    fake = FakeLogits(batch_size, length, num_classes, seed)
    output = parallel_decode(fake, token_ids, known, num_steps, temperature=temperature, generator=generator)

    assert torch.equal(output[known], token_ids[known])
    assert ((output >= 0) & (output < num_classes)).all()  # fully decoded
    if temperature == 0:
        assert torch.equal(output[~known], fake.logits.argmax(dim=-1)[~known])
    # after step s exactly masked_after_step(n, s) tokens are still unknown; calls stop once all are known
    num_unknown = (~known).sum(dim=1)
    expected_calls = 0
    for step in range(num_steps):
        if int(num_unknown.max()) == 0 or (step > 0 and int(masked_after_step(num_unknown, step - 1, num_steps).max())
                                           == 0):
            break
        expected_calls += 1
    assert len(fake.unknown_per_call) == expected_calls
    for step, unknown in enumerate(fake.unknown_per_call):
        expected = num_unknown if step == 0 else masked_after_step(num_unknown, step - 1, num_steps)
        assert torch.equal(unknown, expected)


# -- adaptive p_t --------------------------------------------------------------------------------------------------


@st.composite
def probability_updates(draw):
    num_frames = draw(st.integers(1, MAX_FRAMES))
    low = draw(st.floats(0.0, 0.5))
    high = draw(st.floats(low, 1.0))
    probabilities = draw(st.lists(st.floats(low, high), min_size=num_frames, max_size=num_frames))
    losses = draw(st.lists(st.floats(0.0, 100.0), min_size=num_frames, max_size=num_frames))
    valid = draw(st.lists(st.booleans(), min_size=num_frames, max_size=num_frames))
    alpha = draw(st.floats(0.0, 1.0))
    return (torch.tensor(probabilities), torch.tensor(losses), torch.tensor(valid, dtype=torch.bool), alpha,
            (low, high))


@FAST
@given(update=probability_updates())
def test_mask_probability_update_stays_in_bounds_and_leaves_invalid_positions(update):
    probabilities, losses, valid, alpha, bounds = update
    updated = update_mask_probabilities(probabilities, losses, alpha, valid=valid, bounds=bounds)
    assert updated.shape == probabilities.shape
    assert ((updated >= bounds[0]) & (updated <= bounds[1])).all()
    assert torch.equal(updated[~valid], probabilities[~valid])
    assert torch.equal(update_mask_probabilities(probabilities, losses, 0.0, valid=valid, bounds=bounds),
                       probabilities)


@FAST
@given(update=probability_updates())
def test_mask_probability_update_preserves_the_sum_over_valid_positions(update):
    # sum_t (p_t + alpha * ((L_t / L_M) * S - p_t)) = S + alpha * (S - S) = S, where S = sum of p over valid positions
    probabilities, losses, valid, alpha, _ = update
    unclamped = update_mask_probabilities(probabilities, losses, alpha, valid=valid, bounds=(-math.inf, math.inf))
    total = probabilities[valid].sum()
    assert torch.allclose(unclamped[valid].sum(), total, atol=1e-4 * max(1.0, float(total)))


# -- the model -----------------------------------------------------------------------------------------------------


@functools.cache
def shared_tiny_model():
    return tiny_model()


@settings(max_examples=7, deadline=None)
@example(given_rows=[[False] * TINY["num_frames"]], seed=0)  # no frame given
@example(given_rows=[[True] * TINY["num_frames"]], seed=0)  # every frame given: nothing to decode
@given(
    given_rows=st.lists(st.lists(st.booleans(), min_size=TINY["num_frames"], max_size=TINY["num_frames"]),
                        min_size=1, max_size=2),
    seed=st.integers(0, 2**16),
)
def test_parallel_completion_returns_the_given_frames_for_any_given_set(given_rows, seed):
    model = shared_tiny_model()
    config = model.config
    given_frames = torch.tensor(given_rows, dtype=torch.bool)
    batch_size = len(given_rows)
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, 1000, (batch_size, 5), generator=generator)
    pixels = torch.rand(batch_size, config.num_frames, 3, config.image_size, config.image_size,
                        generator=generator) * 2 - 1
    output = model.complete(input_ids, None, pixels, given_frames, decoding="parallel", num_inference_steps=2,
                            generator=generator)
    assert output.frames.shape == pixels.shape
    assert torch.equal(output.frames[given_frames], pixels[given_frames])
    assert torch.isfinite(output.frames).all() and output.frames.abs().max() <= 1
    assert ((output.token_ids >= 0) & (output.token_ids < config.codebook_size)).all()
