"""MMVG (stage 2): config, encoder input, block-causal window decoder and its cache, training loss and p_t, both
decoding modes, guidance, save/load, bad input, and a tiny model overfitting TextShapes clips."""

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel

from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion, TVQConfig, TVQModel, load_clip_tokenizer
from transformers_mmvg.data.textshapes import TextShapesPreset, render_clip, sample_clip_params
from transformers_mmvg.masking import given_mask_from_indices, task_given_indices
from transformers_mmvg.modeling_mmvg import MMVGDecoderCache

from tiny_models import TINY, TINY_TVQ, tiny_config, tiny_model


def batch(model, batch_size=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    config = model.config
    input_ids = torch.randint(0, 1000, (batch_size, 5), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 3:] = 0
    pixels = torch.rand(batch_size, config.num_frames, 3, config.image_size, config.image_size, generator=generator)
    return input_ids, attention_mask, pixels * 2 - 1


# -- config --------------------------------------------------------------------------------------------------------


def test_config_is_composite_and_round_trips(tmp_path):
    config = tiny_config()
    assert isinstance(config.tvq_config, TVQConfig)
    assert (config.image_size, config.latent_size, config.tokens_per_frame, config.codebook_size) == (16, 4, 16, 32)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, MMVGConfig) and loaded.tvq_config.codebook_size == 32
    assert loaded.window_size == [3, 2, 2]
    assert MMVGConfig().window_size == [4, 4, 4]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(window_size=[7, 2, 2]), "window_size"),
        (dict(window_size=[2, 2]), "window_size"),
        (dict(image_size=32), "image_size"),
        (dict(hidden_size=30, num_attention_heads=4), "divisible"),
        (dict(mask_probability=0.99), "mask_probability"),
        (dict(text_drop_probability=1.5), "text_drop_probability"),
    ],
)
def test_config_rejects_values_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


# -- decoder -------------------------------------------------------------------------------------------------------


def test_decoder_is_block_causal_over_frames():
    model = tiny_model()
    input_ids, attention_mask, pixels = batch(model)
    token_ids = model.tokenize_video(pixels)
    known = torch.ones_like(token_ids, dtype=torch.bool)
    given = given_mask_from_indices([0], 6)[None].expand(3, -1)
    encoded = model.model.encode(input_ids, attention_mask, token_ids, given)
    states, mask = encoded.encoder_last_hidden_state, encoded.encoder_attention_mask
    logits = model.video_logits(token_ids, known, states, mask)
    changed = token_ids.clone()
    changed[:, 4] = (changed[:, 4] + 1) % 32
    changed_logits = model.video_logits(changed, known, states, mask)
    assert torch.equal(logits[:, :4], changed_logits[:, :4])  # earlier frames never see a later one
    assert not torch.allclose(logits[:, 4:], changed_logits[:, 4:])


@pytest.mark.parametrize("neighbours", [{}, dict(previous_frame_radius=1, previous_frame_copy=True, next_frame_copy=True)])
def test_frame_by_frame_decoding_with_the_cache_equals_the_full_decoder(neighbours):
    model = tiny_model(**neighbours)
    for name, parameter in model.named_parameters():
        if "next" in name:
            torch.nn.init.normal_(parameter)  # zero at the start: give the next frame's terms a part
    input_ids, attention_mask, pixels = batch(model)
    token_ids = model.tokenize_video(pixels)
    known = torch.rand(token_ids.shape, generator=torch.Generator().manual_seed(0)) < 0.5
    known[:, 1] = True  # a finished frame: it does not read frame 2
    given = given_mask_from_indices([0, 5], 6)[None].expand(3, -1)
    encoded = model.model.encode(input_ids, attention_mask, token_ids, given)
    states, mask = encoded.encoder_last_hidden_state, encoded.encoder_attention_mask
    full = model.video_logits(token_ids, known, states, mask)
    cache = MMVGDecoderCache(model.config.num_decoder_layers)
    for frame in range(6):
        logits = model.video_logits(token_ids, known, states, mask, cache, frame_index=frame, commit=True)
        torch.testing.assert_close(logits, full[:, frame], atol=1e-5, rtol=1e-5)
    # the cache keeps only what a later frame can still attend to (window of 3 frames -> 2 finished frames)
    assert [len(layer) for layer in cache.self_attention] == [2, 2]


