"""T-VQ (stage 1): shapes, gradients, every loss term, codebook health, the order head, save/load, config checks."""

import math
import subprocess
import sys

import pytest
import torch
from transformers import AutoModel

from transformers_mmvg import TVQConfig, TVQModel
from transformers_mmvg.trainer_tvq import temporal_order_accuracy
from transformers_mmvg.losses_tvq import (
    PatchDiscriminator,
    RandomConvFeatures,
    TorchvisionFeatures,
    adaptive_adversarial_weight,
    adversarial_active,
    build_perceptual_network,
    discriminator_loss,
    generator_loss,
    hinge_d_loss,
    hinge_g_loss,
    perceptual_loss,
)
from transformers_mmvg.modeling_tvq import (
    CodebookUsageTracker,
    codebook_perplexity,
    codebook_usage,
    kmeans_plus_plus_seeds,
    sample_frame_pairs,
)

# 16x16 frames, 3 levels -> downsampling factor 4 -> 4x4 tokens per frame
TINY = dict(
    image_size=16,
    hidden_channels=8,
    channel_multipliers=[1, 2, 2],
    latent_channels=16,
    num_groups=4,
    codebook_size=32,
    codebook_dim=4,
    temporal_hidden_size=32,
)


def tiny_model(seed: int = 0, **overrides) -> TVQModel:
    torch.manual_seed(seed)
    return TVQModel(TVQConfig(**{**TINY, **overrides}))


def moving_square_clips(num_clips: int, seed: int, size=16, num_frames=4, square=4, speed=4) -> torch.Tensor:
    """Clips (B, T, 3, size, size) in [-1, 1]: black frames, one coloured square moving right `speed` px/frame."""
    generator = torch.Generator().manual_seed(seed)
    clips = -torch.ones(num_clips, num_frames, 3, size, size)
    max_x = size - square - speed * (num_frames - 1)
    for clip in clips:
        x = int(torch.randint(max_x + 1, (1,), generator=generator))
        y = int(torch.randint(size - square + 1, (1,), generator=generator))
        color = torch.rand(3, 1, 1, generator=generator) * 2 - 1
        color[int(torch.randint(3, (1,), generator=generator))] = 1.0  # at least one bright channel
        for t in range(num_frames):
            clip[t, :, y : y + square, x + speed * t : x + speed * t + square] = color
    return clips


# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------


def test_config_derived_sizes():
    config = TVQConfig(**TINY)
    assert config.downsampling_factor == 4
    assert config.latent_size == 4
    assert config.level_channels == [8, 16, 16]
    assert config.res_blocks_per_level == [0, 0, 0]
    assert TVQConfig(**{**TINY, "num_res_blocks": [0, 1, 2]}).res_blocks_per_level == [0, 1, 2]
    default = TVQConfig()
    assert (default.image_size, default.downsampling_factor, default.latent_size) == (64, 16, 4)
    assert default.model_type == "tvq"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(image_size=18), "divisible by the downsampling factor"),
        (dict(num_groups=3), "`num_groups` \\(3\\) must divide"),
        (dict(channel_multipliers=[]), "non-empty list"),
        (dict(num_res_blocks=[1, 1]), "one entry per level"),
        (dict(num_res_blocks=-1), "`num_res_blocks` must be >= 0"),
        (dict(codebook_size=1), "`codebook_size` must be >= 2"),
        (dict(codebook_dim=0), "`codebook_dim` must be a positive integer"),
        (dict(beta=-0.1), "`beta` must be >= 0"),
        (dict(dead_code_restart_steps=-5), "`dead_code_restart_steps` must be >= 0"),
        (dict(perceptual_network="vgg16"), "'random_conv' or 'torchvision:<model name>'"),
        (
            dict(use_l1_loss=False, use_l2_loss=False, use_perceptual_loss=False, use_adversarial_loss=False),
            "At least one reconstruction term",
        ),
    ],
)
def test_config_rejects_invalid_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        TVQConfig(**{**TINY, **overrides})


# ---------------------------------------------------------------------------------------------------------------
# Encode / decode
# ---------------------------------------------------------------------------------------------------------------


