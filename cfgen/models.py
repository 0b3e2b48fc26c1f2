"""Small models built from configs, saved with `save_pretrained` and loaded back through the
same `from_pretrained` code that real checkpoints use. No download.

`build_clip` makes a randomly initialised transformers CLIP with a CLIP BPE tokenizer whose
vocabulary is built locally (characters plus whole-word merges for a given word list); the
demo pretrains it on the scene world, tests use it tiny. `build_causal_lm` makes a tiny
Llama-architecture LM with a locally trained BPE tokenizer, for the `transformers` backend.
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
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


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


def build_causal_lm(out: str | Path, corpus: Iterable[str] = (), vocab_size: int = 400, seed: int = 0) -> Path:
    """A tiny random-weight Llama-architecture LM with a BPE tokenizer trained here."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    texts = list(corpus) or ["1. a red car\n2. a blue car\n3. two dogs on the grass\n"]
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="</s>")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out