def test_window_attention_sees_only_its_window():
    model = tiny_model(window_size=[2, 2, 2], num_decoder_layers=1)
    attention = model.model.decoder.layers[0].self_attn  # not shifted: windows are frames {0,1},{2,3},... rows {0,1},{2,3}
    coords = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 0, 0], [2, 1, 1], [1, 2, 1], [0, 1, 1]])
    bias = attention.attention_bias(coords[:1], coords, torch.ones(6, dtype=torch.bool))
    allowed = torch.isfinite(bias[0, 0]).tolist()
    # same window and not later: itself, (0,0,0), (1,0,0), (0,1,1); other frame window / other row window: no
    assert allowed == [True, True, True, False, False, True]


# -- training ------------------------------------------------------------------------------------------------------


def test_forward_is_pure_and_p_update_follows_the_rule_from_the_outputs_losses():
    model = tiny_model(mask_probability_alpha=0.5).train()
    input_ids, attention_mask, pixels = batch(model, batch_size=8)
    before = model.mask_probabilities.clone()
    inputs = model.draw_training_masks(input_ids, attention_mask, pixels, generator=torch.Generator().manual_seed(0))
    output = model(**inputs)
    assert output.logits.shape == (8, 6, 4, 4, 32)
    assert torch.isfinite(output.loss)
    assert torch.allclose(output.loss, output.frame_losses[output.frame_token_counts > 0].mean())
    assert not (inputs["token_mask"] & inputs["given_frames_mask"][:, :, None, None]).any()
    assert torch.equal(output.frame_token_counts, inputs["token_mask"].sum(dim=(0, 2, 3)))
    # pure: the same inputs give the same outputs, and nothing of the model changed
    again = model(**inputs)
    assert torch.equal(again.logits, output.logits) and torch.equal(model.mask_probabilities, before)
    # p_t moves by exactly the paper's rule, from this output's per-frame losses L_t of the frames that had a loss:
    # p_t <- p_t + alpha * ((L_t / sum_s L_s) * sum_s p_s - p_t), clamped to the configured range
    model.update_mask_probabilities(output.frame_losses, output.frame_token_counts)
    valid = output.frame_token_counts > 0
    assert valid.sum() >= 2  # several frames take part, so a loss read from the wrong frame changes the result
    losses, probabilities = output.frame_losses[valid].double(), before[valid].double()
    expected = before.clone().double()
    expected[valid] = probabilities + 0.5 * (losses / losses.sum() * probabilities.sum() - probabilities)
    low, high = model.config.mask_probability_range
    torch.testing.assert_close(model.mask_probabilities.double(), expected.clamp(low, high), rtol=0, atol=1e-6)
    assert not torch.equal(model.mask_probabilities, before)
    output.loss.backward()
    assert model.model.embeddings.visual_projection.weight.grad is not None
    assert all(parameter.grad is None for parameter in model.tvq.parameters())


def test_drawn_masks_follow_p_t_and_drop_captions():
    model = tiny_model(text_drop_probability=1.0, task_masking_probability=0.0)
    input_ids, attention_mask, pixels = batch(model, batch_size=4)
    with torch.no_grad():
        model.mask_probabilities.copy_(torch.tensor([0.05, 0.95, 0.95, 0.95, 0.95, 0.05]))
    inputs = model.draw_training_masks(input_ids, attention_mask, pixels, generator=torch.Generator().manual_seed(1))
    null_ids, null_mask = model._null_text(input_ids)
    assert torch.equal(inputs["input_ids"], null_ids) and torch.equal(inputs["attention_mask"], null_mask)
    same = model.draw_training_masks(input_ids, attention_mask, pixels, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(value, same[key]) for key, value in inputs.items())  # the generator decides
    many = model.draw_training_masks(input_ids.repeat(250, 1), None, pixels.repeat(250, 1, 1, 1, 1),
                                     generator=torch.Generator().manual_seed(2))
    hidden_rate = (~many["given_frames_mask"]).float().mean(0)
    assert (hidden_rate[1:5] > 0.85).all() and (hidden_rate[[0, 5]] < 0.2).all()
    with pytest.raises(ValueError, match="draw_training_masks"):
        model(input_ids, attention_mask, pixels)


