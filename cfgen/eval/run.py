"""`cfgen eval` dispatch: score a model on benchmarks (one function per benchmark kind in
BENCHMARKS), with per-item results for paired comparisons. Reports are `report.py`'s, the
statistics `stats.py`'s."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import benchmarks as B
from .scoring import ItemScorer, Scorer


@dataclass
class BenchResult:
    """One benchmark's metrics, the count behind each and what it counts (items by default;
    images, questions, files, subtasks, relations, pairs, categories), what was skipped and why,
    and every scored item (id, category, correct) for paired comparisons."""

    metrics: dict[str, float] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)
    unit: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    items: list[tuple[str, str, bool]] = field(default_factory=list)
    undefined: dict[str, str] = field(default_factory=dict)     # metric -> why it has no value

    def count(self, metric: str, n: int, unit: str = "items") -> None:
        self.n[metric], self.unit[metric] = n, unit

    def counts(self, counts: B.Counts) -> None:
        for k, (n, unit) in counts.items():
            self.count(k, n, unit)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def table(self) -> dict[str, Any]:
        """Metrics, `n_<what it counts>:<metric>` counts and `skipped:<reason>` counts, as
        results.json holds them. A metric that is not a number (a mean over nothing) is null,
        with `undefined:<metric>` saying why: JSON has no NaN, and one NaN must not lose a run."""
        mets: dict[str, Any] = {}
        for k, v in self.metrics.items():
            mets[k] = v if math.isfinite(v) else None
            if mets[k] is None:
                mets[f"undefined:{k}"] = self.undefined.get(k, f"no {self.unit.get(k, 'items')} to average")
        return {**mets, **{f"n_{self.unit.get(k, 'items')}:{k}": v for k, v in self.n.items()},
                **{f"skipped:{k}": v for k, v in self.skipped.items()}}


def _usable(items: list[B.Item], res: BenchResult, skip_missing: bool) -> list[B.Item]:
    """Items whose image file can be opened (see `_unusable`)."""
    bad = _unusable([it.image for it in items if isinstance(it.image, str)], skip_missing)
    for it in items:
        if isinstance(it.image, str) and it.image in bad:
            res.skip(bad[it.image])
    return [it for it in items if not (isinstance(it.image, str) and it.image in bad)]


def _unusable(paths: list[str], skip_missing: bool) -> dict[str, str]:
    """Image paths that cannot be opened, with why (B.image_problems); any stops the run naming
    the first unless skip_missing (the caller then counts what it leaves out)."""
    bad = B.image_problems(paths)
    if bad and not skip_missing:
        first = sorted(bad)[0]
        what = "image not found" if bad[first] == "missing_image" else "not a regular file"
        raise ValueError(f"{first}: {what} ({len(bad) - 1} other image(s) of this benchmark unusable); "
                         "fix --image-root/--coco-root, or --skip-missing to score the rest")
    return bad


def _load(path: str, res: BenchResult, skip_missing: bool):
    """The decoded image, or None (counted by reason) when it cannot be read and skip_missing;
    without skip_missing one line naming it."""
    try:
        return B.load_image(path)
    except Exception as e:
        if not skip_missing:
            raise ValueError(f"{path}: unreadable image ({B.image_error(e)}); "
                             "--skip-missing to score the rest") from None
        res.skip(B.image_error(e))
        return None


def _mc(scorer: ItemScorer, items: list[B.Item], res: BenchResult, skip_missing: bool,
        group: str | None = None, argmax: bool = False) -> tuple[list[B.Item], list[bool]]:
    """Score multiple-choice items (`argmax`: the first of tied options wins, see B.is_correct);
    unreadable images stop the run or are skipped and counted by reason."""
    scores = scorer.item_scores(items)
    bad = scorer.unreadable
    if bad:
        keys = [B._img_key(it) for it in items]
        first = next(it for it, k in zip(items, keys) if k in bad)
        if not skip_missing:
            raise ValueError(f"{first.image}: unreadable image ({bad[B._img_key(first)]}; "
                             f"{len(bad) - 1} other(s)); --skip-missing to score the rest")
        for k in keys:
            if k in bad:
                res.skip(bad[k])
        keep = [k not in bad for k in keys]
        items = [it for it, ok in zip(items, keep) if ok]
        scores = [s for s, ok in zip(scores, keep) if ok]
    corrects = [B.is_correct(s, it.correct, argmax) for s, it in zip(scores, items)]
    res.items.extend((it.id, it.groups.get(group, "all") if group else "all", c) for it, c in zip(items, corrects))
    return items, corrects


def _per_group(items: list[B.Item], corrects: list[bool], group: str, res: BenchResult, prefix: str = "",
               avg: str | None = "avg") -> None:
    """Accuracy per group, and (`avg`: its name) the mean of the groups' accuracies."""
    per = B.accuracy_by(items, corrects, group)
    for g, (a, n) in per.items():
        res.metrics[f"{prefix}{g}"] = a
        res.count(f"{prefix}{g}", n)
    if avg and per:
        res.metrics[avg] = float(np.mean([a for a, _ in per.values()]))
        res.count(avg, sum(n for _, n in per.values()))


