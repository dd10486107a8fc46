"""transformers' common model tests (`ModelTesterMixin`) on tiny T-VQ and MMVG models.

Run through `run.py` (same folder): it puts transformers' own `tests/test_modeling_common.py`, taken from the sdist
of the installed version, on the path as the package `hf_common_tests`. A plain `pytest` run does not collect this
file (see `conftest.py` here).

Tests that do not apply to a model are skipped by name, each with its reason (`TVQ_SKIPS`, `MMVG_SKIPS`); every other
common test runs, and a failure is a finding about the model.
"""

import unittest

import torch
from hf_common_tests.test_modeling_common import ModelTesterMixin, floats_tensor, ids_tensor
from transformers.testing_utils import torch_device

from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion, TVQConfig, TVQModel

from tiny_models import TINY, TINY_TVQ  # tests/ is on the path through its conftest.py


def skip_common_tests(reasons: dict[str, str]):
    """Class decorator: replace each named common test by a skip with its reason. A name that is not a test of
    `ModelTesterMixin` raises, so a test renamed upstream is noticed instead of silently running."""

    def decorate(cls):
        for pattern, reason in reasons.items():
            if pattern.endswith("*"):  # the expansions of a `parameterized.expand` test
                names = [name for name in dir(ModelTesterMixin) if name.startswith(pattern[:-1])]
            else:
                names = [pattern] if callable(getattr(ModelTesterMixin, pattern, None)) else []
            if not names:
                raise AttributeError(f"{pattern} names no test of ModelTesterMixin (renamed upstream?)")
            for name in names:

                def skipped(self, *args, _reason=reason, **kwargs):
                    self.skipTest(_reason)

                skipped.__name__ = name
                setattr(cls, name, skipped)
        return cls

    return decorate


# ---------------------------------------------------------------------------------------------------------------
# T-VQ
# ---------------------------------------------------------------------------------------------------------------

# the tiny models of the project's own tests (tests/tiny_models.py): 16x16 frames, 3 levels -> 4x4 tokens of a
# 32-code codebook; the T-VQ here with its temporal head, as tests/test_tvq.py trains it
TVQ_WITH_TEMPORAL_HEAD = {**TINY_TVQ, "use_temporal_loss": True, "temporal_hidden_size": 32}

NO_TOKEN_EMBEDDINGS = "T-VQ reads pixels: it has no token (input) embeddings to get, set or resize"

NO_HIDDEN_STATES = (
    "T-VQ is a VQ tokenizer (convolutional encoder, quantizer, decoder): like transformers' own VQ-VAEs (Chameleon, "
    "Emu3) it returns latents, codes and reconstructions, not per-layer hidden states or attentions"
)

TVQ_SKIPS = {
    "test_hidden_states_output": NO_HIDDEN_STATES,
    "test_retain_grad_hidden_states_attentions": NO_HIDDEN_STATES,
    # its first half (the same outputs with return_dict True and False) is checked in tests/test_tvq.py
    "test_model_outputs_equivalence": NO_HIDDEN_STATES,
    "test_resize_tokens_embeddings": NO_TOKEN_EMBEDDINGS,
    "test_resize_embeddings_untied": NO_TOKEN_EMBEDDINGS,
    "test_resize_embeddings_untied_no_reinit_on_post_init": NO_TOKEN_EMBEDDINGS,
    "test_model_get_set_embeddings": NO_TOKEN_EMBEDDINGS,
}


class TVQModelTester:
    def __init__(self, parent, batch_size=2, num_frames=3, is_training=True):
        self.parent = parent
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.is_training = is_training
        self.image_size = TVQ_WITH_TEMPORAL_HEAD["image_size"]
        self.num_channels = 3

    def get_config(self) -> TVQConfig:
        return TVQConfig(**TVQ_WITH_TEMPORAL_HEAD)

    def prepare_config_and_inputs(self):
        shape = [self.batch_size, self.num_frames, self.num_channels, self.image_size, self.image_size]
        pixel_values = floats_tensor(shape, scale=2.0) - 1.0  # frames in [-1, 1]
        return self.get_config(), pixel_values.to(torch_device)

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values}