def test_loss_is_the_cross_entropy_of_the_masked_tokens():
    model = tiny_model()
    input_ids, attention_mask, pixels = batch(model, batch_size=2)
    token_ids = model.tokenize_video(pixels)
    given = given_mask_from_indices([0], 6)[None].expand(2, -1)
    token_mask = torch.zeros_like(token_ids, dtype=torch.bool)
    token_mask[:, 2, 1, 3] = True
    token_mask[0, 4] = True
    output = model(input_ids, attention_mask, video_token_ids=token_ids, given_frames_mask=given,
                   token_mask=token_mask)
    log_probs = output.logits.log_softmax(-1).gather(-1, token_ids[..., None])[..., 0]
    expected_2 = -log_probs[:, 2, 1, 3].mean()
    expected_4 = -log_probs[0, 4].mean()
    assert (output.frame_token_counts > 0).tolist() == [False, False, True, False, True, False]
    torch.testing.assert_close(output.frame_losses[2], expected_2)
    torch.testing.assert_close(output.loss, (expected_2 + expected_4) / 2)


def test_no_nan_when_every_frame_is_hidden_and_the_text_is_empty():
    model = tiny_model(text_drop_probability=1.0).train()
    input_ids, attention_mask, pixels = batch(model)
    given = torch.zeros(3, 6, dtype=torch.bool)
    inputs = model.draw_training_masks(input_ids, attention_mask, pixels)
    output = model(**{**inputs, "given_frames_mask": given, "token_mask": torch.ones(3, 6, 4, 4, dtype=torch.bool)})
    assert torch.equal(inputs["input_ids"][:, :2], model._null_text(input_ids)[0][:, :2])  # the empty prompt
    assert torch.isfinite(output.logits).all() and torch.isfinite(output.loss)