def test_encode_decode_shapes_and_dtypes():
    model = tiny_model().eval()
    clips = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        encoded = model.encode(clips)
        frames = model.decode(encoded.token_ids)
    assert encoded.token_ids.shape == (2, 3, 4, 4) and encoded.token_ids.dtype == torch.int64
    assert encoded[0] is encoded.token_ids  # token_ids is the first field
    assert encoded.quantized_latents.shape == (2, 3, 4, 4, 4)
    assert 0 <= int(encoded.token_ids.min()) and int(encoded.token_ids.max()) < 32
    assert frames.shape == (2, 3, 3, 16, 16) and frames.dtype == torch.float32
    assert float(frames.min()) >= -1.0 and float(frames.max()) <= 1.0

    with torch.no_grad():  # single images: (B, C, H, W) <-> (B, h, w)
        image_ids = model.encode(clips[:, 0]).token_ids
        images = model.decode(image_ids)
        outputs = model(clips[:, 0])
    assert torch.equal(image_ids, encoded.token_ids[:, 0])
    assert images.shape == (2, 3, 16, 16)
    assert outputs.reconstruction.shape == (2, 3, 16, 16) and outputs.token_ids.shape == (2, 4, 4)
    assert outputs.temporal_loss is None  # one frame: no pair to order


def test_forward_reconstruction_matches_decode_of_its_tokens():
    model = tiny_model().eval()
    clips = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        outputs = model(clips)
        encoded = model.encode(clips)
        assert torch.equal(outputs.token_ids, encoded.token_ids)
        assert torch.equal(outputs.quantized_latents, encoded.quantized_latents)  # (B, T, D, h, w), no second encode
        torch.testing.assert_close(outputs.reconstruction, model.decode(outputs.token_ids), atol=1e-5, rtol=0)


def test_straight_through_gradient_reaches_the_encoder():
    only_l1 = dict(
        use_l2_loss=False,
        use_perceptual_loss=False,
        use_codebook_loss=False,
        use_commitment_loss=False,
        use_temporal_loss=False,
    )
    model = tiny_model(**only_l1).train()
    outputs = model(torch.rand(2, 2, 3, 16, 16) * 2 - 1)
    assert set(k for k, v in outputs.items() if k.endswith("_loss")) == {"l1_loss"}
    outputs.loss.backward()
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0
    assert model.quantizer.in_proj.weight.grad.abs().sum() > 0
    assert model.quantizer.codebook.weight.grad is None  # only the codebook loss moves the codes


# ---------------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------------


def test_loss_is_the_weighted_sum_of_the_terms():
    model = tiny_model(l1_weight=0.5, l2_weight=2.0, perceptual_weight=0.3, beta=0.25, temporal_weight=0.7).train()
    clips = torch.rand(2, 4, 3, 16, 16) * 2 - 1
    o = model(clips)
    expected = 0.5 * o.l1_loss + 2.0 * o.l2_loss + 1.0 * o.codebook_loss + 0.25 * o.commitment_loss + 0.7 * o.temporal_loss
    torch.testing.assert_close(o.loss, expected)
    # the perceptual and adversarial terms are the trainer's, not the model's
    assert not any(name.startswith(("perceptual", "adversarial")) for name in o)

    network = build_perceptual_network(model.config)
    losses = generator_loss(o, clips, model.config, perceptual_network=network)
    assert sorted(losses) == ["loss", "perceptual_loss"]
    torch.testing.assert_close(losses["perceptual_loss"], perceptual_loss(network, o.reconstruction, clips))
    torch.testing.assert_close(losses["loss"], expected + 0.3 * losses["perceptual_loss"])