# One function per benchmark kind, all with one signature; BENCHMARKS maps `--bench` kinds to them.
# A new benchmark is a loader in benchmarks.py, a function here and one line in BENCHMARKS.
class Ctx:
    """What every benchmark function gets: the scorer, the data path and image root, the seed,
    the skip policy, and the result it fills."""

    def __init__(self, scorer: ItemScorer, kind: str, path: str, image_root: str | None, seed: int,
                 skip_missing: bool):
        self.scorer, self.kind, self.path, self.image_root = scorer, kind, path, image_root
        self.seed, self.skip_missing, self.res = seed, skip_missing, BenchResult()

    def usable(self, items: list[B.Item]) -> list[B.Item]:
        return _usable(items, self.res, self.skip_missing)

    def unusable(self, paths: list[str]) -> dict[str, str]:
        return _unusable(paths, self.skip_missing)

    def load(self, path: str):
        return _load(path, self.res, self.skip_missing)

    def mc(self, items: list[B.Item], group: str | None = None, argmax: bool = False
           ) -> tuple[list[B.Item], list[bool]]:
        return _mc(self.scorer, items, self.res, self.skip_missing, group, argmax)


def _aro(c: Ctx) -> None:
    rel = c.kind == "aro-vg-relation"
    items = c.usable((B.load_vg_relation if rel else B.load_vg_attribution)(c.path, c.image_root, c.res.skipped))
    items, ok = c.mc(items, "relation" if rel else "attributes")
    c.res.metrics, counts = (B.aro_relation_metrics if rel else B.aro_attribution_metrics)(items, ok)
    c.res.counts(counts)
    if not math.isfinite(c.res.metrics["macro"]):
        c.res.undefined["macro"] = ("no relation left once the symmetric ones are dropped" if rel else
                                    "no attribute pair has the 25 items the macro average needs")


def _order(c: Ctx) -> None:
    """ARO's evaluate_scores: np.argmax over [true caption, 4 perturbations], so a perturbation
    identical to the caption ties and the caption (first) wins."""
    _, ok = c.mc(c.usable(B.load_order(c.path, c.image_root, seed=c.seed, skipped=c.res.skipped)), argmax=True)
    c.res.metrics = {"precision@1": float(np.mean(ok)) if ok else 0.0}
    c.res.count("precision@1", len(ok))


def _sugarcrepe(c: Ctx) -> None:
    _per_group(*c.mc(c.usable(B.load_sugarcrepe(c.path, c.image_root, c.res.skipped)), "category"), "category", c.res)


