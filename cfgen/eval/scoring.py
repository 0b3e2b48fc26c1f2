"""Scorers of `cfgen eval`: the ItemScorer contract every scorer meets, and the contrastive
Scorer (S = cosine similarity of a dual encoder's embeddings). The generative scorer is in
`generative.py`; the benchmark loaders are in `benchmarks.py`."""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from PIL import Image

from .benchmarks import Item, _img_key, image_error, load_image


class ItemScorer(Protocol):
    """The contract every eval scorer meets (tests/test_eval_scorers.py runs it over each one):
    `item_scores` gives one score per option of each item; an image it cannot read is recorded in
    `unreadable` (image key -> reason), never raised; `bs` is its batch size; `enc` its dual encoder,
    or None when it has no embeddings (retrieval and zero-shot refuse it); `generative` says
    whether it answers yes/no questions through `p_yes` (POPE, MME)."""

    bs: int
    enc: Any
    unreadable: dict[tuple, str]
    generative: bool

    def item_scores(self, items: list[Item]) -> list[np.ndarray]: ...


class Scorer:
    """Embeds each distinct image and caption once; S = cosine similarity (an ItemScorer)."""

    generative = False

    def __init__(self, encoder: Any, batch_size: int = 64):
        self.enc, self.bs = encoder, batch_size
        self.unreadable: dict[tuple, str] = {}

    def embed_items(self, items: list[Item]) -> tuple[np.ndarray, dict[tuple, int], np.ndarray, dict[str, int]]:
        from tqdm.auto import tqdm
        img_keys: dict[tuple, int] = {}
        for it in items:
            img_keys.setdefault(_img_key(it), len(img_keys))
        txt_keys: dict[str, int] = {}
        for it in items:
            for t in it.texts:
                txt_keys.setdefault(t, len(txt_keys))
        by_key = {k: it for it in items for k in [_img_key(it)]}
        keys = list(img_keys)
        img_emb = []
        self.unreadable = {}
        for b in tqdm(range(0, len(keys), self.bs), desc="images", leave=False):
            imgs = []
            for k in keys[b:b + self.bs]:
                try:
                    imgs.append(load_image(by_key[k].image, by_key[k].box))
                except Exception as e:          # scored as nothing; the caller drops or reports it
                    self.unreadable[k] = image_error(e)
                    imgs.append(Image.new("RGB", (8, 8)))
            img_emb.append(self.enc.embed_images(imgs, self.bs).numpy())
        txt_emb = self.enc.embed_texts(list(txt_keys), 256).numpy() if txt_keys else np.zeros((0, 1))
        return (np.concatenate(img_emb) if img_emb else np.zeros((0, 1))), img_keys, txt_emb, txt_keys

    def item_scores(self, items: list[Item]) -> list[np.ndarray]:
        ie, ik, te, tk = self.embed_items(items)
        return [te[[tk[t] for t in it.texts]] @ ie[ik[_img_key(it)]] for it in items]
