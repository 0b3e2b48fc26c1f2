"""The CF-VLM losses (paper Sec. 3.2): small pure functions over L2-normalised embeddings, the
cross-rank gather beside them, and `CFVLMLoss`, the weighted total built once from the config and
the model type (as open_clip builds its loss), so the trainer is only the loop.

S(I, T) is the cosine similarity (a dot product of normalised embeddings). Counterfactual
slots a sample does not have are masked (`mask[n, k] = False`), never padded with fake data;
`csd_loss` and `fcd_loss` average over the samples that have at least one valid slot.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

MAX_LOGIT_SCALE = math.log(100.0)


def align_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
               extra_txt: torch.Tensor | None = None, extra_txt_mask: torch.Tensor | None = None,
               extra_img: torch.Tensor | None = None, extra_img_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over the N factual pairs (eq. 1):

        L_align = -1/(2N) sum_i [ log softmax_j(S(I_i, T_j) / tau)_i + log softmax_j(S(I_j, T_i) / tau)_i ]

    with 1/tau = exp(logit_scale). Optional hard negatives (NegCLIP / TripletCLIP style):
    `extra_txt` [M, D] are appended as extra candidate captions for every image (e.g. the
    counterfactual captions), `extra_img` [M, D] as extra candidate images for every caption;
    masks [M] drop the slots a sample does not have.
    """
    scale = logit_scale.exp()
    n = img.shape[0]
    labels = torch.arange(n, device=img.device)
    logits_i = scale * img @ txt.T                     # [N, N]: image i vs caption j
    logits_t = logits_i.T.clone()                      # [N, N]: caption i vs image j
    if extra_txt is not None and extra_txt.shape[0]:
        ex = scale * img @ extra_txt.T
        if extra_txt_mask is not None:
            ex = ex.masked_fill(~extra_txt_mask[None, :], float("-inf"))
        logits_i = torch.cat([logits_i, ex], dim=1)
    if extra_img is not None and extra_img.shape[0]:
        ex = scale * txt @ extra_img.T
        if extra_img_mask is not None:
            ex = ex.masked_fill(~extra_img_mask[None, :], float("-inf"))
        logits_t = torch.cat([logits_t, ex], dim=1)
    return (F.cross_entropy(logits_i, labels) + F.cross_entropy(logits_t, labels)) / 2


def siglip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss: -1/N sum_ij log sigmoid(z_ij (t S(I_i, T_j) + b)),
    z_ij = 1 on the diagonal and -1 elsewhere (the align term for SigLIP models)."""
    n = img.shape[0]
    logits = logit_scale.exp() * img @ txt.T + logit_bias
    z = 2 * torch.eye(n, device=img.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(z * logits).sum() / n


def _masked_mean_over_samples(per_sample: torch.Tensor, has_any: torch.Tensor) -> torch.Tensor:
    if not bool(has_any.any()):
        return per_sample.sum() * 0.0
    return per_sample[has_any].mean()


def csd_loss(s_cf: torch.Tensor, s_anchor: torch.Tensor, mask: torch.Tensor, m1: float = 0.25) -> torch.Tensor:
    """Counterfactual scenario discrimination (eq. 2):

        L_csd = 1/K sum_k max(0, S(I_cf_k, T_cf_k) - S(I_a, T_a) + m1)

    s_cf [N, K] = S(I_cf_k, T_cf_k); s_anchor [N] = S(I_a, T_a); mask [N, K] marks valid k.
    The mean over k is over each sample's valid counterfactuals."""
    hinge = torch.clamp(s_cf - s_anchor[:, None] + m1, min=0) * mask
    n_valid = mask.sum(1)
    per = hinge.sum(1) / n_valid.clamp(min=1)
    return _masked_mean_over_samples(per, n_valid > 0)


def fcd_loss(s_cf_anchor_txt: torch.Tensor, s_anchor: torch.Tensor, mask: torch.Tensor,
             m2: float = 0.30) -> torch.Tensor:
    """Fine-grained causal discrimination (eq. 3): only the hardest minimally edited image counts,

        L_fcd = max(0, max_j S(I_cf_edit_j, T_a) - S(I_a, T_a) + m2)

    s_cf_anchor_txt [N, J] = S(I_cf_j, T_a); mask [N, J] marks valid (local) edits."""
    hardest = s_cf_anchor_txt.masked_fill(~mask, float("-inf")).max(1).values
    has_any = mask.any(1)
    per = torch.clamp(torch.where(has_any, hardest, s_anchor) - s_anchor + m2, min=0)
    return _masked_mean_over_samples(per, has_any)