def _vl_checklist(c: Ctx) -> None:
    allpairs = c.kind.endswith("allpairs")
    items = c.usable(B.load_vl_checklist(c.path, c.image_root, all_pairs=allpairs, skipped=c.res.skipped))
    if not allpairs:
        n_all = len(items)
        items = B.cap_per_file(items)
        if n_all > len(items):
            c.res.skipped["over_max_num"] = n_all - len(items)
    items, ok = c.mc(items, "type")
    _per_group(items, ok, "file", c.res, prefix="file:", avg=None)
    # The official evaluate.py reports one accuracy per corpus file; a type's figure is the mean of
    # its files' accuracies (as papers report them), not the pool of files of 9 to 1,000 items.
    by_type: dict[str, list[float]] = {}
    type_of = {it.groups["file"]: it.groups["type"] for it in items}
    for f, (a, _) in B.accuracy_by(items, ok, "file").items():
        by_type.setdefault(type_of[f], []).append(a)
    for t, accs in sorted(by_type.items()):
        c.res.metrics[f"{t}:mean_of_files"] = float(np.mean(accs))
        c.res.count(f"{t}:mean_of_files", len(accs), "files")
    if by_type:
        c.res.metrics["avg"] = float(np.mean([c.res.metrics[f"{t}:mean_of_files"] for t in by_type]))
        c.res.count("avg", len(by_type), "categories")


def _conme(c: Ctx) -> None:
    """The generated files and the `*_HUMAN_FILTER` files are two versions of the same partitions:
    each is reported with its own average. A generative VLM is also scored by ConMe's own rule
    (`loss_score:`: the language-model loss of each option's letter under ConMe's prompt)."""
    items = c.usable(B.load_conme(c.path, c.image_root, skipped=c.res.skipped, seed=c.seed))
    if not items:
        raise ValueError(f"{c.path}: no ConMe row with parseable options ({c.res.skipped})")
    items, ok = c.mc(items, "category")
    _conme_groups(items, ok, c.res, "")
    if hasattr(c.scorer, "conme_scores"):
        # ConMe's score_options: max() over the options' scores, the first of tied options wins
        ok = [B.is_correct(s, it.correct, argmax=True) for s, it in zip(c.scorer.conme_scores(items), items)]
        c.res.items.extend((it.id, f"loss_score:{it.groups['category']}", x) for it, x in zip(items, ok))
        _conme_groups(items, ok, c.res, "loss_score:")


def _conme_groups(items: list[B.Item], ok: list[bool], res: BenchResult, prefix: str) -> None:
    for human in (False, True):
        sel = [(it, x) for it, x in zip(items, ok) if it.groups["category"].endswith("_HUMAN_FILTER") == human]
        if sel:
            _per_group([it for it, _ in sel], [x for _, x in sel], "category", res, prefix,
                       avg=f"{prefix}avg{'_HUMAN_FILTER' if human else ''}")


def _winoground(c: Ctx) -> None:
    ex = B.load_winoground(c.path, c.image_root, c.res.skipped)
    bad = c.unusable([x for e in ex for x in e["images"]])
    out: dict[str, list[bool]] = {"text": [], "image": [], "group": []}
    for e in ex:
        why = next((bad[x] for x in e["images"] if x in bad), None)
        if why:
            c.res.skip(why)
            continue
        ims = [c.load(x) for x in e["images"]]
        if None in ims:
            continue
        s = c.scorer.enc.score(ims, e["captions"]).numpy().T
        for k, v in B.winoground_metrics(s).items():
            out[k].append(v)
        c.res.items.append((e["id"], "group", out["group"][-1]))
    c.res.metrics = {k: float(np.mean(v)) if v else 0.0 for k, v in out.items()}
    for k, v in out.items():
        c.res.count(k, len(v), "examples")


def _image_embeddings(c: Ctx, files: list[str], desc: str):
    """(indices into `files`, their embeddings) one batch at a time, with a progress bar: only one
    batch of pixels is ever in memory, whatever the folder size. An image that cannot be opened or
    decoded stops the run naming it, or with --skip-missing is left out and counted by reason."""
    from tqdm.auto import tqdm
    bad = c.unusable(files)
    bs = c.scorer.bs
    with tqdm(total=len(files), desc=desc, unit="img", leave=False) as bar:
        for b in range(0, len(files), bs):
            idx, ims = [], []
            for i in range(b, min(b + bs, len(files))):
                im = None
                if files[i] in bad:
                    c.res.skip(bad[files[i]])
                else:
                    im = c.load(files[i])
                if im is not None:
                    idx.append(i)
                    ims.append(im)
            if ims:
                yield idx, c.scorer.enc.embed_images(ims, bs).numpy()
            bar.update(min(bs, len(files) - b))


