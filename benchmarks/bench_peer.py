"""Decoding speed against a token-by-token GPT with a key/value cache (the released code's scheme, written here in
peer_gpt.py): peer."""

from __future__ import annotations

import argparse

import torch
from builders import CAPTION_LENGTH, _caption_ids, _mmvg_model, _random_video_tokens
from common import _best_seconds, benchmark, header


@benchmark("peer")
def peer(
    args: argparse.Namespace, num_frames: int = 16, batch_sizes: tuple[int, ...] = (1, 16), steps: int = 12
) -> str:
    """Completion time of a 16-frame clip: a token-by-token GPT with a KV cache (the released code's scheme; written
    here, benchmarks/peer_gpt.py) against our autoregressive and parallel decoding, at batch 1 and 16. The keyword
    arguments shrink it for a smoke check."""
    from peer_gpt import PeerGPT

    from transformers_mmvg.masking import given_mask_from_indices

    model = _mmvg_model(num_frames)
    config = model.config
    torch.manual_seed(0)
    gpt = PeerGPT.from_mmvg_config(config, text_length=CAPTION_LENGTH).eval()
    gpt_parameters = sum(parameter.numel() for parameter in gpt.parameters())
    our_parameters = sum(parameter.numel() for name, parameter in model.named_parameters()
                         if not name.startswith("tvq."))
    rows = ["| batch | decoding | model calls | seconds per batch | vs peer GPT |", "|---|---|---|---|---|"]
    missing = (num_frames - 1) * config.tokens_per_frame
    for batch_size in batch_sizes:
        input_ids = _caption_ids(config, batch_size)
        token_ids = _random_video_tokens(config, batch_size)
        given = given_mask_from_indices([0], num_frames)[None].expand(batch_size, -1)

        def peer_completion():
            generator = torch.Generator().manual_seed(0)
            return model.tvq.decode(gpt.generate(input_ids, token_ids[:, :1], num_frames, generator=generator))

        def our_completion(decoding: str):
            return lambda: model.complete(input_ids, None, None, given, video_token_ids=token_ids, decoding=decoding,
                                          num_inference_steps=steps, generator=torch.Generator().manual_seed(0))

        with torch.no_grad():
            reference = _best_seconds(peer_completion, repeats=3)
        timings = [
            ("peer GPT (written here, `peer_gpt.py`), token by token", missing, reference),
            ("MMVG, `decoding=\"autoregressive\"`", (num_frames - 1) * (config.tokens_per_frame + 1),
             _best_seconds(our_completion("autoregressive"), repeats=3)),
            (f"MMVG, `decoding=\"parallel\"`, {steps} steps", steps,
             _best_seconds(our_completion("parallel"), repeats=3)),
        ]
        for label, calls, seconds in timings:
            rows.append(f"| {batch_size} | {label} | {calls} | {seconds:.3f} | {reference / seconds:.2f}x |")
    body = (
        f"## Decoding speed against a token-by-token GPT peer, {num_frames}-frame clips\n\n"
        "The paper's released code completes a clip with a decoder-only GPT that samples the visual tokens one at a "
        "time with a key/value cache (PAPER.md). The peer here is OUR OWN implementation of that scheme "
        "(`benchmarks/peer_gpt.py`, not the released code): a causal transformer of our width and depth "
        f"(hidden {config.hidden_size}, {config.num_attention_heads} heads, intermediate {config.intermediate_size}, "
        f"{config.num_encoder_layers} + {config.num_decoder_layers} = "
        f"{config.num_encoder_layers + config.num_decoder_layers} layers; {gpt_parameters / 1e6:.1f}M parameters, "
        f"most of them its {config.text_vocab_size:,}-word text table; ours {our_parameters / 1e6:.1f}M besides the "
        f"T-VQ) over [{CAPTION_LENGTH} text tokens, {num_frames} x {config.latent_size} x {config.latent_size} "
        f"visual tokens]. Prediction: frame 0 given, {num_frames - 1} x {config.tokens_per_frame} = {missing} tokens "
        "sampled (one forward of the prefix, then one per token). All three start from the cached tokens of frame 0 "
        "and include the T-VQ decode of the clip to pixels; default "
        f"`MMVGConfig(num_frames={num_frames})`, untrained weights "
        "(the time does not depend on them), temperature 1, best of 3 after a warm-up. \"vs peer GPT\" is the "
        "peer's time over the row's time (above 1: faster than the peer).\n\n"
    )
    return body + header("peer", "python benchmarks/run.py --only peer") + "\n" + "\n".join(rows) + "\n"
