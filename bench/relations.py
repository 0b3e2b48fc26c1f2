"""Why spatial relations barely move in `cfgen demo` (issue #29 item 1): measurements.

Usage: python bench/relations.py [--out DIR] [--run RUN_DIR ...] [--finetune std-ft,cf-vlm-plus] [--json FILE]

(a) Can the released stand-in CLIP (`cfgen/demo/standin/`, loaded as the demo loads it) represent
    left/right/above/below? Linear probes (logistic regression, train/test split) on frozen image
    features of rendered two-object scenes, against chance; the text side: cosines of a caption
    with its relation swap, its object-order swap and its paraphrase; the margins S(I, T) - S(I, T_neg)
    on the world test's relation items; how often pretraining's in-batch contrast needs the relation.
(b) Is the relation test well posed? Every relation item of the demo world's test split (world
    seed 0, the demo's world settings): is the negative false in the image, how close are the two
    objects to aligned, do they repeat a colour or shape, and the stand-in's accuracy on each part.
(c) Do position counterfactuals reach the losses? Counts on a demo run directory (the full-size
    demo data made here without fine-tuning, and any `--run` given, e.g. a `cfgen demo --quick`
    output's run/): rewrites, counterfactuals generated and kept, their slot among the K the loader
    takes, and the demo's fine-tune loader replayed (K = 4, micro-batch 32, 100 steps, seed 0; a
    `--run` inside a demo output with its own settings, e.g. --quick's 6 steps x 16).
(a) and (b) are repeated on models fine-tuned here from the stand-in as the demo does (`--finetune`:
std-ft and cf-vlm-plus, seed 0): does fine-tuning put position into the embeddings?
(d) `--diagnostics`: could pretraining or direct supervision give this architecture relations?
The released pretraining stopped at 1,000 steps, with relation twins, with large position
embeddings; the stand-in's tower trained directly on the probe tasks. Nothing here is shipped.

Everything is deterministic; about 4 minutes on one core.
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cfgen.demo import DemoConfig
from cfgen.demo.pretrain import RELEASED, PretrainConfig, web_caption
from cfgen.io.images import decode_rgb, encode_image
from cfgen.train.model import DualEncoder, image_features, text_features
from cfgen.world.generate import WorldConfig, generate_world, load_test_items
from cfgen.world.scene import (COLORS, RELATIONS, SHAPES, SIZES, Obj, Scene, caption, overlaps,
                               relation_holds, render)


# ----------------------------------------------------------------------------- helpers
def _render_jpeg(scene: Scene, size: int = 64) -> object:
    from cfgen.world.scene import render
    return decode_rgb(encode_image(render(scene, size), "jpg", 95))


@torch.no_grad()
def _image_feats(enc: DualEncoder, images: list) -> dict[str, torch.Tensor]:
    """Three views of one forward pass: the projected embedding the scores use, the pooled
    (CLS) state before projection, and every patch token of the last layer (nothing pooled)."""
    out = {"embedding": [], "cls": [], "patches": []}
    for i in range(0, len(images), 500):
        px = enc.pre.pixels(images[i:i + 500])
        vo = enc.model.vision_model(pixel_values=px)
        out["embedding"].append(F.normalize(image_features(enc.model, px), dim=-1))
        out["cls"].append(vo.pooler_output)
        out["patches"].append(vo.last_hidden_state[:, 1:].flatten(1))
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def _text_feats(enc: DualEncoder, texts: list[str]) -> torch.Tensor:
    tok = enc.pre.tokens(texts)
    return F.normalize(text_features(enc.model, tok["input_ids"], tok.get("attention_mask")), dim=-1)


def _logreg(xtr: torch.Tensor, ytr: torch.Tensor, xte: torch.Tensor, yte: torch.Tensor) -> dict[str, float]:
    """L2 logistic regression, the penalty chosen on a fifth of the training set; test accuracy %."""
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    n_val = len(xtr) // 5

    def fit(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
        w = torch.zeros(x.shape[1] + 1, requires_grad=True)
        opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")
        xb = torch.cat([x, torch.ones(len(x), 1)], 1)

        def closure():
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(xb @ w, y.float()) + lam * (w[:-1] ** 2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        return w.detach()

    def acc(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
        return 100 * float(((torch.cat([x, torch.ones(len(x), 1)], 1) @ w > 0) == y.bool()).float().mean())

    best = max((acc(fit(xtr[n_val:], ytr[n_val:], lam), xtr[:n_val], ytr[:n_val]), lam)
               for lam in (1e-4, 1e-3, 1e-2, 1e-1))
    w = fit(xtr, ytr, best[1])
    return {"test": round(acc(w, xte, yte), 1), "train": round(acc(w, xtr, ytr), 1), "l2": best[1]}


def _place(rng: random.Random, objs: list[Obj]) -> list[Obj] | None:
    placed: list[Obj] = []
    for o in objs:
        r = SIZES[o.size] / 2
        for _ in range(200):
            c = replace(o, x=rng.uniform(r + 0.02, 1 - r - 0.02), y=rng.uniform(r + 0.02, 1 - r - 0.02))
            if not overlaps(c, placed):
                placed.append(c)
                break
        else:
            return None
    return placed


def _probe_scenes(kind: str, n: int, seed: int) -> tuple[list[Scene], list[int]]:
    """Scenes and labels for one probe, labels balanced by construction of the draw.

    single-x: one object; label: its centre is left of the middle (|x - 0.5| > 0.06).
    left-right / above-below: two objects of different colours, no distractors, the relation
      holding with the world's MARGIN; label: the object whose colour comes first in the world's
      colour list is left of (above) the other: what a relation caption asks, bound to colours.
    """
    rng = random.Random(f"probe-{kind}-{seed}")
    scenes, labels = [], []
    colors = list(COLORS)
    while len(scenes) < n:
        bg = rng.randint(200, 245)
        if kind == "single-x":
            o = Obj(rng.choice(SHAPES), rng.choice(colors), rng.choice(list(SIZES)), 0.5, 0.5)
            (p,) = _place(rng, [o]) or [None]
            if p is None or abs(p.x - 0.5) < 0.06:
                continue
            scenes.append(Scene([p], bg=bg, form="single"))
            labels.append(int(p.x < 0.5))
            continue
        ca, cb = rng.sample(colors, 2)
        objs = [Obj(rng.choice(SHAPES), c, rng.choice(list(SIZES)), 0.5, 0.5) for c in (ca, cb)]
        placed = _place(rng, objs)
        if placed is None:
            continue
        a, b = sorted(placed, key=lambda o: colors.index(o.color))
        rel = "to the left of" if kind == "left-right" else "above"
        if relation_holds(a, b, rel):
            y = 1
        elif relation_holds(a, b, RELATIONS[rel]):
            y = 0
        else:
            continue
        scenes.append(Scene(placed, bg=bg, form="pair"))
        labels.append(y)
    return scenes, labels


# ----------------------------------------------------------------------------- (a)
@torch.no_grad()
def bag_of_patches(enc: DualEncoder, n: int = 300) -> dict:
    """Is the image embedding a bag of patches? Cosine of an image's embedding with that of the
    same image with its patches (the ViT's own patch grid) shuffled by one random permutation,
    mirrored left-right, and of another scene; and the norms of what the tower adds up at its
    input: patch embeddings (content) and position embeddings."""
    sc, _ = _probe_scenes("left-right", n, 5)
    px = enc.pre.pixels([_render_jpeg(s) for s in sc])
    b, c, h, w = px.shape
    ps = enc.model.config.vision_config.patch_size
    gh, gw = h // ps, w // ps
    grid = px.reshape(b, c, gh, ps, gw, ps).permute(0, 1, 2, 4, 3, 5).reshape(b, c, gh * gw, ps, ps)
    perm = torch.randperm(gh * gw, generator=torch.Generator().manual_seed(0))
    shuffled = grid[:, :, perm].reshape(b, c, gh, gw, ps, ps).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h, w)
    f = F.normalize(image_features(enc.model, px), dim=-1)
    emb = enc.model.vision_model.embeddings
    out = {"cos_patch_shuffled": (f * F.normalize(image_features(enc.model, shuffled), dim=-1)).sum(-1).mean(),
           "cos_mirrored": (f * F.normalize(image_features(enc.model, px.flip(-1)), dim=-1)).sum(-1).mean(),
           "cos_another_scene": (f * f.roll(1, 0)).sum(-1).mean(),
           "patch_embedding_norm": emb.patch_embedding(px).flatten(2).norm(dim=1).mean(),
           "position_embedding_norm": emb.position_embedding.weight[1:].norm(dim=-1).mean()}
    return {k: round(float(v), 4) for k, v in out.items()}


def part_a(enc: DualEncoder, test_items: list[dict], n_train: int = 3000, n_test: int = 1000) -> dict:
    res: dict = {"bag_of_patches": bag_of_patches(enc), "probes": {}}
    print(f"[a] bag of patches: {res['bag_of_patches']}", flush=True)
    for kind in ("single-x", "left-right", "above-below"):
        sc_tr, y_tr = _probe_scenes(kind, n_train, 0)
        sc_te, y_te = _probe_scenes(kind, n_test, 1)
        f_tr = _image_feats(enc, [_render_jpeg(s) for s in sc_tr])
        f_te = _image_feats(enc, [_render_jpeg(s) for s in sc_te])
        ytr, yte = torch.tensor(y_tr), torch.tensor(y_te)
        chance = round(100 * max(float(yte.float().mean()), 1 - float(yte.float().mean())), 1)
        res["probes"][kind] = {"chance": chance, **{v: _logreg(f_tr[v], ytr, f_te[v], yte) for v in f_tr}}
        print(f"[a] probe {kind}: chance {chance}, " + ", ".join(
            f"{v} {r['test']} (train {r['train']})" for v, r in res["probes"][kind].items() if v != "chance"), flush=True)

    # text side: the caption, its relation swap (the test's negative), the same objects in the other
    # order with the same relation word (also false), and a paraphrase (objects and relation both swapped: true)
    rel_items = [t for t in test_items if "relation_swap" in t["tests"]]
    caps = [t["caption"] for t in rel_items]

    def split(c: str) -> tuple[str, str, str]:
        r = next(r for r in RELATIONS if f" {r} " in c)
        a, b = c.split(f" {r} ")
        return a, r, b
    swap_rel = [t["tests"]["relation_swap"] for t in rel_items]
    swap_obj = [f"{b} {r} {a}" for a, r, b in map(split, caps)]
    para = [f"{b} {RELATIONS[r]} {a}" for a, r, b in map(split, caps)]
    tc = _text_feats(enc, caps)
    cos = {name: round(float((tc * _text_feats(enc, texts)).sum(-1).mean()), 4) for name, texts in
           (("relation swap (false)", swap_rel), ("object-order swap (false)", swap_obj), ("paraphrase (true)", para))}
    for typ in ("binding_swap", "replace_color", "replace_shape"):
        its = [t for t in rel_items if typ in t["tests"]]
        cos[f"{typ} (false)"] = round(float((_text_feats(enc, [t["caption"] for t in its])
                                             * _text_feats(enc, [t["tests"][typ] for t in its])).sum(-1).mean()), 4)
    res["text_cosine_to_caption"] = cos
    print(f"[a] text: mean cosine of a relation caption with {cos}", flush=True)
    # does the text embedding carry the relation at all? a probe on caption embeddings: which of
    # the two named objects (by colour order) comes first in space, from the text alone
    lab = []
    order = list(COLORS)
    for c in caps:
        a, r, b = split(c)
        ca, cb = a.split()[-2], b.split()[-2]
        left = r == "to the left of"
        lab.append(-1 if ca == cb or r not in ("to the left of", "to the right of")
                   else int(left if order.index(ca) < order.index(cb) else not left))
    keep = [i for i, y in enumerate(lab) if y >= 0]
    x, y = torch.cat([tc, _text_feats(enc, para)])[keep + [len(caps) + i for i in keep]], \
        torch.tensor([lab[i] for i in keep] * 2)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    h = len(perm) * 2 // 3
    res["text_probe_colour_order_left"] = _logreg(x[perm[:h]], y[perm[:h]], x[perm[h:]], y[perm[h:]])
    print(f"[a] text probe (is the first colour left, from the caption embedding): "
          f"{res['text_probe_colour_order_left']}", flush=True)
    return res


@torch.no_grad()
def item_margins(enc: DualEncoder, items: list[dict], typ: str) -> np.ndarray:
    """S(I, T) - S(I, T_neg) for every item that has test `typ`."""
    its = [t for t in items if typ in t["tests"]]
    img = _image_feats(enc, [decode_rgb(t["image"]) for t in its])["embedding"]
    pos = _text_feats(enc, [t["caption"] for t in its])
    neg = _text_feats(enc, [t["tests"][typ] for t in its])
    return ((img * pos).sum(-1) - (img * neg).sum(-1)).numpy()


def web_batches_needing(cfg_world: WorldConfig, pre: PretrainConfig, batches: int = 200) -> dict:
    """In pretraining's in-batch contrast (batches of `pre.batch` web captions), how often does a
    caption have a rival in its batch that only the relation (or the objects' order) tells apart,
    and, for comparison, one that only the colours' binding tells apart."""
    every = [(c, s) for c in COLORS for s in SHAPES]
    texts = []
    for i in range(pre.n):
        rng = random.Random(f"web-{pre.web_seed}-{i}")
        scene = cfg_world.scene(rng, every)
        texts.append(web_caption(caption(scene), rng, pre.object_only_prob))
    g = torch.Generator().manual_seed(pre.seed)
    order = torch.randperm(pre.n, generator=g).tolist()

    def parts(t: str) -> tuple[str, str, str] | None:
        for r in RELATIONS:
            if f" {r} " in t:
                a, b = t.split(f" {r} ")
                return a, r, b
        return None

    def meaning(p: tuple[str, str, str]) -> tuple[str, str, str]:
        """(first phrase in space, axis, second): "b right of a" means "a left of b"."""
        a, r, b = p
        return {"to the left of": (a, "x", b), "to the right of": (b, "x", a), "above": (a, "y", b),
                "below": (b, "y", a)}[r]

    def bind_key(t: str) -> tuple:
        w = t.split()
        return (tuple(x for x in w if x not in COLORS), tuple(sorted(x for x in w if x in COLORS)))
    n_contra = n_para = n_bind = n_pair = n = 0
    for b in range(batches):
        batch = [texts[j] for j in order[b * pre.batch:(b + 1) * pre.batch]]
        bk = collections.Counter(bind_key(t) for t in batch)
        tc = collections.Counter(batch)
        ps = [parts(t) for t in batch]
        for i, t in enumerate(batch):
            n += 1
            n_bind += bk[bind_key(t)] - tc[t] > 0
            if ps[i] is None:
                continue
            n_pair += 1
            same_objs = [q for j, q in enumerate(ps) if j != i and q is not None and batch[j] != t
                         and sorted([q[0], q[2]]) == sorted([ps[i][0], ps[i][2]])]
            n_contra += any(meaning(q) != meaning(ps[i]) and meaning(q)[1] == meaning(ps[i])[1] for q in same_objs)
            n_para += any(meaning(q) == meaning(ps[i]) for q in same_objs)
    out = {"captions": n, "relation_captions": n_pair, "colourless_share": pre.object_only_prob,
           "relation_captions_with_a_contradicting_rival_pct": round(100 * n_contra / max(n_pair, 1), 2),
           "relation_captions_with_a_paraphrase_rival_pct": round(100 * n_para / max(n_pair, 1), 2),
           "captions_with_a_rival_only_colour_binding_separates_pct": round(100 * n_bind / n, 2)}
    print(f"[a] pretraining batches: {out}", flush=True)
    return out


# ----------------------------------------------------------------------------- (b)
def part_b(enc: DualEncoder, items: list[dict], world_dir: Path) -> dict:
    import webdataset as wds
    scenes = {}
    for s in wds.WebDataset(sorted(str(p.resolve()) for p in (world_dir / "test").glob("*.tar")), shardshuffle=False):
        scenes[s["__key__"]] = Scene.from_dict(json.loads(s["json"])["scene"])
    rel_items = [t for t in items if "relation_swap" in t["tests"]]
    m = item_margins(enc, items, "relation_swap")
    rows = []
    for t, mg in zip(rel_items, m):
        sc = scenes[t["key"]]
        a, b = sc.objects[0], sc.objects[1]
        neg_rel = RELATIONS[sc.rel]
        horiz = sc.rel in ("to the left of", "to the right of")
        along, across = (abs(b.x - a.x), abs(b.y - a.y)) if horiz else (abs(b.y - a.y), abs(b.x - a.x))
        extent = SIZES[a.size] / 2 + SIZES[b.size] / 2
        rows.append({
            "unseen": t["heldout"], "margin": float(mg),
            "negative_true": relation_holds(a, b, neg_rel),
            "caption_true": relation_holds(a, b, sc.rel),
            "extents_overlap": along < extent,                 # their extents along the relation's axis overlap
            "mostly_across": across > along,                   # displaced more across the axis than along it
            "same_colour": a.color == b.color, "same_shape": a.shape == b.shape,
            "distractor_looks_alike": any((d.color, d.shape) in {(a.color, a.shape), (b.color, b.shape)}
                                          for d in sc.objects[2:]),
            "distractor_same_shape": any(d.shape in (a.shape, b.shape) for d in sc.objects[2:]),
        })

    def summary(sel: list[dict]) -> dict:
        if not sel:
            return {"n": 0}
        return {"n": len(sel), "accuracy": round(100 * float(np.mean([r["margin"] > 0 for r in sel])), 1),
                "mean_abs_margin": round(float(np.mean([abs(r["margin"]) for r in sel])), 4)}
    out: dict = {"items": len(rows)}
    for flag in ("negative_true", "caption_true", "extents_overlap", "mostly_across", "same_colour", "same_shape",
                 "distractor_looks_alike", "distractor_same_shape"):
        out[flag] = round(100 * float(np.mean([r[flag] for r in rows])), 1)
    ill = lambda r: r["negative_true"] or not r["caption_true"] or r["extents_overlap"] or r["mostly_across"]
    out["ill_posed_or_borderline"] = round(100 * float(np.mean([ill(r) for r in rows])), 1)
    for split in ("unseen", "seen"):
        sel = [r for r in rows if r["unseen"] == (split == "unseen")]
        out[split] = {"all": summary(sel), "clear": summary([r for r in sel if not ill(r)]),
                      "borderline": summary([r for r in sel if ill(r)])}
    # margins of the other tests, for scale
    out["mean_abs_margin_by_test"] = {typ: round(float(np.abs(item_margins(enc, items, typ)).mean()), 4)
                                      for typ in ("relation_swap", "binding_swap", "replace_color", "replace_shape")}
    print(f"[b] {json.dumps(out)}", flush=True)
    return out


# ----------------------------------------------------------------------------- (c)
def part_c(run: Path, pre_dir: Path, k: int = 4, micro_batch: int = 32, steps: int = 100) -> dict:
    import pyarrow.parquet as pq
    from cfgen.datamodel import Sample
    from cfgen.train.data import make_loader, shard_urls
    import webdataset as wds
    cap = pq.read_table(sorted((run / "captions").glob("part-*.parquet"))).to_pandas()
    img = pq.read_table(sorted((run / "images").glob("part-*.parquet"))).to_pandas()
    out: dict = {"run": str(run)}
    out["rewrites_kept_by_type"] = {t: int(n) for t, n in cap[cap.status == "kept"].edit_type.value_counts().items()}
    pos = img[img.edit_type == "position"]
    out["position_cfs"] = {"edited": len(pos), "generated": int((pos.status == "generated").sum()),
                           "rejected": {r: int(n) for r, n in pos[pos.status != "generated"].reason.value_counts().items()},
                           "scope_used": {s: int(n) for s, n in pos.scope_used.value_counts().items()}}
    out["cfs_generated_by_type"] = {t: int(n) for t, n in img[img.status == "generated"].edit_type.value_counts().items()}
    tars = sorted(str(p.resolve()) for p in (run / "final").glob("part-*.tar"))
    slots = collections.Counter()
    per_anchor = collections.Counter()
    n_anchor = 0
    types: dict[str, list[str]] = {}
    for s in wds.WebDataset(tars, shardshuffle=False):
        smp = Sample.from_wds(s)
        types[smp.key] = [c.edit.type for c in smp.cfs]
        n_anchor += 1
        per_anchor[len(smp.cfs)] += 1
        for j, c in enumerate(smp.cfs):
            if c.edit.type == "position":
                slots["within K" if j < k else "beyond K (never loaded)"] += 1
    out["final"] = {"anchors": n_anchor, "position_cfs_by_slot": dict(slots),
                    "cfs_per_anchor": {int(a): int(b) for a, b in sorted(per_anchor.items())}}
    # the demo's fine-tune loader replayed: which batches hold a position counterfactual, always
    # beside its anchor (owner), and which losses see it
    enc = DualEncoder.load(pre_dir)
    loader = make_loader(shard_urls([str(run / "final")]), enc.pre, k=k, micro_batch=micro_batch, seed=0,
                         shuffle_buffer=500, uint8_pixels=True)
    seen = collections.Counter()
    epoch, step = 0, 0
    while step < steps:
        for batch in loader:
            for o, sl in zip(batch.cf_owner.tolist(), batch.cf_slot.tolist()):
                typ = types[batch.keys[o]][sl]
                seen["cfs"] += 1
                if typ == "position":
                    seen["position_cfs"] += 1
                    seen["position_cfs_with_their_anchor"] += int(bool(batch.mask[o, sl]))
                    seen["position_cfs_local_(in_L_fcd)"] += int(bool(batch.local[o, sl]))
            seen["anchors"] += batch.n
            seen["batches_with_a_position_cf"] += int(any(types[batch.keys[o]][sl] == "position" for o, sl in
                                                          zip(batch.cf_owner.tolist(), batch.cf_slot.tolist())))
            step += 1
            if step >= steps:
                break
        else:
            epoch += 1
            loader = make_loader(shard_urls([str(run / "final")]), enc.pre, k=k, micro_batch=micro_batch, seed=0,
                                 epoch=epoch, shuffle_buffer=500, uint8_pixels=True)
    seen["epochs_started"] = epoch + 1
    out["loader_replay"] = {"steps": steps, "micro_batch": micro_batch, "k": k, **dict(seen)}
    print(f"[c] {json.dumps(out)}", flush=True)
    return out


def demo_data(out: Path, log=print) -> tuple[Path, Path]:
    """The default demo's world (seed 0, n 3000, n_test 1000, its world settings), captions (rules, K = 4)
    and images (scene editor). The filter is skipped: the demo's thresholds keep every counterfactual."""
    from cfgen.captions.stage import CaptionsConfig, run_captions
    from cfgen.images.stage import ImagesConfig, run_images
    from cfgen.world import world_vocab
    d = DemoConfig()
    wcfg = WorldConfig(n=d.n, n_test=d.n_test, seed=d.world_seed, **d.world)
    generate_world(out / "world", wcfg)
    run = out / "run"
    run_captions(CaptionsConfig(input=[str(out / "world" / "train")], out=str(run), k=d.k, rules_vocab=world_vocab()))
    run_images(ImagesConfig(run=str(run), filter=False))
    return out / "world", run


def finetune(recipe: str, run: Path, out: Path, seed: int = 0) -> Path:
    """One fine-tune of the stand-in as `cfgen demo` runs it (100 steps x 32 anchors, K = 4, lr 1e-3)."""
    from cfgen.train.trainer import recipe_config, train
    d = DemoConfig()
    mdir = out / "models" / f"seed{seed}" / recipe
    if not (mdir / "train_config.json").exists():
        over = {"max_steps": d.finetune_steps, "batch_size": d.finetune_batch, "micro_batch": d.finetune_batch,
                "lr": d.finetune_lr, "warmup_steps": max(1, d.finetune_steps // 10), "num_workers": 0,
                "save_every": 0, "log_every": max(1, d.finetune_steps // 20), "shuffle_buffer": 500, "k": d.k}
        train(recipe_config(recipe, {"shards": [str(run / "final")], "model": str(RELEASED), "out": str(mdir),
                                     "seed": seed, **over}))
    return mdir


# ----------------------------------------------------------------------------- (d) diagnostics, opt-in
def pretrain_variant(world_dir: Path, out: Path, stop: int = 1000, relation_twins: bool = False,
                     pos_std: float = 0.0, pos_sincos: bool = False, relation_phase: int = 0,
                     relation_head: float = 0.0, absolute: float = 0.0, absolute_twins: bool = False,
                     side_words: float = 0.0, ground: float = 0.0) -> dict:
    """The released stand-in's pretraining (same settings, schedule of 2,500 steps) from scratch,
    stopped at `stop` steps, with relation twins (a pair scene's odd neighbour, with probability
    0.5, is the same scene with the two named objects' positions swapped and the relation
    flipped, in the same batch) and/or position embeddings initialised with std `pos_std`, or
    (`pos_sincos`) as a 2-D sin-cos table scaled to the mean norm of a patch embedding.
    `relation_phase` > 0: first that many steps (a schedule of their own) on relation captions
    only: pair scenes in colour, every one beside its relation twin, so that most of what each
    batch asks is left against right; then the released mixture. `relation_head` > 0: a linear
    head on the image embedding learns, with that weight, whether a pair scene's first-named
    object lies left of the other (a supervised push that breaks the image side's symmetry; the
    text side must follow through the contrastive loss). `absolute` > 0: that share of the web
    split is replaced by lone objects captioned with where they are ("a red ring to the left"),
    the simplest position signal for both sides (a word on the text side, one object's place on
    the image side) before any relation between two objects; with `absolute_twins`, each such
    object comes beside its mirror image (the same object on the other side, in the same batch), so
    that only where it is tells the two apart. `side_words` > 0: the token embeddings of "left" and
    "right" start opposite, with that norm, so that the text side tells them apart from the first
    step (the InfoNCE gradient on the image side of a mirror pair is proportional to the difference
    of the two captions' embeddings, zero while the text side maps left and right alike). `ground`
    > 0: the grounding head (`PretrainConfig.ground_weight`) with that weight. Returns
    the held-out profile every 250 steps and the probes at the end. Not shipped."""
    import cfgen.demo.pretrain as P
    from cfgen.demo.clip import build_clip
    from cfgen.world import world_words

    def relation_twin(scene: Scene, rng: random.Random) -> Scene:
        return P.relation_twin(scene, rng) if scene.form == "pair" else orig_twin(scene, rng)
    cfg = PretrainConfig.released("clip")
    orig_twin = P.TWINS["shape"]            # patched below: these runs predate twin_kind (non-pair scenes get a shape twin)
    if relation_twins:
        P.TWINS["shape"] = relation_twin
        cfg = replace(cfg, twin_prob=0.5)
    try:
        world = WorldConfig(seed=0, **DemoConfig().world)
        build_clip(out / "init", words=world_words(), image_size=cfg.image_size, patch_size=cfg.patch_size,
                   width=cfg.width, layers=cfg.layers, text_width=cfg.text_width, text_layers=cfg.text_layers,
                   seed=cfg.seed)
        enc = DualEncoder.load(out / "init")
        model, pre = enc.model, enc.pre
        if pos_std:
            with torch.no_grad():
                torch.manual_seed(1)
                model.vision_model.embeddings.position_embedding.weight.normal_(0, pos_std)
        if pos_sincos:
            _sincos_positions(model, pre, cfg)
        if side_words:
            _opposite_side_words(model, pre, side_words)
        images, texts, web_scenes = P.web_corpus(world, cfg)
        if absolute:
            _absolute_items(images, texts, world, absolute, absolute_twins)
            if absolute_twins:
                cfg = replace(cfg, twin_prob=1e-12)     # batches take pairs (2j, 2j+1); no shape twins drawn
        if relation_phase:
            P.TWINS["shape"] = relation_twin
            rel_cfg = replace(cfg, twin_prob=1.0, object_only_prob=0.0, steps=relation_phase)
            rel_images, rel_texts, _ = P.web_corpus(replace(world, form_probs=[0.0, 1.0, 0.0]), rel_cfg)
    finally:
        P.TWINS["shape"] = orig_twin
    pixels, tok = P.web_inputs(pre, images, texts)
    tests, test_px = P.held_out_test(pre, world_dir)
    curve = []
    offset = 0

    def record(step: int, loss: float) -> None:
        curve.append({"step": offset + step, **P.profile(model, pre, tests, test_px)})
        print(f"[d] {out.name} {curve[-1]}", flush=True)

    extra = _RelationHead(model.config.projection_dim, web_scenes, relation_head) if relation_head else None
    if ground:
        extra = P.GroundingHead(model.config.projection_dim, web_scenes, ground)
    if relation_phase:
        rel_px, rel_tok = P.web_inputs(pre, rel_images, rel_texts)
        P.align_steps(model, rel_px, rel_tok, rel_cfg, relation_phase, 250, record)
        offset = relation_phase
    P.align_steps(model, pixels, tok, cfg, stop, 250, record, extra_loss=extra)
    model.eval()
    res = {"curve": curve, "bag_of_patches": bag_of_patches(enc), "probes": {}}
    for kind in ("single-x", "left-right"):
        sc_tr, y_tr = _probe_scenes(kind, 1500, 0)
        sc_te, y_te = _probe_scenes(kind, 500, 1)
        f_tr = _image_feats(enc, [_render_jpeg(x) for x in sc_tr])["embedding"]
        f_te = _image_feats(enc, [_render_jpeg(x) for x in sc_te])["embedding"]
        res["probes"][kind] = _logreg(f_tr, torch.tensor(y_tr), f_te, torch.tensor(y_te))
    rel = [t for t in tests if "relation_swap" in t["tests"]][:300]
    res["text_cos_relation_swap"] = round(float((_text_feats(enc, [t["caption"] for t in rel])
                                                 * _text_feats(enc, [t["tests"]["relation_swap"] for t in rel])
                                                 ).sum(-1).mean()), 4)
    print(f"[d] {out.name} {json.dumps({k: v for k, v in res.items() if k != 'curve'})}", flush=True)
    return res


def _absolute_items(images: list, texts: list[str], world: WorldConfig, share: float, twins: bool = False) -> None:
    """Replace every 1/share-th web item by a lone object left or right of the middle (by more
    than the world's MARGIN), captioned with its side, as the world renders and encodes images;
    with `twins`, items (2j, 2j+1) are one object and its mirror image."""
    rng = random.Random("absolute-0")
    step = max(2, 2 * round(1 / share)) if twins else max(1, round(1 / share))
    for i in range(0, len(images) - 1, step):
        while True:
            o = Obj(rng.choice(SHAPES), rng.choice(list(COLORS)), rng.choice(list(SIZES)), 0.5, 0.5)
            (p,) = _place(rng, [o]) or [None]
            if p is not None and abs(p.x - 0.5) > 0.12:
                break
        bg, say = rng.randint(200, 245), [rng.random() < 0.5]
        for k, q in enumerate([p, replace(p, x=1 - p.x)] if twins else [p]):
            sc = Scene([q], bg=bg, form="single", say_size=say)
            side = "to the left" if q.x < 0.5 else "to the right"
            images[i + k] = decode_rgb(encode_image(render(sc, world.image_size), "jpg", world.jpeg_quality))
            texts[i + k] = f"{caption(sc)} {side}"


def _opposite_side_words(model, pre, norm: float) -> None:
    """Set the token embeddings of "left" and "right" to one random direction and its opposite."""
    tok = pre.processor.tokenizer
    ids = [tok.convert_tokens_to_ids(w) for w in ("left</w>", "right</w>")]
    assert tok.unk_token_id not in ids, ids
    emb = model.text_model.embeddings.token_embedding.weight
    with torch.no_grad():
        g = torch.Generator().manual_seed(2)
        d = torch.randn(emb.shape[1], generator=g)
        d = norm * d / d.norm()
        emb[ids[0]], emb[ids[1]] = d, -d


class _RelationHead(torch.nn.Module):
    """`extra_loss` for `align_steps`: a linear head on the image embedding, BCE on whether a pair
    scene's first-named object lies left of the other, times `weight`. (Which object the caption
    names first is not in the image, so the label is not one the image alone determines: the
    session-9 run below asked the embedding for something it cannot hold; `PretrainConfig.ground_weight`
    is the head that asks for what the image shows.)"""

    def __init__(self, dim: int, scenes: list[Scene], weight: float):
        super().__init__()
        self.head = torch.nn.Linear(dim, 1)
        self.weight = weight
        self.pair = torch.tensor([sc.form == "pair" for sc in scenes])
        self.left = torch.tensor([float(sc.form == "pair" and sc.objects[0].x < sc.objects[1].x) for sc in scenes])

    def forward(self, idx: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        m = self.pair[idx]
        if not m.any():
            return img.sum() * 0
        return self.weight * F.binary_cross_entropy_with_logits(self.head(img[m]).squeeze(-1), self.left[idx][m])


def _sincos_positions(model, pre, cfg: PretrainConfig) -> None:
    """Position embeddings set to a 2-D sin-cos table (x in one half of the width, y in the other)
    with the mean norm of a patch embedding of a rendered scene; the class token's row zero."""
    emb = model.vision_model.embeddings
    d, g = emb.position_embedding.weight.shape[1], cfg.image_size // cfg.patch_size
    ys, xs = torch.meshgrid(torch.arange(g, dtype=torch.float), torch.arange(g, dtype=torch.float), indexing="ij")

    def axis(v: torch.Tensor, dim: int) -> torch.Tensor:
        a = v.reshape(-1, 1) / 100 ** (torch.arange(dim // 2, dtype=torch.float) / (dim // 2)).reshape(1, -1)
        return torch.cat([a.sin(), a.cos()], 1)
    table = torch.cat([axis(xs, d // 2), axis(ys, d // 2)], 1)
    with torch.no_grad():
        px = pre.pixels([_render_jpeg(_probe_scenes("single-x", 8, 0)[0][0])])
        tok = emb.patch_embedding(px.to(emb.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        emb.position_embedding.weight[1:] = table * (tok.norm(dim=-1).mean() / table.norm(dim=-1).mean())
        emb.position_embedding.weight[0] = 0


def supervised(kind: str, steps: int, every: int = 100) -> list[tuple[int, float]]:
    """The stand-in's vision tower and projection fine-tuned with a linear head on a probe task
    (3,000 scenes, AdamW 3e-4, batches of 64): can it learn the task when asked directly?
    Test accuracy % every `every` steps. Not shipped."""
    torch.manual_seed(0)
    enc = DualEncoder.load(RELEASED)
    m = enc.model
    m.train()
    sc_tr, y_tr = _probe_scenes(kind, 3000, 0)
    sc_te, y_te = _probe_scenes(kind, 1000, 1)
    xtr = enc.pre.pixels([_render_jpeg(s) for s in sc_tr])
    xte = enc.pre.pixels([_render_jpeg(s) for s in sc_te])
    ytr, yte = torch.tensor(y_tr).float(), torch.tensor(y_te)
    head = torch.nn.Linear(64, 1)
    opt = torch.optim.AdamW(list(m.vision_model.parameters()) + list(m.visual_projection.parameters())
                            + list(head.parameters()), lr=3e-4)
    g = torch.Generator().manual_seed(0)
    out = []
    for step in range(steps):
        idx = torch.randint(0, len(xtr), (64,), generator=g)
        logit = head(F.normalize(image_features(m, xtr[idx]), dim=-1) * 10).squeeze(-1)
        loss = F.binary_cross_entropy_with_logits(logit, ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % every == 0:
            m.eval()
            with torch.no_grad():
                pred = head(F.normalize(image_features(m, xte), dim=-1) * 10).squeeze(-1) > 0
            m.train()
            out.append((step + 1, round(100 * float((pred.long() == yte).float().mean()), 1)))
            print(f"[d] supervised {kind}: step {out[-1][0]}: test {out[-1][1]}%", flush=True)
    return out


def _run_settings(run: Path) -> dict:
    """A demo output's own fine-tune settings (its results.json beside run/), for the loader replay."""
    f = run.parent / "results.json"
    if not f.is_file():
        return {}
    c = json.loads(f.read_text())["config"]
    return {"k": c["k"], "micro_batch": c["finetune_batch"], "steps": c["finetune_steps"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/cfgen-relations", help="where the demo's world and run are made")
    ap.add_argument("--run", action="append", default=[], help="also count (c) on this run directory")
    ap.add_argument("--finetune", default="std-ft,cf-vlm-plus",
                    help="recipes fine-tuned here (seed 0, the demo's settings) and probed like the stand-in")
    ap.add_argument("--json", default=None, help="write every figure here")
    ap.add_argument("--diagnostics", action="store_true",
                    help="also (d): three pretraining variants of 1,000 steps and two supervised probes "
                         "(about 15 more minutes on one core)")
    a = ap.parse_args()
    torch.manual_seed(0)
    t0 = time.time()
    out = Path(a.out)
    world_dir, run = demo_data(out)
    items = list(load_test_items(sorted(str(p) for p in (world_dir / "test").glob("*.tar"))))
    d = DemoConfig()
    models = {"stand-in (pretrained)": RELEASED}
    models.update({f"{r} (seed 0)": finetune(r, run, out) for r in a.finetune.split(",") if r})
    res: dict = {"models": {}}
    for name, path in models.items():
        print(f"== {name}", flush=True)
        enc = DualEncoder.load(path)
        enc.model.eval()
        res["models"][name] = {"a": part_a(enc, items), "b": part_b(enc, items, world_dir)}
    res["a_pretraining"] = web_batches_needing(WorldConfig(seed=0, **d.world), PretrainConfig.released("clip"))
    res["c"] = [part_c(run, RELEASED)] + [part_c(Path(r), RELEASED, **_run_settings(Path(r))) for r in a.run]
    if a.diagnostics:
        res["d"] = {"pretrain_baseline": pretrain_variant(world_dir, out / "pt-baseline"),
                    "pretrain_relation_twins": pretrain_variant(world_dir, out / "pt-twins", relation_twins=True),
                    "pretrain_position_std_0.5": pretrain_variant(world_dir, out / "pt-pos", pos_std=0.5),
                    "pretrain_sincos_twins_2500": pretrain_variant(world_dir, out / "pt-sincos", stop=2500,
                                                                   relation_twins=True, pos_sincos=True),
                    "pretrain_relation_phase_1000": pretrain_variant(world_dir, out / "pt-relphase", stop=2500,
                                                                     relation_phase=1000),
                    "supervised_single_x": supervised("single-x", 400),
                    "supervised_left_right": supervised("left-right", 1500, every=250)}
    res["seconds"] = round(time.time() - t0, 1)
    print(f"done in {res['seconds']} s")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    sys.exit(main())
