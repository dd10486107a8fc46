"""`torch.compile` (inductor, CPU) on both models: a training step and completion give the eager results.

Slow (minutes of compilation on 2 cores): `make test-slow`.
"""

import pytest
import torch

from tiny_models import TINY_TVQ, tiny_model
from transformers_mmvg import TVQConfig, TVQModel
from transformers_mmvg.masking import given_mask_from_indices

pytestmark = pytest.mark.slow


def _batch(model, batch_size=2):
    input_ids = torch.tensor([[49406, 320, 1125, 49407]] * batch_size)
    pixels = torch.rand(batch_size, 6, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return input_ids, pixels


def test_compiled_mmvg_training_step_and_completion_match_eager():
    torch._dynamo.reset()
    model = tiny_model()
    input_ids, pixels = _batch(model)
    inputs = model.draw_training_masks(input_ids, None, pixels, generator=torch.Generator().manual_seed(0))
    model.train()
    eager_loss = model(**inputs).loss
    eager_loss.backward()
    eager_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    compiled = torch.compile(model)
    loss = compiled(**inputs).loss
    loss.backward()
    torch.testing.assert_close(loss, eager_loss, atol=1e-5, rtol=1e-5)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, atol=1e-5, rtol=1e-4, msg=name)

    model.eval()
    given = given_mask_from_indices([0], 6)[None].expand(2, -1)
    eager = model.complete(input_ids, None, pixels, given, temperature=0)
    compiled_complete = torch.compile(model.complete)(input_ids, None, pixels, given, temperature=0)
    assert torch.equal(compiled_complete.token_ids, eager.token_ids)


def test_compiled_tvq_round_trip_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = TVQModel(TVQConfig(**TINY_TVQ)).eval()
    clips = torch.rand(2, 3, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    encode, decode = torch.compile(model.encode), torch.compile(model.decode)
    token_ids = encode(clips).token_ids
    assert torch.equal(token_ids, model.encode(clips).token_ids)
    torch.testing.assert_close(decode(token_ids), model.decode(token_ids), atol=1e-5, rtol=1e-5)