# ------------------------------------------------------------------ across ranks
def all_ranks_have(flag: bool, device: torch.device) -> bool:
    """True when every rank has `flag`: ranks leave an epoch together, so their collectives stay paired."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()) \
            or torch.distributed.get_world_size() == 1:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return bool(t.item())


def gather(x: torch.Tensor, with_grad: bool = True) -> torch.Tensor:
    """Concatenate a tensor across ranks (gradients flow back, as open_clip's gather_features)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()) \
            or torch.distributed.get_world_size() == 1:
        return x
    if with_grad:
        from torch.distributed import nn as dist_nn
        return torch.cat(dist_nn.all_gather(x), dim=0)
    parts = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, x)
    return torch.cat(parts, dim=0)


def clamp_logit_scale(logit_scale: torch.nn.Parameter, max_value: float = MAX_LOGIT_SCALE) -> None:
    """Keep 1/tau <= 100, as open_clip does after every optimiser step."""
    with torch.no_grad():
        logit_scale.clamp_(0, max_value)


def dense_cf(feats: torch.Tensor, n: int, owner: torch.Tensor, slot: torch.Tensor, k: int) -> torch.Tensor:
    """Counterfactual features [M, D] -> [n, K, D] (zeros where a sample has no k-th counterfactual).

    Always built from `feats`, even when M = 0, so the result stays in the autograd graph and the
    backward of the cross-rank gather runs its collective on every rank."""
    return feats.new_zeros(n, k, feats.shape[-1]).index_put((owner, slot), feats[n:])


class CFVLMLoss:
    """alpha*L_align + beta*L_csd + gamma*L_fcd on the global batch (identical on every rank).

    Built once: `cfg` is a TrainConfig (alpha, beta, gamma, m1, m2, hinge_space, text_negatives,
    image_negatives, cf_in_batch are read); `logit_bias` given (a SigLIP model's) makes L_align the
    sigmoid loss, else InfoNCE with the configured extra negatives. Features come as the
    collator lays them out: N anchors, then M counterfactuals at (owner, slot) (no counterfactual
    images when `cfg.needs_cf_images()` is false: csd and fcd are then 0, not computed)."""

    def __init__(self, cfg: Any, logit_bias: torch.Tensor | None = None):
        self.cfg, self.logit_bias = cfg, logit_bias

    @classmethod
    def for_model(cls, cfg: Any, model: Any) -> "CFVLMLoss":
        """The model type picks the align loss: SigLIP's learned bias, or CLIP-style InfoNCE."""
        from .model import is_siglip
        return cls(cfg, model.logit_bias if is_siglip(model.config) else None)

    def __call__(self, img: torch.Tensor, txt: torch.Tensor, n: int, owner: torch.Tensor, slot: torch.Tensor,
                 mask: torch.Tensor, local: torch.Tensor, logit_scale: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, k = self.cfg, mask.shape[1]
        a_img, a_txt = gather(img[:n]), gather(txt[:n])
        cf_txt = gather(dense_cf(txt, n, owner, slot, k))
        # a recipe that reads no counterfactual image gets none (the loader skips them): decided by
        # the config, the same on every rank, so every rank runs the same collectives
        cf_img = gather(dense_cf(img, n, owner, slot, k)) if cfg.needs_cf_images() else None
        mask, local = gather(mask.to(img.device), False), gather(local.to(img.device), False)
        out: dict[str, torch.Tensor] = {}
        if self.logit_bias is not None:
            out["align"] = siglip_loss(a_img, a_txt, logit_scale, self.logit_bias)
        else:
            ex_t = ex_tm = ex_i = ex_im = None
            if cfg.text_negatives != "none":
                tm = mask.clone()
                if cfg.text_negatives == "one":
                    tm[:, 1:] = False
                ex_t, ex_tm = cf_txt.reshape(-1, cf_txt.shape[-1]), tm.reshape(-1)
            if cfg.image_negatives:
                ex_i, ex_im = cf_img.reshape(-1, cf_img.shape[-1]), mask.reshape(-1)
            b_img, b_txt = a_img, a_txt
            if cfg.cf_in_batch:        # each (I_cf, T_cf) is a pair of its own: its anchor's hard negative both ways
                b_img, b_txt = torch.cat([a_img, cf_img[mask]]), torch.cat([a_txt, cf_txt[mask]])
            out["align"] = align_loss(b_img, b_txt, logit_scale, ex_t, ex_tm, ex_i, ex_im)
        if cf_img is None:                 # beta = gamma = 0: the hinges have nothing to see
            out["csd"] = out["fcd"] = img.new_zeros(())
        else:
            # the hinges see S (paper) or S / tau, the scale InfoNCE works at (tau not trained through them)
            hs = logit_scale.exp().detach() if cfg.hinge_space == "logit" else 1.0
            s_anchor = hs * (a_img * a_txt).sum(-1)
            out["csd"] = csd_loss(hs * (cf_img * cf_txt).sum(-1), s_anchor, mask, cfg.m1)
            out["fcd"] = fcd_loss(hs * (cf_img * a_txt[:, None]).sum(-1), s_anchor, local, cfg.m2)
        out["total"] = cfg.alpha * out["align"] + cfg.beta * out["csd"] + cfg.gamma * out["fcd"]
        return out
