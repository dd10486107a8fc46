"""The peer GPT of the `peer` benchmark (benchmarks/peer_gpt.py): what the benchmark times must be a correct
token-by-token decoder, so its cache must give the logits of a full causal forward, and greedy generation must be the
argmax continuation of the sequence so far."""

import importlib.util
from pathlib import Path

import pytest
import torch

from tiny_models import tiny_config


def load_peer_gpt():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "peer_gpt.py"
    spec = importlib.util.spec_from_file_location("peer_gpt", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peer_gpt = load_peer_gpt()
TEXT_LENGTH = 5


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    # in float64, so that cached and full forwards agree to rounding and greedy choices never hang on a near-tie;
    # larger weights than the benchmark's 0.02 init, so that the logits differ between positions
    model = peer_gpt.PeerGPT.from_mmvg_config(tiny_config(), text_length=TEXT_LENGTH).eval().double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(10)
    return model


def full_forward(gpt, input_ids, visual_ids):
    """Logits of one causal forward over the whole sequence, with a fresh cache."""
    embeddings = torch.cat([gpt.text_embeddings(input_ids), gpt.visual_embeddings(visual_ids)], dim=1)
    head_size = embeddings.shape[-1] // gpt.num_heads
    cache = peer_gpt.KeyValueCache(len(gpt.blocks), input_ids.shape[0], gpt.num_heads, gpt.max_length, head_size,
                                   dtype=embeddings.dtype)
    return gpt(embeddings, cache, start=0)


@torch.no_grad()
def test_cached_one_position_at_a_time_equals_the_full_causal_forward(gpt):
    config = tiny_config()
    input_ids = torch.randint(0, config.text_vocab_size, (2, TEXT_LENGTH), generator=torch.Generator().manual_seed(1))
    visual_ids = torch.randint(0, config.codebook_size, (2, 20), generator=torch.Generator().manual_seed(2))
    full = full_forward(gpt, input_ids, visual_ids)
    prefix = torch.cat([gpt.text_embeddings(input_ids), gpt.visual_embeddings(visual_ids[:, :4])], dim=1)
    cache = peer_gpt.KeyValueCache(len(gpt.blocks), 2, gpt.num_heads, gpt.max_length, prefix.shape[-1] // gpt.num_heads,
                                   dtype=prefix.dtype)
    stepwise = [gpt(prefix, cache, start=0)]
    for position in range(4, 20):
        stepwise.append(gpt(gpt.visual_embeddings(visual_ids[:, position : position + 1]), cache,
                            start=TEXT_LENGTH + position))
    torch.testing.assert_close(torch.cat(stepwise, dim=1), full, rtol=1e-10, atol=1e-10)
    # and the attention is causal: a later token does not change an earlier position's logits
    changed = visual_ids.clone()
    changed[:, 10] = (changed[:, 10] + 1) % config.codebook_size
    torch.testing.assert_close(full_forward(gpt, input_ids, changed)[:, : TEXT_LENGTH + 10], full[:, : TEXT_LENGTH + 10])


@torch.no_grad()
def test_greedy_generation_is_the_argmax_continuation(gpt):
    config = tiny_config()
    height = width = config.latent_size
    input_ids = torch.randint(0, config.text_vocab_size, (2, TEXT_LENGTH), generator=torch.Generator().manual_seed(3))
    given = torch.randint(0, config.codebook_size, (2, 1, height, width), generator=torch.Generator().manual_seed(4))
    generated = gpt.generate(input_ids, given, num_frames=3, temperature=0)
    assert generated.shape == (2, 3, height, width)
    assert torch.equal(generated[:, :1], given)
    sequence = given.flatten(1)
    for _ in range(2 * height * width):  # recompute the whole sequence for every token: slow, plainly right
        next_token = full_forward(gpt, input_ids, sequence)[:, -1].argmax(-1)
        sequence = torch.cat([sequence, next_token[:, None]], dim=1)
    assert torch.equal(generated.flatten(1), sequence)
    assert len(set(sequence[:, height * width :].flatten().tolist())) > 1  # not one token repeated


def test_generation_longer_than_the_positions_is_refused(gpt):
    config = tiny_config()
    given = torch.zeros(1, 1, config.latent_size, config.latent_size, dtype=torch.long)
    with pytest.raises(ValueError, match="exceed max_length"):
        gpt.generate(torch.zeros(1, TEXT_LENGTH + 1, dtype=torch.long), given, num_frames=config.num_frames)
