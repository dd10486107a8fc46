"""The OpenAI CLIP tokenizer, built offline from the BPE merge list shipped with the package.

MMVG encodes captions with CLIP's byte-level BPE (49,408 ids, context length 77). The Hub
checkpoints of that tokenizer cannot be downloaded here, so the vocabulary is rebuilt from
`assets/bpe_simple_vocab_16e6.txt.gz` exactly the way OpenAI's reference tokenizer builds it:

1. the 256 byte symbols of the reversible byte-to-unicode table, in the table's order;
2. the same 256 symbols with the end-of-word marker `</w>`;
3. the first 48,894 merges of the merge list, each joined into one token;
4. `<|startoftext|>` and `<|endoftext|>`.

The ids match the Hub's `openai/clip-vit-*` tokenizers, e.g. "a photo of a cat" encodes to
`[49406, 320, 1125, 539, 320, 2368, 49407]`.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

from transformers import CLIPTokenizer


BPE_MERGES_ASSET = "bpe_simple_vocab_16e6.txt.gz"
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
END_OF_WORD = "</w>"
CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT_LENGTH = 77

# 49,408 ids = 2 * 256 byte symbols + the merges + 2 special tokens.
NUM_MERGES = CLIP_VOCAB_SIZE - 2 * 256 - 2


def bytes_to_unicode() -> dict[int, str]:
    """The reversible byte -> printable unicode character table of byte-level BPE (GPT-2, CLIP).

    Printable Latin-1 bytes stand for themselves; the other 68 bytes (control characters, space,
    soft hyphen ...) are shifted to code points 256, 257, ... in increasing byte order. The dict's
    insertion order (printable bytes first, then the shifted ones) is the order of the first 256
    vocabulary ids.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {byte: chr(byte) for byte in printable}
    num_shifted = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + num_shifted)
            num_shifted += 1
    return table


@lru_cache(maxsize=1)
def _clip_vocab_and_merges() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """Parse the merge list once and return (token -> id, merges); callers must not mutate them."""
    with resources.files("transformers_mmvg").joinpath("assets").joinpath(BPE_MERGES_ASSET).open("rb") as handle:
        lines = gzip.decompress(handle.read()).decode("utf-8").split("\n")
    # Line 0 is the "#version: 0.2" header; the list holds more merges than CLIP uses.
    merges = tuple(tuple(line.split()) for line in lines[1 : 1 + NUM_MERGES])
    if len(merges) != NUM_MERGES or any(len(pair) != 2 for pair in merges):
        raise ValueError(f"{BPE_MERGES_ASSET} is not a valid CLIP merge list")

    byte_symbols = list(bytes_to_unicode().values())
    tokens = [
        *byte_symbols,
        *(symbol + END_OF_WORD for symbol in byte_symbols),
        *("".join(pair) for pair in merges),
        START_OF_TEXT,
        END_OF_TEXT,
    ]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise ValueError(f"expected {CLIP_VOCAB_SIZE} distinct CLIP tokens, built {len(vocab)}")
    return vocab, merges


def load_clip_tokenizer(model_max_length: int = CLIP_CONTEXT_LENGTH) -> CLIPTokenizer:
    """Build OpenAI CLIP's tokenizer without network access.

    Args:
        model_max_length (`int`, *optional*, defaults to 77):
            Context length; `truncation=True` cuts captions to this many ids, `<|startoftext|>` and
            `<|endoftext|>` included.

    Returns:
        A new [`~transformers.CLIPTokenizer`] (49,408 ids) on each call; the parsed vocabulary is
        cached, so repeated calls are cheap. Padding uses `<|endoftext|>` (id 49407), as the Hub's
        CLIP tokenizers do; models must rely on `attention_mask`, not on the pad id.
    """
    vocab, merges = _clip_vocab_and_merges()
    return CLIPTokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        unk_token=END_OF_TEXT,
        bos_token=START_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        model_max_length=model_max_length,
    )


__all__ = ["load_clip_tokenizer"]