def _retrieval(c: Ctx) -> None:
    """Recall@K both ways; images embedded batch by batch (the embeddings, not the pixels, are kept)."""
    images, texts, owner = B.load_karpathy(c.path, c.image_root, c.res.skipped)
    got = list(_image_embeddings(c, images, "retrieval images"))
    kept = [i for idx, _ in got for i in idx]
    ie = np.concatenate([e for _, e in got]) if got else np.zeros((0, 1))
    row = {i: r for r, i in enumerate(kept)}
    tsel = [j for j, o in enumerate(owner) if o in row]
    te = c.scorer.enc.embed_texts([texts[j] for j in tsel]).numpy()
    sim = ie @ te.T
    captions_of: dict[int, set[int]] = {}
    for t, j in enumerate(tsel):
        captions_of.setdefault(owner[j], set()).add(t)
    i2t = B.recall_at_k(sim, [captions_of[i] for i in kept])
    t2i = B.recall_at_k(sim.T, [{row[owner[j]]} for j in tsel])
    c.res.metrics = {**{f"i2t_R@{k}": v for k, v in i2t.items()}, **{f"t2i_R@{k}": v for k, v in t2i.items()}}
    for k in i2t:
        c.res.count(f"i2t_R@{k}", len(kept), "images")
        c.res.count(f"t2i_R@{k}", len(tsel), "captions")


def _zeroshot(c: Ctx) -> None:
    """Top-1/top-5 zero-shot accuracy as clip_benchmark computes it (metrics/zeroshot_classification.py):
    per class, each template's text embedding L2-normalised, averaged, renormalised; images streamed
    in batches; top-5 only with 5 or more classes (clip_benchmark reports NaN there)."""
    import torch
    files, labels, names, templates = B.load_image_folder(c.path, c.res.skipped)
    cls = []
    for n in names:
        e = torch.nn.functional.normalize(c.scorer.enc.embed_texts([t.format(n, c=n) for t in templates]), dim=-1)
        e = e.mean(0)
        cls.append((e / e.norm()).numpy())
    weights = np.stack(cls, axis=1)
    k = 5 if len(names) >= 5 else 1
    kept, top = [], []
    for idx, emb in _image_embeddings(c, files, "zero-shot images"):
        kept += idx
        top.append(np.argsort(-(emb @ weights), axis=1, kind="stable")[:, :k])
    top_k = np.concatenate(top) if top else np.zeros((0, k), int)
    lab = np.array([labels[i] for i in kept])
    c.res.metrics = {"top1": float((top_k[:, 0] == lab).mean()) if len(lab) else 0.0}
    if k == 5:
        c.res.metrics["top5"] = float((top_k == lab[:, None]).any(1).mean()) if len(lab) else 0.0
    for m in c.res.metrics:
        c.res.count(m, len(lab), "images")
    c.res.items = [(os.path.relpath(files[i], c.path), "top1", bool(t == y)) for i, t, y in zip(kept, top_k[:, 0], lab)]


def _world(c: Ctx) -> None:
    items, ok = c.mc(B.load_world_test(c.path), "test")
    c.res.items = [(i, f"{it.groups['split']}:{g}", x) for (i, g, x), it in zip(c.res.items, items)]
    for key, (a, n) in B.world_accuracy((it.groups["split"], it.groups["test"], x) for it, x in zip(items, ok)).items():
        c.res.metrics[key] = a
        c.res.count(key, n)


