#!/usr/bin/env python
"""Re-save an MMVG folder written before the base-model layout (issue 13) in the current one, in place.

    python checkpoints/convert_layout.py checkpoints/mmvg-textshapes-64x8

The weights are the same numbers under new names (`word_embeddings` -> `model.embeddings.word_embeddings`,
`encoder_layers` -> `model.encoder.layers`, `decoder_layers` -> `model.decoder.layers`, `code_query` ->
`head.code_query`, ...), plus `model.embeddings.visual_token_embeddings`, the T-VQ's code vectors. The folder's other
files (logs, processor, samples) are left as they are. Run once per old folder; a folder already in the new layout is
refused.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from safetensors.torch import load_file, save_file

from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion

RENAMES = [
    (r"^(word_embeddings|word_projection|text_position_embeddings|visual_projection|span_embedding|modality_embeddings"
     r"|frame_position_embeddings|spatial_position_embeddings|decoder_token_projection|mask_embedding"
     r"|previous_token_projection|previous_mask_embedding|previous_start_embedding)\b", r"model.embeddings.\1"),
    (r"^encoder_layers\.", "model.encoder.layers."),
    (r"^encoder_layer_norm\.", "model.encoder.layer_norm."),
    (r"^decoder_layers\.", "model.decoder.layers."),
    (r"^decoder_layer_norm\.", "model.decoder.layer_norm."),
    (r"^(code_query|class_logits)\.", r"head.\1."),
]


def convert(folder: Path) -> None:
    weights_file = folder / "model.safetensors"
    old = load_file(weights_file)
    if any(key.startswith("model.") for key in old):
        raise SystemExit(f"{folder} is already in the current layout; nothing to do.")
    new = {}
    for key, value in old.items():
        for pattern, replacement in RENAMES:
            key = re.sub(pattern, replacement, key)
        new[key] = value
    model = MMVGForVideoCompletion(MMVGConfig.from_pretrained(folder))
    missing, unexpected = model.load_state_dict(new, strict=False)
    if unexpected or set(missing) != {"model.embeddings.visual_token_embeddings.weight"}:
        raise SystemExit(f"unexpected layout: missing {missing}, unexpected {unexpected}")
    model.copy_tvq_codebook()
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    save_file(state, weights_file, metadata={"format": "pt"})
    print(f"{folder}: {len(old)} tensors renamed, visual token embeddings added ({len(state)} tensors)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    convert(parser.parse_args().folder)