@skip_common_tests(TVQ_SKIPS)
class TVQModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (TVQModel,)
    has_attentions = False  # convolutional encoder / decoder: no attention layers
    test_resize_embeddings = False
    # the mixin only checks `_init_weights` for model files with a "# Copyright 2023" (or later) header; ours have
    # no header, so opt in explicitly
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = TVQModelTester(self)


# ---------------------------------------------------------------------------------------------------------------
# MMVG
# ---------------------------------------------------------------------------------------------------------------

# the tiny MMVG of tests/tiny_models.py with a 99-word text vocabulary instead of CLIP's 49,408 and as many encoder
# as decoder layers (the mixin checks one layer count)
TINY_MMVG_TVQ = TINY_TVQ  # without the temporal head, as stage 2 carries it
TINY_MMVG = {**TINY, "num_encoder_layers": 2, "text_vocab_size": 99, "max_text_length": 16, "text_bos_token_id": 97,
             "text_eos_token_id": 98}

MMVG_SKIPS = {
    # the test feeds text seq2seq inputs it makes up for any `is_encoder_decoder` model (`decoder_input_ids`) and pads
    # every input with random rows (random boolean masks break the given-frames / token-mask contract); eager and
    # sdpa are compared on MMVG's own inputs in tests/test_mmvg.py instead
    "test_eager_matches_sdpa_inference_*": "the test builds text seq2seq inputs (decoder_input_ids) MMVG does not "
    "take and random given-frame / token masks; tests/test_mmvg.py compares eager and sdpa on real inputs",
}


class MMVGModelTester:
    def __init__(self, parent, batch_size=2, text_length=7, is_training=True):
        self.parent = parent
        self.batch_size = batch_size
        self.is_training = is_training
        self.text_length = text_length
        self.num_frames = TINY_MMVG["num_frames"]
        self.image_size = TINY_MMVG_TVQ["image_size"]
        self.num_channels = 3
        self.hidden_size = TINY_MMVG["hidden_size"]
        self.num_attention_heads = TINY_MMVG["num_attention_heads"]
        self.num_hidden_layers = TINY_MMVG["num_encoder_layers"]  # == num_decoder_layers
        self.vocab_size = TINY_MMVG["text_vocab_size"]
        self.latent_size = 4  # 16x16 frames / downsampling factor 4
        tokens_per_frame = self.latent_size**2
        # given frames: clip 0 is a prediction (frame 0 given), clip 1 an infilling (first and last frame given)
        self.given_frames = [[0], [0, self.num_frames - 1]]
        # encoder input: words, then the tokens of the given frames and one [SPAN] per run of hidden frames (both
        # clips have one run), padded to the longest clip
        visual_length = max(len(given) * tokens_per_frame + 1 for given in self.given_frames)
        self.seq_length = text_length
        self.encoder_seq_length = text_length + visual_length
        self.decoder_seq_length = self.num_frames * tokens_per_frame

    def get_config(self) -> MMVGConfig:
        return MMVGConfig(tvq_config=TVQConfig(**TINY_MMVG_TVQ).to_dict(), **TINY_MMVG)

    def prepare_config_and_inputs(self):
        batch, frames, grid = self.batch_size, self.num_frames, self.latent_size
        input_ids = ids_tensor([batch, self.text_length], self.vocab_size - 2)  # words, not bos / eos
        attention_mask = torch.ones_like(input_ids)
        attention_mask[1:, -2:] = 0  # the second caption is shorter (padded)
        pixels = floats_tensor([batch, frames, self.num_channels, self.image_size, self.image_size], scale=2.0) - 1.0
        given_frames_mask = torch.zeros(batch, frames, dtype=torch.bool)
        for row, given in enumerate(self.given_frames[:batch]):
            given_frames_mask[row, given] = True
        # tokens to predict: about half of the tokens of every hidden frame (at least one per frame), none of a
        # given frame; drawn from a fixed generator so every call returns the same masks
        generator = torch.Generator().manual_seed(0)
        token_mask = torch.rand(batch, frames, grid, grid, generator=generator) < 0.5
        token_mask[:, :, 0, 0] = True
        token_mask &= ~given_frames_mask[:, :, None, None]
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pixel_values_videos": pixels,
            "given_frames_mask": given_frames_mask,
            "token_mask": token_mask,
        }
        return self.get_config(), {key: value.to(torch_device) for key, value in inputs.items()}

    def prepare_config_and_inputs_for_common(self):
        return self.prepare_config_and_inputs()


