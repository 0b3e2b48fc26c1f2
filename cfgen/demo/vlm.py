"""The demo's small generative VLM: LLaVA-1.5's architecture (a CLIP vision tower, an MLP
projector, a Llama language model) at scene-world size, built from configs and saved with
`save_pretrained`, so `cfgen demo --backbone vlm` trains it through the same E5-V embedding code
(`cfgen/train/vlm.py`) that real LLaVA checkpoints use. No download.

As LLaVA starts from a released CLIP, `build_world_vlm` can start its vision tower from the
demo's stand-in CLIP; the projector and the language model start random and are pretrained on
the web split (`pretrain.py`, `PretrainConfig.backbone = "vlm"`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from ..train.vlm import MARKER, check_pooling

IMAGE_TOKEN = "<image>"
# The words of the E5-V prompts (cfgen/train/vlm.py), as the whitespace tokenizer splits them.
PROMPT_WORDS = ["summarize", "above", "image", "sentence", "in", "one", "word", ":", "Summarize"]


def build_world_vlm(out: str | Path, words: Iterable[str] = (), clip: str | Path | None = None,
                    image_size: int = 64, patch_size: int = 8, width: int = 64, layers: int = 3,
                    lm_width: int = 64, lm_layers: int = 2, heads: int = 4, pooling: str = "last",
                    seed: int = 0) -> Path:
    """A LLaVA-architecture VLM + processor saved to `out` (loads with
    `AutoModelForImageTextToText` / `AutoProcessor`). With `clip`, the vision tower's config and
    weights come from that CLIP checkpoint (its image size, patch size and width override these).
    `pooling` (cfgen/train/vlm.py POOLINGS) is saved beside it for every later load."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (CLIPImageProcessor, CLIPModel, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast)
    check_pooling(pooling)
    out = Path(out)
    specials = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]
    vocab = {t: i for i, t in enumerate(specials)}
    for w in sorted(set(words) | set(PROMPT_WORDS)):
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="<pad>", extra_special_tokens={"image_token": IMAGE_TOKEN})
    source = CLIPModel.from_pretrained(clip, trust_remote_code=False) if clip is not None else None
    if source is not None:
        vision = source.config.vision_config
        image_size, patch_size = vision.image_size, vision.patch_size
    else:
        vision = CLIPVisionConfig(hidden_size=width, intermediate_size=width * 4, num_hidden_layers=layers,
                                  num_attention_heads=heads, image_size=image_size, patch_size=patch_size)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=lm_width, intermediate_size=lm_width * 4,
                       num_hidden_layers=lm_layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=256, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids(IMAGE_TOKEN),
                      vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg)
    if source is not None:
        missing = model.model.vision_tower.load_state_dict(source.vision_model.state_dict(), strict=False)
        if missing.unexpected_keys:
            raise ValueError(f"{clip}: vision weights do not fit the VLM's vision tower: {missing.unexpected_keys[:3]}")
    model.save_pretrained(out)
    improc = CLIPImageProcessor(size={"shortest_edge": image_size},
                                crop_size={"height": image_size, "width": image_size})
    LlavaProcessor(image_processor=improc, tokenizer=tok, patch_size=patch_size, vision_feature_select_strategy="default",
                   num_additional_image_tokens=1).save_pretrained(out)
    (out / MARKER).write_text(json.dumps({"pooling": pooling}))
    return out
