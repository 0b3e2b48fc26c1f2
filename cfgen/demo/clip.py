"""The demo's small CLIP, built from a config, saved with `save_pretrained` and loaded back
through the same `from_pretrained` code that real checkpoints use. No download.

`build_clip` makes a randomly initialised transformers CLIP with a CLIP BPE tokenizer whose
vocabulary is built locally (characters plus whole-word merges for a given word list); the
demo pretrains it on the scene world (`pretrain.py`), tests use it tiny.
"""
from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Iterable

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def write_clip_tokenizer(out: str | Path, words: Iterable[str] = ()) -> None:
    """vocab.json + merges.txt for `CLIPTokenizer`: every printable character (as inner and
    word-final piece) plus a merge chain for each word in `words`, so they become one token."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chars = [c for c in string.printable if not c.isspace()]
    vocab: dict[str, int] = {}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for c in chars:
        vocab.setdefault(c + "</w>", len(vocab))
    merges: list[str] = []
    seen: set[str] = set()
    for w in sorted({w.lower() for w in words if w}):
        pieces = list(w[:-1]) + [w[-1] + "</w>"]
        cur = pieces[0]
        for p in pieces[1:]:
            m = f"{cur} {p}"
            cur = cur + p
            if m not in seen:
                seen.add(m)
                merges.append(m)
            vocab.setdefault(cur, len(vocab))
    vocab.setdefault(BOS, len(vocab))
    vocab.setdefault(EOS, len(vocab))
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges))


def build_clip(out: str | Path, words: Iterable[str] = (), image_size: int = 32, patch_size: int = 4,
               width: int = 64, layers: int = 3, text_width: int = 64, text_layers: int = 2,
               heads: int = 4, embed_dim: int = 64, max_length: int = 32, seed: int = 0) -> Path:
    """A random-weight CLIP + processor saved to `out`; loads with `CLIPModel.from_pretrained`."""
    import torch
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor,
                              CLIPTextConfig, CLIPTokenizer, CLIPVisionConfig)
    out = Path(out)
    write_clip_tokenizer(out, words)
    tok = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), model_max_length=max_length)
    tok.pad_token = EOS
    text = CLIPTextConfig(vocab_size=len(tok), hidden_size=text_width, intermediate_size=text_width * 4,
                          num_hidden_layers=text_layers, num_attention_heads=heads,
                          max_position_embeddings=max_length, projection_dim=embed_dim,
                          bos_token_id=tok.convert_tokens_to_ids(BOS),
                          eos_token_id=tok.convert_tokens_to_ids(EOS),
                          pad_token_id=tok.convert_tokens_to_ids(EOS))
    vision = CLIPVisionConfig(hidden_size=width, intermediate_size=width * 4, num_hidden_layers=layers,
                              num_attention_heads=heads, image_size=image_size, patch_size=patch_size,
                              projection_dim=embed_dim)
    cfg = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=embed_dim)
    torch.manual_seed(seed)
    model = CLIPModel(cfg)
    improc = CLIPImageProcessor(size={"shortest_edge": image_size},
                                crop_size={"height": image_size, "width": image_size})
    model.save_pretrained(out)
    CLIPProcessor(image_processor=improc, tokenizer=tok).save_pretrained(out)
    return out