@skip_common_tests(MMVG_SKIPS)
class MMVGModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (MMVGForVideoCompletion,)
    is_encoder_decoder = True  # as MMVGConfig.is_encoder_decoder: Enc^M and Dec^M with cross-attention
    test_can_init_all_missing_weights_before_2023 = True  # see TVQModelTest

    def setUp(self):
        self.model_tester = MMVGModelTester(self)

    def test_attention_outputs(self):
        """The common test, adapted to Dec^M's windows: with eager attention and `output_attentions` (argument or
        config), one encoder self-attention map (B, heads, L, L), one window self-attention map
        (B, windows * heads, window tokens, window tokens) and one cross-attention map (B, heads, N * h * w, L) per
        layer. The common version assumes a text seq2seq output of 5 fields and full decoder self-attention."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        tester = self.model_tester
        window = config.window_size
        grid = (tester.num_frames, tester.latent_size, tester.latent_size)
        # layer 0 is not shifted: the grid is cut into whole windows (padded up to a multiple of the window)
        windows = 1
        for size, length in zip(window, grid):
            windows *= -(-length // size)
        window_tokens = window[0] * window[1] * window[2]
        for through_config in (False, True):
            model = MMVGForVideoCompletion._from_config(config, attn_implementation="eager").to(torch_device).eval()
            if through_config:
                model.config.output_attentions = True
                for module in (model.model.encoder, model.model.decoder):
                    module.config.output_attentions = True
                kwargs = {}
            else:
                kwargs = {"output_attentions": True}
            with torch.no_grad():
                outputs = model(**inputs, **kwargs)
            self.assertEqual(len(outputs.encoder_attentions), tester.num_hidden_layers)
            self.assertEqual(len(outputs.decoder_attentions), tester.num_hidden_layers)
            self.assertEqual(len(outputs.cross_attentions), tester.num_hidden_layers)
            self.assertEqual(list(outputs.encoder_attentions[0].shape),
                             [tester.batch_size, tester.num_attention_heads, tester.encoder_seq_length,
                              tester.encoder_seq_length])
            self.assertEqual(list(outputs.decoder_attentions[0].shape),
                             [tester.batch_size, windows * tester.num_attention_heads, window_tokens, window_tokens])
            self.assertEqual(list(outputs.cross_attentions[0].shape),
                             [tester.batch_size, tester.num_attention_heads, tester.decoder_seq_length,
                              tester.encoder_seq_length])
            for attentions in (outputs.encoder_attentions, outputs.decoder_attentions, outputs.cross_attentions):
                sums = attentions[0].sum(-1)  # every query's weights sum to 1 (padded window slots included)
                torch.testing.assert_close(sums, torch.ones_like(sums))
            self.assertIsNone(outputs.encoder_hidden_states)

    def test_batching_equivalence(self):
        """The common test, per clip: each clip's logits and encoder states are the same in a batch as alone.
        `loss`, `frame_losses` and `frame_token_counts` are statistics of the whole batch by definition (L_t over
        the batch drives p_t), so they are not compared row by row."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model = MMVGForVideoCompletion(config).to(torch_device).eval()
        with torch.no_grad():
            batched = model(**inputs)
            for row in range(self.model_tester.batch_size):
                single = model(**{key: value[row : row + 1] for key, value in inputs.items()})
                torch.testing.assert_close(single.logits[0], batched.logits[row], atol=1e-5, rtol=1e-5)
                length = single.encoder_last_hidden_state.shape[1]  # the batch pads shorter clips
                torch.testing.assert_close(single.encoder_last_hidden_state[0],
                                           batched.encoder_last_hidden_state[row, :length], atol=1e-5, rtol=1e-5)
