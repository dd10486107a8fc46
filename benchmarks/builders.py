"""Workloads that several benchmarks measure, each built once (untrained model, fixed random inputs) and returned as
a callable of one step: a training step of either stage, T-VQ encode + decode, an MMVG completion. The fresh-process
measurements (`common._measure_in_subprocess`, the resolution snippet of bench_mmvg_speed.py) call them by name
through `import builders`."""

from __future__ import annotations

from collections.abc import Callable

import torch

TVQ_TRAIN_BATCH_SIZE = 16  # examples/run_tvq.py's --per_device_train_batch_size
MMVG_TRAIN_BATCH_SIZE = 32  # examples/run_mmvg.py's --per_device_train_batch_size
COMPLETION_BATCH_SIZE = 16
CAPTION_LENGTH = 8  # tokens of a TextShapes caption with <|startoftext|> and <|endoftext|>
DEMO_MMVG_OVERRIDES = {"hidden_size": 192, "intermediate_size": 768, "num_attention_heads": 4,
                       "text_embedding_size": 16}  # the committed checkpoint's (transformers_mmvg.demo)


def _mmvg_model(num_frames: int):
    from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion

    torch.manual_seed(0)
    return MMVGForVideoCompletion(MMVGConfig(num_frames=num_frames)).eval()


def _caption_ids(config, batch_size: int, length: int = CAPTION_LENGTH) -> torch.LongTensor:
    """(B, length) caption ids: `<|startoftext|>`, random words, `<|endoftext|>` (the time does not depend on them)."""
    words = torch.randint(0, config.text_bos_token_id, (batch_size, length - 2),
                          generator=torch.Generator().manual_seed(0))
    bos = torch.full((batch_size, 1), config.text_bos_token_id)
    return torch.cat([bos, words, torch.full((batch_size, 1), config.text_eos_token_id)], dim=1)


def _random_video_tokens(config, batch_size: int) -> torch.LongTensor:
    """(B, N, h, w) random T-VQ tokens: what a training step reads from the token cache."""
    shape = (batch_size, config.num_frames, config.latent_size, config.latent_size)
    return torch.randint(0, config.codebook_size, shape, generator=torch.Generator().manual_seed(0))


def _prediction_inputs(config, batch_size: int) -> dict[str, torch.Tensor]:
    """Fixed training inputs: captions, random tokens, frame 0 given, a drawn token mask (the same at every call, so
    that every step does the same work)."""
    from transformers_mmvg.masking import given_mask_from_indices, sample_token_mask

    token_ids = _random_video_tokens(config, batch_size)
    given = given_mask_from_indices([0], config.num_frames)[None].expand(batch_size, -1)
    token_mask = sample_token_mask(given, config.tokens_per_frame, generator=torch.Generator().manual_seed(0))
    return {"input_ids": _caption_ids(config, batch_size), "video_token_ids": token_ids, "given_frames_mask": given,
            "token_mask": token_mask.view_as(token_ids)}


def _tvq_clips(config, batch_size: int) -> torch.Tensor:
    """(B, N, C, H, W) random pixels in [-1, 1]: clips of the default TextShapes preset's length at the T-VQ's size."""
    from transformers_mmvg.data.textshapes import DEFAULT_PRESET, get_preset

    num_frames, size = get_preset(DEFAULT_PRESET).num_frames, config.image_size
    shape = (batch_size, num_frames, config.in_channels, size, size)
    return torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _tvq_frames_per_clip() -> int:
    """Frames of each clip a T-VQ training step codes: examples/run_tvq.py's `--train_frames_per_clip` default."""
    from transformers_mmvg.training_runs import TVQDataArguments

    return TVQDataArguments.train_frames_per_clip