def test_activation_checkpointing_gives_the_same_gradients_and_bf16_autocast_runs():
    input_ids, attention_mask, pixels = batch(tiny_model())
    grads = []
    # off, then transformers' default, then both kinds of torch checkpointing: the encoder states reach every decoder
    # layer as a plain tensor argument, so the re-entrant kind also carries their gradient back to the encoder
    for checkpointing in (None, {}, {"use_reentrant": True}, {"use_reentrant": False}):
        model = tiny_model(text_drop_probability=0.0)
        token_ids = model.tokenize_video(pixels)
        given = given_mask_from_indices([0], 6)[None].expand(3, -1)
        token_mask = ~given[:, :, None, None].expand_as(token_ids)
        if checkpointing is not None:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpointing)
        model.train()
        loss = model(input_ids, attention_mask, video_token_ids=token_ids, given_frames_mask=given,
                     token_mask=token_mask).loss
        loss.backward()
        grads.append({name: parameter.grad.clone() for name, parameter in model.named_parameters()
                      if parameter.requires_grad})
    assert grads[0]["model.embeddings.word_projection.weight"].abs().sum() > 0  # the encoder does get gradients
    for checkpointed in grads[1:]:
        assert checkpointed.keys() == grads[0].keys()
        for name, grad in grads[0].items():
            torch.testing.assert_close(checkpointed[name], grad, msg=name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(**model.draw_training_masks(input_ids, attention_mask, pixels))
    assert torch.isfinite(output.loss)


def test_a_tiny_model_overfits_a_handful_of_textshapes_clips():
    preset = TextShapesPreset(name="tiny", resolution=16, num_frames=6, object_size=4, speed=2, fps=8)
    rng = np.random.default_rng(0)
    clips = {}
    while len(clips) < 4:  # four different captions, so the text tells the clips apart
        clip = render_clip(sample_clip_params(rng, preset, num_segments=1), preset)
        clips.setdefault(clip.text, clip)
    clips = list(clips.values())
    tokenizer = load_clip_tokenizer()
    text = tokenizer([clip.text for clip in clips], padding=True, return_tensors="pt")
    pixels = torch.from_numpy(np.stack([clip.frames for clip in clips])).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
    model = tiny_model(text_drop_probability=0.0)
    model.tvq.train()(pixels)  # the T-VQ's data init: patches that look alike share a code
    model.tvq.eval()
    model.copy_tvq_codebook()
    token_ids = model.tokenize_video(pixels)
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    for _ in range(600):
        loss = model(**model.draw_training_masks(text["input_ids"], text["attention_mask"],
                                                 video_token_ids=token_ids)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # prediction from the first frame, every other token masked: near-zero loss, and greedy completion recovers
    # the clips
    model.eval()
    given = given_mask_from_indices([0], 6)[None].expand(4, -1)
    token_mask = ~given[:, :, None, None].expand_as(token_ids)
    loss = model(text["input_ids"], text["attention_mask"], video_token_ids=token_ids, given_frames_mask=given,
                 token_mask=token_mask).loss
    assert loss.item() < 0.1
    # both decoding modes, greedy, on this trained model (not only on one whose weights are zero): each recovers
    # the clips it learned, so they agree with each other on those tokens too
    completions = {
        decoding: model.complete(text["input_ids"], text["attention_mask"], video_token_ids=token_ids,
                                 given_frames_mask=given, temperature=0, decoding=decoding).token_ids
        for decoding in ("parallel", "frame_by_frame", "autoregressive")
    }
    hidden = ~given
    for decoding, completed in completions.items():
        recovered = (completed == token_ids)[hidden].float().mean()
        assert recovered > 0.95, (decoding, recovered)
    for decoding in ("parallel", "frame_by_frame"):
        agreement = (completions[decoding] == completions["autoregressive"])[hidden].float().mean()
        assert agreement > 0.95, (decoding, agreement)


# -- completion ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("decoding", ["parallel", "frame_by_frame", "autoregressive"])
@pytest.mark.parametrize("task", ["prediction", "rewind", "infilling"])
def test_completion_keeps_given_frames_exactly_and_is_reproducible(decoding, task):
    model = tiny_model()
    input_ids, attention_mask, pixels = batch(model, batch_size=2)
    given = given_mask_from_indices(task_given_indices(task, 6), 6)[None].expand(2, -1)
    results = [
        model.complete(input_ids, attention_mask, pixels, given, decoding=decoding, num_inference_steps=4,
                       top_k=8, top_p=0.9, generator=torch.Generator().manual_seed(7))
        for _ in range(2)
    ]
    first, second = results
    assert first.frames.shape == pixels.shape
    assert torch.equal(first.frames[given], pixels[given])
    assert torch.equal(first.token_ids, second.token_ids) and torch.equal(first.frames, second.frames)
    hidden = ~given
    assert first.frames[hidden].abs().max() <= 1
    other = model.complete(input_ids, attention_mask, pixels, given, decoding=decoding, num_inference_steps=4,
                           generator=torch.Generator().manual_seed(8))
    assert not torch.equal(other.token_ids, first.token_ids)


def test_completion_from_any_given_frames_per_clip_and_with_guidance():
    model = tiny_model()
    input_ids, attention_mask, pixels = batch(model, batch_size=3)
    given = torch.stack([given_mask_from_indices(indices, 6) for indices in ([1, 3], [], [0, 2, 4, 5])])
    for decoding in ("parallel", "frame_by_frame", "autoregressive"):
        output = model.complete(input_ids, attention_mask, pixels, given, decoding=decoding, guidance_scale=3.0,
                                generator=torch.Generator().manual_seed(0))
        assert torch.equal(output.frames[given], pixels[given])
        assert torch.equal(output.token_ids[given], model.tokenize_video(pixels)[given])


def test_greedy_decoding_modes_agree_when_the_model_ignores_its_inputs():
    # with every decoder weight but the output bias at zero both modes must produce the argmax class everywhere
    model = tiny_model()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.zero_()
        model.head.class_logits.bias[5] = 4.0
    input_ids, attention_mask, pixels = batch(model, batch_size=1)
    given = given_mask_from_indices([0], 6)[None]
    for decoding in ("parallel", "frame_by_frame", "autoregressive"):
        output = model.complete(input_ids, attention_mask, pixels, given, decoding=decoding, temperature=0)
        assert (output.token_ids[0, 1:] == 5).all()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda px, g: (px[:, :5], g), "pixel_values_videos"),
        (lambda px, g: (px.masked_fill(px > 0.99, float("nan")), g), "NaN"),
        (lambda px, g: (px, g[:, :4]), "given_frames_mask"),
    ],
)
def test_completion_rejects_bad_input(change, message):
    model = tiny_model()
    input_ids, attention_mask, pixels = batch(model)
    given = given_mask_from_indices([0], 6)[None].expand(3, -1)
    pixels, given = change(pixels, given)
    with pytest.raises(ValueError, match=message):
        model.complete(input_ids, attention_mask, pixels, given)


def test_bad_training_masks_and_decoding_names_are_rejected():
    model = tiny_model()
    input_ids, attention_mask, pixels = batch(model)
    given = given_mask_from_indices([0], 6)[None].expand(3, -1)
    token_mask = torch.ones(3, 6, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="given frames"):
        model(input_ids, attention_mask, pixels, given_frames_mask=given, token_mask=token_mask)
    with pytest.raises(ValueError, match="decoding"):
        model.complete(input_ids, attention_mask, pixels, given, decoding="beam")
    with pytest.raises(ValueError, match="max_text_length"):
        model(torch.zeros(3, 80, dtype=torch.long), None, pixels, given_frames_mask=given,
              token_mask=token_mask & ~given[:, :, None, None])


