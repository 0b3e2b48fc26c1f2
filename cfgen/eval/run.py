"""`cfgen eval`: score models on benchmarks; write the table as JSON, CSV and Markdown."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from . import benchmarks as B


def _mc(scorer: B.Scorer, items: list[B.Item]) -> list[bool]:
    return [B.is_correct(s, it.correct) for s, it in zip(scorer.item_scores(items), items)]


def _per_group(items: list[B.Item], corrects: list[bool], group: str, prefix: str = "") -> dict[str, float]:
    per = B.accuracy_by(items, corrects, group)
    out = {f"{prefix}{g}": a for g, (a, _) in per.items()}
    out[f"{prefix}avg"] = float(np.mean([a for a, _ in per.values()])) if per else float("nan")
    return out


def run_bench(scorer: B.Scorer, name: str, path: str, image_root: str | None = None, seed: int = 0) -> dict[str, float]:
    """Metrics of one benchmark (accuracies as fractions in [0, 1])."""
    kind = name.split(":")[0]
    if kind == "aro-vg-relation":
        items = B.load_vg_relation(path, image_root)
        return B.aro_relation_metrics(items, _mc(scorer, items))
    if kind == "aro-vg-attribution":
        items = B.load_vg_attribution(path, image_root)
        return B.aro_attribution_metrics(items, _mc(scorer, items))
    if kind in ("coco-order", "flickr30k-order"):
        items = B.load_order(path, image_root, seed=seed)
        return {"precision@1": float(np.mean(_mc(scorer, items)))}
    if kind == "sugarcrepe":
        items = B.load_sugarcrepe(path, image_root)
        return _per_group(items, _mc(scorer, items), "category")
    if kind == "vl-checklist":
        items = B.load_vl_checklist(path, image_root)
        c = _mc(scorer, items)
        out = _per_group(items, c, "type")
        out.update({f"file:{k}": v for k, v in _per_group(items, c, "file").items() if k != "avg"})
        return out
    if kind == "conme":
        items = B.load_conme(path, image_root)
        return _per_group(items, _mc(scorer, items), "category")
    if kind == "winoground":
        ex = B.load_winoground(path, image_root)
        res = {"text": [], "image": [], "group": []}
        for e in ex:
            s = scorer.enc.score([B.load_image(x) for x in e["images"]], e["captions"]).numpy().T
            for k, v in B.winoground_metrics(s).items():
                res[k].append(v)
        return {k: float(np.mean(v)) for k, v in res.items()}
    if kind == "retrieval":
        images, texts, owner = B.load_karpathy(path, image_root)
        ie = scorer.enc.embed_images([B.load_image(x) for x in images]).numpy()
        te = scorer.enc.embed_texts(texts).numpy()
        sim = ie @ te.T
        i2t = B.recall_at_k(sim, [{j for j, o in enumerate(owner) if o == i} for i in range(len(images))])
        t2i = B.recall_at_k(sim.T, [{o} for o in owner])
        return {**{f"i2t_R@{k}": v for k, v in i2t.items()}, **{f"t2i_R@{k}": v for k, v in t2i.items()}}
    if kind == "zeroshot":
        files, labels, names = B.load_image_folder(path)
        templates = ["a photo of a {}."]
        tf = Path(path) / "templates.txt"
        if tf.exists():
            templates = [t.strip() for t in tf.read_text().splitlines() if t.strip()]
        cls = []
        for n in names:
            e = scorer.enc.embed_texts([t.format(n) for t in templates]).mean(0)
            cls.append(e / e.norm())
        ie = scorer.enc.embed_images([B.load_image(f) for f in files]).numpy()
        logits = ie @ np.stack([c.numpy() for c in cls]).T
        top = np.argsort(-logits, axis=1)
        lab = np.array(labels)
        return {"top1": float((top[:, 0] == lab).mean()), "top5": float((top[:, :5] == lab[:, None]).any(1).mean())}
    if kind == "world":
        items = B.load_world_test(path)
        c = _mc(scorer, items)
        out: dict[str, float] = {}
        for split in ("unseen", "seen"):
            sub = [(it, x) for it, x in zip(items, c) if it.groups["split"] == split]
            per = B.accuracy_by([i for i, _ in sub], [x for _, x in sub], "test")
            out.update({f"{split}:{t}": a for t, (a, _) in per.items()})
        return out
    raise ValueError(f"unknown benchmark {kind!r} (one of: {', '.join(B.LOADERS)})")


def evaluate(model: str, benches: dict[str, str], image_roots: dict[str, str] | None = None,
             device: str = "cpu", seed: int = 0, encoder: Any = None) -> dict[str, dict[str, float]]:
    from ..train.model import DualEncoder
    enc = encoder or DualEncoder.load(model, device=device)
    enc.model.eval()
    scorer = B.Scorer(enc)
    return {name: run_bench(scorer, name, path, (image_roots or {}).get(name), seed) for name, path in benches.items()}


# ------------------------------------------------------------------------------- reports
def rows(results: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """{model: {bench: {metric: value}}} -> rows with one column per model and deltas vs the first."""
    models = list(results)
    keys: list[tuple[str, str]] = []
    for m in models:
        for b, mets in results[m].items():
            for k in mets:
                if (b, k) not in keys:
                    keys.append((b, k))
    out = []
    for b, k in keys:
        r: dict[str, Any] = {"benchmark": b, "metric": k}
        base = results[models[0]].get(b, {}).get(k)
        for m in models:
            v = results[m].get(b, {}).get(k)
            r[m] = v
            if m != models[0] and v is not None and base is not None:
                r[f"delta {m}"] = v - base
        out.append(r)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if v != v else (f"{100 * v:.1f}" if abs(v) <= 1.0 else f"{v:.3g}")
    return "" if v is None else str(v)


def markdown(rs: list[dict[str, Any]]) -> str:
    if not rs:
        return ""
    cols = list(rs[0].keys())
    for r in rs:
        cols += [c for c in r if c not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rs]
    return "\n".join(lines)


def write_reports(results: dict[str, dict[str, dict[str, float]]], out: str | Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rs = rows(results)
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    cols = list(dict.fromkeys(c for r in rs for c in r))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rs)
    (out / "results.md").write_text(markdown(rs) + "\n")
    return {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md"}