def test_every_loss_term_is_finite_and_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = tiny_model(codebook_init="random", dead_code_restart_steps=0, temporal_weight=1.0).train()
    clips = moving_square_clips(8, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    network = build_perceptual_network(model.config)
    terms = ["l1_loss", "l2_loss", "perceptual_loss", "codebook_loss", "commitment_loss", "temporal_loss", "loss"]
    history = {term: [] for term in terms}
    for _ in range(40):
        outputs = model(clips)
        outputs = {**outputs, **generator_loss(outputs, clips, model.config, perceptual_network=network)}
        for term in terms:
            assert torch.isfinite(outputs[term]), term
            history[term].append(outputs[term].item())
        outputs["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
    for term in terms:
        assert history[term][-1] < history[term][0], (term, history[term][0], history[term][-1])


def test_discriminator_loss_falls_and_generator_hinge_term_is_applied_from_the_start_step():
    torch.manual_seed(0)
    model = tiny_model(use_adversarial_loss=True, discriminator_start_step=3).train()
    config = model.config
    discriminator = PatchDiscriminator(in_channels=3, base_channels=8, num_layers=2, num_groups=4)
    network = build_perceptual_network(config)
    clips = moving_square_clips(4, seed=2)
    assert not adversarial_active(config, 2) and adversarial_active(config, 3) and adversarial_active(config, None)
    assert not adversarial_active(TVQConfig(**TINY), None)  # use_adversarial_loss is off by default

    outputs = model(clips)
    losses = generator_loss(outputs, clips, config, network, discriminator, model.decoder.conv_out.weight)
    assert torch.isfinite(losses["adversarial_loss"]) and float(losses["adversarial_weight"]) > 0
    torch.testing.assert_close(
        losses["adversarial_loss"], hinge_g_loss(discriminator(outputs.reconstruction.flatten(0, 1)))
    )
    expected_weight = config.adversarial_weight * adaptive_adversarial_weight(
        outputs.l1_loss + outputs.l2_loss + config.perceptual_weight * losses["perceptual_loss"],
        losses["adversarial_loss"],
        model.decoder.conv_out.weight,
    )
    torch.testing.assert_close(losses["adversarial_weight"], expected_weight)
    rest = (
        outputs.l1_loss + outputs.l2_loss + config.perceptual_weight * losses["perceptual_loss"]
        + outputs.codebook_loss + 0.25 * outputs.commitment_loss + config.temporal_weight * outputs.temporal_loss
    )
    torch.testing.assert_close(losses["loss"], rest + losses["adversarial_weight"] * losses["adversarial_loss"])
    with torch.no_grad():  # no graph to the decoder: no adaptive weight, only `adversarial_weight`
        unadapted = generator_loss(model(clips), clips, config, network, discriminator, model.decoder.conv_out.weight)
    assert float(unadapted["adversarial_weight"]) == pytest.approx(config.adversarial_weight)

    fake = outputs.reconstruction.detach()
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-3)
    d_losses = []
    for _ in range(15):
        loss = discriminator_loss(discriminator, clips, fake)
        d_losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(math.isfinite(value) for value in d_losses)
    assert d_losses[-1] < d_losses[0]


def test_hinge_losses_and_adaptive_weight_on_hand_made_values():
    logits_real, logits_fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    assert float(hinge_d_loss(logits_real, logits_fake)) == pytest.approx(0.5 * (0.5 + 0.75))
    assert float(hinge_g_loss(torch.tensor([1.0, 3.0]))) == pytest.approx(-2.0)

    weight = torch.ones(4, requires_grad=True)  # grad norms: nll -> 3 * 2 = 6, g -> 1 * 2 = 2
    ratio = adaptive_adversarial_weight(3 * weight.sum(), weight.sum(), weight, eps=0.0)
    assert float(ratio) == pytest.approx(3.0) and not ratio.requires_grad
    clamped = adaptive_adversarial_weight(3 * weight.sum(), 1e-6 * weight.sum(), weight, max_weight=10.0)
    assert float(clamped) == 10.0


def test_patch_discriminator_judges_every_frame():
    discriminator = PatchDiscriminator()
    assert discriminator(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    assert discriminator(torch.zeros(2, 4, 3, 64, 64)).shape == (8, 1, 6, 6)


def test_perceptual_network_is_fixed_seeded_and_takes_no_gradient():
    model = tiny_model().train()
    rng_state = torch.get_rng_state()
    network = build_perceptual_network(model.config)
    assert torch.equal(torch.get_rng_state(), rng_state)  # building F draws nothing a training run would
    assert isinstance(network, RandomConvFeatures)
    clips = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    generator_loss(model(clips), clips, model.config, perceptual_network=network)["loss"].backward()
    assert model.decoder.conv_out.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in network.parameters())
    same, other = RandomConvFeatures(seed=0), RandomConvFeatures(seed=1)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    assert all(torch.equal(a, b) for a, b in zip(network(images), same(images)))
    assert not torch.equal(network(images)[0], other(images)[0])
    assert [f.shape[-1] for f in network(images)] == [16, 8, 4]


def test_a_custom_perceptual_network_can_be_plugged_in():
    model = tiny_model().eval()
    clips = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        outputs = model(clips)
        losses = generator_loss(outputs, clips, model.config, perceptual_network=lambda images: [images])
    torch.testing.assert_close(losses["perceptual_loss"], outputs.l1_loss)  # F = identity: the pixel L1


def test_torchvision_features_load_local_weights(tmp_path):
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    weights_path = str(tmp_path / "resnet18.pth")
    config = TVQConfig(**TINY, perceptual_network="torchvision:resnet18", perceptual_weights_path=weights_path)
    network = build_perceptual_network(config)
    assert isinstance(network, TorchvisionFeatures) and network.return_nodes == ["layer1", "layer2", "layer3", "layer4"]
    loaded = dict(network.extractor.named_parameters())
    assert torch.equal(loaded["conv1.weight"], reference.conv1.weight)
    features = network(torch.zeros(1, 3, 32, 32))
    assert [f.shape[1] for f in features] == [64, 128, 256, 512]


# ---------------------------------------------------------------------------------------------------------------
# Temporal head
# ---------------------------------------------------------------------------------------------------------------


def test_frame_pairs_are_distinct_and_cover_both_orders():
    torch.manual_seed(0)
    first, second = sample_frame_pairs(64, 4, 8)
    assert first.shape == (64, 8) and bool((first != second).all())
    assert bool((first < second).any()) and bool((first > second).any())
    assert int(first.max()) == 3 and int(second.max()) == 3


def test_temporal_head_learns_the_order_of_a_square_moving_right():
    model = tiny_model(seed=0, temporal_weight=1.0, temporal_pairs_per_clip=6).train()
    train_clips = moving_square_clips(16, seed=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        outputs = model(train_clips)
        outputs.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    held_out = moving_square_clips(16, seed=4)
    pairs = [(i, j) for i in range(4) for j in range(4) if i != j]
    first, second = torch.tensor(pairs).T
    with torch.no_grad():
        latents = model.encode(held_out).quantized_latents
        logits = model.temporal_head(latents[:, first].flatten(0, 1), latents[:, second].flatten(0, 1))
    labels = (first < second).repeat(len(held_out))
    accuracy = ((logits > 0) == labels).float().mean().item()
    assert accuracy >= 0.95, accuracy


# ---------------------------------------------------------------------------------------------------------------
# Codebook health
# ---------------------------------------------------------------------------------------------------------------


def test_codebook_usage_tracker_on_a_hand_made_example():
    tracker = CodebookUsageTracker(codebook_size=8)
    tracker.update(torch.tensor([[0, 1, 1], [3, 3, 7]]))
    assert tracker.usage == 0.5  # codes 0, 1, 3, 7 of 8
    tracker.update(torch.tensor([2]))
    assert tracker.usage == 5 / 8
    assert tracker.counts.tolist() == [1, 2, 1, 2, 0, 0, 0, 1]
    probabilities = torch.tensor([1, 2, 1, 2, 1]) / 7
    assert tracker.perplexity == pytest.approx(math.exp(-(probabilities * probabilities.log()).sum().item()), rel=1e-6)
    tracker.reset()
    assert tracker.usage == 0.0
    assert codebook_usage(torch.tensor([0, 3, 0, 1])) == 0.5
    assert float(codebook_perplexity(torch.tensor([5, 5, 5, 5]))) == pytest.approx(4.0)
    assert float(codebook_perplexity(torch.tensor([0, 9, 0, 0]))) == pytest.approx(1.0)


def test_kmeans_plus_plus_seeds_pick_every_distinct_vector_first():
    torch.manual_seed(0)
    points = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    vectors = points.repeat_interleave(torch.tensor([50, 1, 1]), dim=0)  # one point is 50x more frequent
    seeds = kmeans_plus_plus_seeds(vectors, 3)
    assert sorted(map(tuple, seeds.tolist())) == sorted(map(tuple, points.tolist()))


def _distance_to_nearest(rows: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Exact Euclidean distance from every row to its nearest candidate (no matmul shortcut)."""
    return (rows[:, None, :] - candidates[None, :, :]).norm(dim=-1).min(dim=1).values


def _batch_vectors(model: TVQModel, clips: torch.Tensor) -> torch.Tensor:
    """The (normalised) encoder outputs z that the quantizer sees, (N*h*w, codebook_dim)."""
    with torch.no_grad():
        z = model.quantizer.project_in(model.encoder(clips.flatten(0, 1)))
    return z.reshape(-1, z.shape[-1])


def test_data_init_replaces_the_codebook_with_encoder_outputs_once():
    model = tiny_model(codebook_init="data", dead_code_restart_steps=0)
    clips = torch.rand(4, 4, 3, 16, 16) * 2 - 1  # 4*4*16 = 256 vectors for 32 codes
    random_codes = model.quantizer.codebook.weight.detach().clone()

    with torch.no_grad():
        model.eval()(clips)  # eval mode never touches the codebook
    assert torch.equal(model.quantizer.codebook.weight, random_codes)
    assert int(model.quantizer.codebook_initialized) == 0

    with torch.no_grad():
        model.train()(clips)
    codes = model.quantizer.codebook.weight.detach().clone()
    assert int(model.quantizer.codebook_initialized) == 1
    nearest = _distance_to_nearest(codes, _batch_vectors(model, clips))
    assert float(nearest.max()) < 1e-5  # every code is one of the batch's encoder outputs
    assert len(set(map(tuple, codes.tolist()))) == 32  # k-means++ picked 32 different ones

    with torch.no_grad():
        model(torch.rand(4, 4, 3, 16, 16) * 2 - 1)  # second training forward: no re-initialisation
    assert torch.equal(model.quantizer.codebook.weight, codes)


def test_dead_codes_are_restarted_from_encoder_outputs_after_k_unused_steps():
    model = tiny_model(codebook_init="random", dead_code_restart_steps=3).train()
    quantizer = model.quantizer
    clips = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    codes_before = quantizer.codebook.weight.detach().clone()
    with torch.no_grad():
        for _ in range(3):  # same batch, no optimizer: the same codes stay unused
            used = model(clips).token_ids.unique()
    dead = torch.ones(32, dtype=torch.bool)
    dead[used] = False
    assert int(dead.sum()) > 0
    assert quantizer.steps_since_used[dead].tolist() == [3] * int(dead.sum())
    assert quantizer.steps_since_used[~dead].tolist() == [0] * int((~dead).sum())
    assert torch.equal(quantizer.codebook.weight, codes_before)  # nothing restarted yet

    with torch.no_grad():
        model.eval()(clips)  # eval: no restart, no counting
    assert quantizer.steps_since_used[dead].tolist() == [3] * int(dead.sum())

    new_clips = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        model.train()(new_clips)
    codes_after = quantizer.codebook.weight.detach()
    assert torch.equal(codes_after[~dead], codes_before[~dead])  # live codes untouched
    nearest = _distance_to_nearest(codes_after[dead], _batch_vectors(model, new_clips))
    assert float(nearest.max()) < 1e-5  # every dead code is now an encoder output of the new batch
    assert int(quantizer.steps_since_used[dead].max()) <= 1  # counters restarted


def test_l2_normalised_lookup_is_by_cosine_similarity():
    model = tiny_model(codebook_l2_normalize=True, codebook_init="random").eval()
    scaled = model.quantizer.codebook.weight.detach() * torch.rand(32, 1).add(0.5)  # rescaling changes nothing
    with torch.no_grad():
        clips = torch.rand(1, 2, 3, 16, 16) * 2 - 1
        ids = model.encode(clips).token_ids
        model.quantizer.codebook.weight.copy_(scaled)
        assert torch.equal(model.encode(clips).token_ids, ids)
        codes = model.encode(clips).quantized_latents
    torch.testing.assert_close(codes.norm(dim=2), torch.ones(1, 2, 4, 4))


# ---------------------------------------------------------------------------------------------------------------
# Save / load
# ---------------------------------------------------------------------------------------------------------------


def test_eval_forward_is_deterministic_and_scores_every_frame_pair():
    model = tiny_model().eval()
    clips = torch.rand(2, 4, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        first, second = model(clips), model(clips)
    for name, value in first.items():
        assert torch.equal(value, second[name]), name
    # every ordered pair: the eval temporal accuracy is the trainer's all-pairs accuracy of the same latents
    correct, total = temporal_order_accuracy(model, first.quantized_latents)
    assert total == 2 * 4 * 3
    assert first.temporal_accuracy.item() == correct / total


def test_inference_imports_no_training_code():
    """Encoding and decoding need neither the losses, the discriminator nor the trainers."""
    script = (
        "import sys; import transformers_mmvg.modeling_tvq, transformers_mmvg.modeling_mmvg; "
        "print(sorted(name for name in sys.modules if name.startswith('transformers_mmvg.')))"
    )
    modules = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    for training_module in ("losses_tvq", "trainer_tvq", "trainer_mmvg", "training_runs"):
        assert f"transformers_mmvg.{training_module}'" not in modules, training_module
    assert "transformers_mmvg.modeling_tvq'" in modules


def test_save_pretrained_and_auto_model_round_trip(tmp_path):
    model = tiny_model(num_res_blocks=[0, 1, 1]).train()
    clips = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        model(clips)  # data-initialises the codebook and counts code use
    model.eval()
    model.save_pretrained(tmp_path)

    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, TVQModel) and not loaded.training
    assert loaded.config.num_res_blocks == [0, 1, 1]
    assert int(loaded.quantizer.codebook_initialized) == 1
    assert torch.equal(loaded.quantizer.steps_since_used, model.quantizer.steps_since_used)
    with torch.no_grad():
        ids, loaded_ids = model.encode(clips).token_ids, loaded.encode(clips).token_ids
        assert torch.equal(loaded_ids, ids)
        assert torch.equal(loaded.decode(ids), model.decode(ids))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
