"""Peer baseline for the `peer` benchmark, WRITTEN FOR THIS PROJECT (it is not the paper's code): a decoder-only causal
transformer that completes a clip by sampling its visual tokens one at a time with a key/value cache.

The paper's released code (tsujuifu/pytorch_tvc, PAPER.md) "simplified" MMVG into such a VideoGPT/TATS-style GPT:
the sequence is `[text tokens, frame 0 tokens, frame 1 tokens, ...]` in raster order, and every missing visual token
costs one forward of one new position over the cached keys/values of all earlier positions. This module reproduces
that decoding procedure at the width and depth of our model (`PeerGPT.from_mmvg_config`), so that the benchmark
compares decoding schemes, not model sizes. Its weights are never trained: the time does not depend on them.

    gpt = PeerGPT.from_mmvg_config(MMVGConfig(num_frames=16), text_length=8).eval()
    token_ids = gpt.generate(input_ids, given_token_ids, num_frames=16)   # (B, 16, h, w); given: (B, 1, h, w)

Shapes: B clips, Lt text tokens, N frames of h x w tokens (P = h * w), D = hidden_size.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from tqdm.auto import tqdm

from transformers_mmvg import MMVGConfig
from transformers_mmvg.decoding import sample_tokens


class KeyValueCache:
    """Keys and values of every layer for positions `0 .. length - 1`, preallocated for `max_length` positions."""

    def __init__(self, num_layers: int, batch_size: int, num_heads: int, max_length: int, head_size: int,
                 device=None, dtype=None):
        shape = (num_layers, batch_size, num_heads, max_length, head_size)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)


class PeerGPTBlock(nn.Module):
    """Pre-norm GPT block: causal self-attention over the cache and the new positions, then an MLP."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int):
        super().__init__()
        self.num_heads = num_heads
        self.attention_layer_norm = nn.LayerNorm(hidden_size)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.o_proj = nn.Linear(hidden_size, hidden_size)
        self.mlp_layer_norm = nn.LayerNorm(hidden_size)
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, start: int
    ) -> torch.Tensor:
        """`hidden_states` (B, L, D) at positions `start .. start + L - 1`; `keys` / `values` (B, heads, max_length, d)
        are this layer's cache, written at those positions."""
        length = hidden_states.shape[1]
        end = start + length
        qkv = self.qkv(self.attention_layer_norm(hidden_states))
        query, key, value = (rearrange(part, "b l (n d) -> b n l d", n=self.num_heads) for part in qkv.chunk(3, -1))
        keys[:, :, start:end] = key
        values[:, :, start:end] = value
        # one new position sees everything cached; a block of new positions is causal among itself
        mask = None
        if length > 1:
            positions = torch.arange(end, device=hidden_states.device)
            mask = positions[None, :] <= positions[start:end, None]
        attended = F.scaled_dot_product_attention(query, keys[:, :, :end], values[:, :, :end], attn_mask=mask)
        hidden_states = hidden_states + self.o_proj(rearrange(attended, "b n l d -> b l (n d)"))
        return hidden_states + self.fc2(F.gelu(self.fc1(self.mlp_layer_norm(hidden_states))))


class PeerGPT(nn.Module):
    """Decoder-only causal transformer over `[text tokens, visual tokens]` with a head over the K visual codes."""

    def __init__(self, hidden_size: int, num_attention_heads: int, intermediate_size: int, num_layers: int,
                 text_vocab_size: int, codebook_size: int, max_length: int):
        super().__init__()
        self.num_heads = num_attention_heads
        self.max_length = max_length
        self.text_embeddings = nn.Embedding(text_vocab_size, hidden_size)
        self.visual_embeddings = nn.Embedding(codebook_size, hidden_size)
        self.position_embeddings = nn.Embedding(max_length, hidden_size)
        self.blocks = nn.ModuleList(
            [PeerGPTBlock(hidden_size, num_attention_heads, intermediate_size) for _ in range(num_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(hidden_size)
        self.head = nn.Linear(hidden_size, codebook_size)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    @classmethod
    def from_mmvg_config(cls, config: MMVGConfig, text_length: int) -> PeerGPT:
        """The width of `config` (hidden, heads, intermediate size), its encoder + decoder layers as GPT blocks, its
        text vocabulary and codebook, positions for `text_length` text tokens and the clip's N * h * w tokens."""
        return cls(
            hidden_size=config.hidden_size,
            num_attention_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            num_layers=config.num_encoder_layers + config.num_decoder_layers,
            text_vocab_size=config.text_vocab_size,
            codebook_size=config.codebook_size,
            max_length=text_length + config.num_frames * config.tokens_per_frame,
        )

    def forward(self, embeddings: torch.Tensor, cache: KeyValueCache, start: int) -> torch.Tensor:
        """Input embeddings (B, L, D) at positions `start ..` -> next-token logits (B, L, K); fills `cache`."""
        positions = torch.arange(start, start + embeddings.shape[1], device=embeddings.device)
        hidden_states = embeddings + self.position_embeddings(positions)
        for index, block in enumerate(self.blocks):
            hidden_states = block(hidden_states, cache.keys[index], cache.values[index], start)
        return self.head(self.final_layer_norm(hidden_states))

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor,
        given_token_ids: torch.LongTensor,
        num_frames: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> torch.LongTensor:
        """Prediction: text `input_ids` (B, Lt) and the first frames' tokens `given_token_ids` (B, K, h, w) -> the
        clip's tokens (B, num_frames, h, w). One forward over the prefix, then one forward per sampled token:
        (num_frames - K) * h * w samples."""
        batch_size, num_given, height, width = given_token_ids.shape
        given = rearrange(given_token_ids, "b k h w -> b (k h w)")
        prefix = torch.cat([self.text_embeddings(input_ids), self.visual_embeddings(given)], dim=1)
        num_missing = (num_frames - num_given) * height * width
        if prefix.shape[1] + num_missing > self.max_length:
            raise ValueError(f"{prefix.shape[1] + num_missing} positions exceed max_length {self.max_length}")
        head_size = prefix.shape[-1] // self.num_heads
        cache = KeyValueCache(len(self.blocks), batch_size, self.num_heads, self.max_length, head_size,
                              device=prefix.device, dtype=prefix.dtype)
        logits = self(prefix, cache, start=0)[:, -1]
        position = prefix.shape[1]
        sampled = []
        for _ in tqdm(range(num_missing), desc="token-by-token decoding", disable=not progress, leave=False):
            token, _ = sample_tokens(logits, temperature, top_k, top_p, generator)
            sampled.append(token)
            if len(sampled) < num_missing:
                logits = self(self.visual_embeddings(token)[:, None], cache, start=position)[:, -1]
                position += 1
        tokens = torch.cat([given, torch.stack(sampled, dim=1)], dim=1)
        return rearrange(tokens, "b (t h w) -> b t h w", t=num_frames, h=height)
