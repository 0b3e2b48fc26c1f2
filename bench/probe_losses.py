"""Why the counterfactual terms do not move: per-term gradient norms and hinge activity.

Usage: python bench/probe_losses.py DEMO_OUT [--batches 10]
DEMO_OUT is a `cfgen demo` output directory (its stand-in model and final shards). For each batch
it reports the gradient norm of alpha*L_align, beta*L_csd and gamma*L_fcd separately, the
fraction of active hinges, and the cosine gaps the hinges see next to the same gaps in logits.
"""
import argparse
import json
from pathlib import Path

import torch

from cfgen.train.data import make_loader, run_k
from cfgen.train.model import DualEncoder, FeatureModule
from cfgen.train.losses import CFVLMLoss
from cfgen.train.trainer import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("demo_out")
    ap.add_argument("--model", default=None, help="model directory [DEMO_OUT/models/pretrained]")
    ap.add_argument("--batches", type=int, default=10)
    a = ap.parse_args()
    out = Path(a.demo_out)
    enc = DualEncoder.load(a.model or out / "models" / "pretrained")
    feats = FeatureModule(enc.model)
    cfg = TrainConfig()                               # the paper's cf-vlm weights and margins
    params = [p for p in enc.model.parameters() if p.requires_grad]
    urls = sorted(str(p.resolve()) for p in (out / "run" / "final").glob("*.tar"))
    rows = []
    for i, b in enumerate(make_loader(urls, enc.pre, k=run_k(urls) or 4, micro_batch=32, seed=0, shuffle_buffer=200)):
        if i == a.batches:
            break
        img, txt = feats(b.pixel_values, b.input_ids, b.attention_mask)
        L = CFVLMLoss(cfg)(img, txt, b.n, b.cf_owner, b.cf_slot, b.mask, b.local, enc.model.logit_scale)
        row = {}
        for name, w in (("align", cfg.alpha), ("csd", cfg.beta), ("fcd", cfg.gamma)):
            g = torch.autograd.grad(w * L[name], params, retain_graph=True, allow_unused=True)
            row[f"grad_{name}"] = float(torch.sqrt(sum((x ** 2).sum() for x in g if x is not None)))
            row[name] = float(L[name])
        with torch.no_grad():
            n = b.n
            a_i, a_t = img[:n], txt[:n]
            cf_i, cf_t = img[n:], txt[n:]
            own = b.cf_owner
            s_a = (a_i * a_t).sum(-1)
            gap_csd = (cf_i * cf_t).sum(-1) - s_a[own]            # eq. 2 wants this below -m1
            gap_fcd = (cf_i * a_t[own]).sum(-1) - s_a[own]        # eq. 3 wants this below -m2
            scale = float(enc.model.logit_scale.exp())
            row.update(csd_active=float((gap_csd + cfg.m1 > 0).float().mean()),
                       fcd_active=float((gap_fcd + cfg.m2 > 0).float().mean()),
                       cos_gap_cf_vs_anchor_text=float(gap_fcd.mean()), logit_gap=float(gap_fcd.mean()) * scale,
                       logit_scale=scale)
        rows.append(row)
    mean = {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in rows[0]}
    print(json.dumps(mean, indent=1))


if __name__ == "__main__":
    main()
