"""CLIP-similarity filtering of counterfactual images.

A counterfactual is kept when it matches its own caption (S(I_cf, T_cf) >= min_cf_score),
matches it better than the anchor caption (S(I_cf, T_cf) - S(I_cf, T_a) >= min_margin), and
stays close to the anchor image without being a copy (min_img_sim <= S(I_cf, I_a) <= max_img_sim).
Scores are stored with every counterfactual, so `cfgen filter` can re-decide without regenerating.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image


@dataclass
class FilterConfig:
    """The filter's thresholds; the images stage's config is one (`ImagesConfig` inherits these
    fields, so they keep their keys: `images.min_cf_score`, `--min-cf-score`, ...)."""

    min_cf_score: float = 0.20
    min_margin: float = 0.0
    min_img_sim: float = 0.50
    max_img_sim: float = 0.995


def verdict(scores: dict[str, float], cfg: FilterConfig) -> tuple[bool, str]:
    """(keep, reason) from stored scores and thresholds. A score that is missing or not finite
    (a filter model that outputs NaN) is a rejection: NaN fails no comparison and would keep all."""
    if not all(isinstance(scores.get(k), (int, float)) and math.isfinite(scores[k])
               for k in ("s_cf_tcf", "margin", "s_img")):
        return False, "filter_score_not_finite"
    if scores["s_cf_tcf"] < cfg.min_cf_score:
        return False, "filter_low_score"
    if scores["margin"] < cfg.min_margin:
        return False, "filter_low_margin"
    if scores["s_img"] > cfg.max_img_sim:
        return False, "filter_copy"
    if scores["s_img"] < cfg.min_img_sim:
        return False, "filter_far"
    return True, ""


class ClipScorer:
    """Embeddings and cosine scores with any transformers CLIP/SigLIP checkpoint."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 64):
        from ..train.model import load_dual_encoder
        self.enc = load_dual_encoder(model, device=device)
        self.batch_size = batch_size

    def score(self, anchor_img: Image.Image, anchor_txt: str, cf_imgs: list[Image.Image],
              cf_txts: list[str]) -> list[dict[str, float]]:
        """The scores of one anchor's counterfactuals."""
        return self.score_many([(anchor_img, anchor_txt, cf_imgs, cf_txts)])[0]

    def score_many(self, groups: list[tuple[Image.Image, str, list[Image.Image], list[str]]]
                   ) -> list[list[dict[str, float]]]:
        """Scores of several anchors' counterfactuals ((anchor image, anchor caption, cf images,
        cf captions) each), embedded together in batches of `batch_size`: one forward per anchor
        would leave a small model's batches nearly empty."""
        if not any(g[2] for g in groups):
            return [[] for _ in groups]
        import torch
        with torch.no_grad():
            im = self.enc.embed_images([x for g in groups for x in [g[0], *g[2]]], self.batch_size)
            tx = self.enc.embed_texts([x for g in groups for x in [g[1], *g[3]]], self.batch_size)
        out, at = [], 0
        for _, _, cf_imgs, _ in groups:
            n = len(cf_imgs)
            ia, icf, ta, tcf = im[at], im[at + 1:at + 1 + n], tx[at], tx[at + 1:at + 1 + n]
            at += 1 + n
            s_cf_tcf, s_cf_ta, s_img, s_a = (icf * tcf).sum(-1), icf @ ta, icf @ ia, float(ia @ ta)
            out.append([{"s_cf_tcf": round(float(a), 5), "s_cf_ta": round(float(b), 5),
                         "margin": round(float(a - b), 5), "s_img": round(float(c), 5), "s_a_ta": round(s_a, 5)}
                        for a, b, c in zip(s_cf_tcf, s_cf_ta, s_img)])
        return out