def _tvq_training_step(batch_size: int = TVQ_TRAIN_BATCH_SIZE) -> Callable[[], None]:
    """One step of the default T-VQ as examples/run_tvq.py trains it: `batch_size` clips of the default preset, of
    which `train_frames_per_clip` random ordered frames each are coded; the loss TVQTrainer trains (the model's terms
    plus the perceptual term; the adversarial term is off by default); Adam (lr 1e-3, betas 0.5 / 0.9; the Trainer's
    AdamW with its default weight decay 0 is Adam), gradients clipped at norm 1 (the Trainer's default)."""
    from transformers_mmvg import TVQConfig, TVQModel
    from transformers_mmvg.losses_tvq import build_perceptual_network, generator_loss
    from transformers_mmvg.trainer_tvq import random_frame_subsets

    torch.manual_seed(0)
    model = TVQModel(TVQConfig()).train()
    perceptual_network = build_perceptual_network(model.config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.9))
    clips = _tvq_clips(model.config, batch_size)
    frames_per_clip = _tvq_frames_per_clip()

    def step():
        optimizer.zero_grad(set_to_none=True)
        pixel_values = random_frame_subsets(clips, frames_per_clip)
        outputs = model(pixel_values=pixel_values)
        generator_loss(outputs, pixel_values, model.config, perceptual_network=perceptual_network)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def _tvq_inference(batch_size: int = COMPLETION_BATCH_SIZE) -> Callable[[], None]:
    """T-VQ encode and decode of `batch_size` clips of the default preset (what a completion spends in the T-VQ)."""
    from transformers_mmvg import TVQConfig, TVQModel

    torch.manual_seed(0)
    model = TVQModel(TVQConfig()).eval()
    clips = _tvq_clips(model.config, batch_size)

    def run():
        with torch.no_grad():
            model.decode(model.encode(clips).token_ids)

    return run


def _mmvg_training_step(config_kwargs: dict, batch_size: int = MMVG_TRAIN_BATCH_SIZE,
                        with_optimizer: bool = True) -> Callable[[], None]:
    """One MMVG training step on cached (here: random) tokens of untrained weights.

    With `with_optimizer`, as examples/run_mmvg.py runs it: `draw_training_masks` draws the given frames and the token
    mask (adaptive p_t, task and sequential masking, caption dropout), AdamW (lr 5e-4, betas 0.9 / 0.95, weight decay
    0.01), gradients clipped at norm 1. Without, forward and backward only on fixed inputs (frame 0 given, one drawn
    token mask), so that every call does the same work (FLOP counts, scaling curves)."""
    from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion

    torch.manual_seed(0)
    model = MMVGForVideoCompletion(MMVGConfig(**config_kwargs)).train()
    config = model.config
    if not with_optimizer:
        inputs = _prediction_inputs(config, batch_size)

        def forward_backward():
            model.zero_grad(set_to_none=True)
            model(**inputs).loss.backward()

        return forward_backward

    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=5e-4, betas=(0.9, 0.95), weight_decay=0.01)
    input_ids, token_ids = _caption_ids(config, batch_size), _random_video_tokens(config, batch_size)

    def step():  # as MMVGTrainer: masks drawn outside the pure forward, p_t updated from the output
        optimizer.zero_grad(set_to_none=True)
        output = model(**model.draw_training_masks(input_ids, None, video_token_ids=token_ids))
        output.loss.backward()
        model.update_mask_probabilities(output.frame_losses, output.frame_token_counts)
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()

    return step


def _mmvg_completion(config_kwargs: dict, batch_size: int = COMPLETION_BATCH_SIZE,
                     num_inference_steps: int = 12) -> Callable[[], object]:
    """`model.complete` from pixels (T-VQ encode and decode included): prediction from frame 0, parallel decoding."""
    from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion
    from transformers_mmvg.masking import given_mask_from_indices

    torch.manual_seed(0)
    model = MMVGForVideoCompletion(MMVGConfig(**config_kwargs)).eval()
    config = model.config
    input_ids = _caption_ids(config, batch_size)
    pixel_values = torch.rand(batch_size, config.num_frames, 3, config.image_size, config.image_size) * 2 - 1
    given = given_mask_from_indices([0], config.num_frames)[None].expand(batch_size, -1)
    return lambda: model.complete(input_ids, None, pixel_values, given, decoding="parallel",
                                  num_inference_steps=num_inference_steps, generator=torch.Generator().manual_seed(0))