# -- save / load ---------------------------------------------------------------------------------------------------


def test_save_load_round_trip_is_exact_including_p(tmp_path):
    model = tiny_model(mask_probability_alpha=0.5).train()
    input_ids, attention_mask, pixels = batch(model)
    output = model(**model.draw_training_masks(input_ids, attention_mask, pixels))
    model.update_mask_probabilities(output.frame_losses, output.frame_token_counts)  # moves p
    assert not torch.equal(model.mask_probabilities, torch.full((6,), model.config.mask_probability))
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, MMVGForVideoCompletion)
    assert torch.equal(loaded.mask_probabilities, model.mask_probabilities)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    given = given_mask_from_indices([0], 6)[None].expand(3, -1)
    token_mask = ~given[:, :, None, None].expand(3, 6, 4, 4)
    kwargs = dict(given_frames_mask=given, token_mask=token_mask)
    assert torch.equal(model(input_ids, attention_mask, pixels, **kwargs).logits,
                       loaded(input_ids, attention_mask, pixels, **kwargs).logits)


def test_from_tvq_copies_the_trained_tokenizer(tmp_path):
    torch.manual_seed(0)
    tvq = TVQModel(TVQConfig(**TINY_TVQ))
    with torch.no_grad():
        tvq.quantizer.codebook.weight.normal_()
    tvq.save_pretrained(tmp_path)
    model = MMVGForVideoCompletion.from_tvq(str(tmp_path), **TINY)
    assert model.config.tvq_config.codebook_size == 32
    for name, tensor in tvq.state_dict().items():
        assert torch.equal(model.tvq.state_dict()[name], tensor), name
    assert not any(parameter.requires_grad for parameter in model.tvq.parameters())
    model.train()
    assert not model.tvq.training


@pytest.mark.parametrize("decoding", ["parallel", "frame_by_frame", "autoregressive"])
def test_guidance_scale_zero_is_the_empty_prompt(decoding):
    # uncond + 0 * (cond - uncond) = uncond: greedy completion with scale 0 must equal the empty prompt's own
    model = tiny_model()
    input_ids, attention_mask, pixels = batch(model, batch_size=2)
    given = given_mask_from_indices([0], 6)[None].expand(2, -1)
    empty_ids = torch.tensor([[49406, 49407]] * 2)
    kwargs = dict(decoding=decoding, temperature=0, num_inference_steps=4)
    guided = model.complete(input_ids, attention_mask, pixels, given, guidance_scale=0.0, **kwargs)
    empty = model.complete(empty_ids, None, pixels, given, **kwargs)
    conditional = model.complete(input_ids, attention_mask, pixels, given, **kwargs)
    assert torch.equal(guided.token_ids, empty.token_ids)
    assert not torch.equal(conditional.token_ids, empty.token_ids)


def test_eager_and_sdpa_attention_agree_and_eager_returns_the_weights():
    input_ids, attention_mask, pixels = batch(tiny_model())
    inputs = tiny_model().draw_training_masks(input_ids, attention_mask, pixels, generator=torch.Generator().manual_seed(0))
    outputs = {}
    for implementation in ("sdpa", "eager"):
        model = tiny_model()
        model.config._attn_implementation = implementation
        outputs[implementation] = model(**inputs, output_attentions=True, output_hidden_states=True)
    torch.testing.assert_close(outputs["eager"].logits, outputs["sdpa"].logits, atol=1e-4, rtol=1e-4)
    eager = outputs["eager"]
    assert len(eager.encoder_attentions) == 1 and len(eager.decoder_attentions) == len(eager.cross_attentions) == 2
    assert eager.cross_attentions[0].shape[:3] == (3, 2, 6 * 4 * 4)  # (B, heads, N * h * w, L)
    # hidden states: the embeddings and every layer's output, in the sequence layout (B, length, D)
    assert len(eager.encoder_hidden_states) == 2 and len(eager.decoder_hidden_states) == 3
    assert eager.decoder_hidden_states[0].shape == (3, 6 * 4 * 4, 32)
    assert not outputs["sdpa"].decoder_attentions  # sdpa computes no weights (transformers warns)