def _answers(c: Ctx, qs: list[B.YesNo]) -> tuple[list[B.YesNo], list[bool]]:
    """Yes/no answers (P(yes) > 0.5) of a generative scorer, a batch of images at a time (POPE's
    9,000 questions never sit in memory as decoded images); images that cannot be opened or
    decoded stop the run, or with --skip-missing are dropped and counted by reason."""
    if not c.scorer.generative:
        raise ValueError(f"{c.kind}: yes/no questions need a generative model (cfgen eval --scoring generative)")
    bad = c.unusable([q.image for q in qs])
    keep, pred = [], []
    bs = c.scorer.bs
    for b in range(0, len(qs), bs):
        batch, imgs = [], []
        for q in qs[b:b + bs]:
            im = None
            if q.image in bad:
                c.res.skip(bad[q.image])
            else:
                im = c.load(q.image)
            if im is not None:
                batch.append(q)
                imgs.append(im)
        if batch:
            keep += batch
            p = c.scorer.p_yes(imgs, [q.question for q in batch])
            pred += [bool(x > 0.5) for x in p]
    return keep, pred


def _pope(c: Ctx) -> None:
    qs, pred = _answers(c, B.load_pope(c.path, c.image_root, c.res.skipped))
    for split in sorted({q.group for q in qs}) + ["all"]:
        sel = [i for i, q in enumerate(qs) if split in ("all", q.group)]
        for k, v in B.pope_metrics([pred[i] for i in sel], [qs[i].answer for i in sel]).items():
            c.res.metrics[f"{split}:{k}"] = v
            c.res.count(f"{split}:{k}", len(sel), "questions")
    c.res.items = [(q.id, q.group, p == q.answer) for q, p in zip(qs, pred)]


def _mme(c: Ctx) -> None:
    qs, pred = _answers(c, B.load_mme(c.path, c.res.skipped, skip_empty=c.skip_missing))
    ok = [p == q.answer for q, p in zip(qs, pred)]
    c.res.metrics, counts = B.mme_metrics(qs, ok)
    c.res.counts(counts)
    c.res.items = [(q.id, q.group, x) for q, x in zip(qs, ok)]


BENCHMARKS: dict[str, Callable[[Ctx], None]] = {
    "aro-vg-relation": _aro, "aro-vg-attribution": _aro, "coco-order": _order, "flickr30k-order": _order,
    "sugarcrepe": _sugarcrepe, "vl-checklist": _vl_checklist, "vl-checklist-allpairs": _vl_checklist,
    "conme": _conme, "winoground": _winoground, "retrieval": _retrieval, "zeroshot": _zeroshot, "world": _world,
    "pope": _pope, "mme": _mme,
}
EMBEDDING_ONLY = ("winoground", "retrieval", "zeroshot")


def run_bench(scorer: ItemScorer, name: str, path: str, image_root: str | None = None, seed: int = 1,
              skip_missing: bool = False) -> BenchResult:
    """Metrics of one benchmark (accuracies as fractions in [0, 1]), with counts and skips.
    `name` is a kind from BENCHMARKS, optionally `kind:label`."""
    kind = name.split(":")[0]
    if kind not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {kind!r} (one of: {', '.join(BENCHMARKS)})")
    if kind in EMBEDDING_ONLY and scorer.enc is None:
        raise ValueError(f"{kind} needs image and text embeddings: score it with a contrastive model "
                         "(--scoring contrastive)")
    c = Ctx(scorer, kind, path, image_root, seed, skip_missing)
    BENCHMARKS[kind](c)
    return c.res


def evaluate(model: str, benches: dict[str, str], image_roots: dict[str, str] | None = None,
             device: str = "cpu", seed: int = 1, encoder: Any = None,
             skip_missing: bool = False, scoring: str = "contrastive") -> dict[str, BenchResult]:
    """Score `model` on each benchmark. `scoring`: contrastive (cosine of CLIP/SigLIP embeddings)
    or generative (S_gen = P(yes) of an image-text-to-text VLM; `generative.py`)."""
    if scoring == "generative":
        from .generative import GenerativeScorer
        scorer: Any = GenerativeScorer(model, device=device)
    elif scoring == "contrastive":
        from ..train.model import DualEncoder
        enc = encoder or DualEncoder.load(model, device=device)
        enc.model.eval()
        scorer = Scorer(enc)
    else:
        raise ValueError(f"--scoring must be contrastive or generative, not {scoring!r}")
    return {name: run_bench(scorer, name, path, (image_roots or {}).get(name), seed, skip_missing)
            for name, path in benches.items()}
