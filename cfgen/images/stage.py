"""`cfgen images`: anchors + validated rewrites -> counterfactual images -> final shards.

Two steps per unit, each with its own ledger:
  images/part-NNNNN.{tar,parquet}  every generated counterfactual, its mask box, seed and
                                   filter scores (the expensive step: GPUs)
  final/part-NNNNN.tar             the final WebDataset shard (thresholds applied; cheap),
                                   redone by `cfgen filter` with new thresholds
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..config import CLI_ONLY
from ..datamodel import (EDIT_SCHEMA, FAILED, GENERATED, KEPT, REJECTED, SCORE_KEYS, Counterfactual, Edit, Generated,
                         Rewrite, Sample, Status, table_to_rewrites)
from ..hub import require_model
from ..io.images import decode_rgb, encode_image
from ..io.reader import InputConfig, read_unit
from ..io.writer import AtomicTarWriter, atomic_write_parquet
from ..run import (Ledger, Manifest, Unit, UnitStats, WorkerBroken, check_settings, is_fatal_device_error, is_oom,
                   run_lock, run_units)
from .editors import EditResult, Editor, edit_seed
from .filter import FilterConfig, verdict
from .masks import MaskConfig
from .sdxl import SDXLConfig

EDIT_STAGE, FINAL_STAGE = "images", "final"
REFILTER = "`cfgen filter` to redo every final part with the new ones"


@dataclass
class ImagesConfig(FilterConfig):
    run: str = "shards/run"
    editor: str = "scene"                    # scene | sdxl
    seed: int = 0
    filter: bool = True
    filter_model: str = "openai/clip-vit-large-patch14"
    store_size: int | None = None            # resize final images (shortest side) to training size
    image_format: str = "jpg"
    sdxl: SDXLConfig = field(default_factory=SDXLConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    workers: int = 1
    distributor: str = "local"
    ray_address: str | None = field(default=None, metadata=CLI_ONLY)
    retries: int = 2

    def models(self) -> dict[str, str]:
        """Every model this configuration will load, by the option that names it."""
        out = {"filter_model": self.filter_model} if self.filter else {}
        if self.editor == "sdxl":
            out.update({f"sdxl.{k}": getattr(self.sdxl, k) for k in ("base", "refiner", "vae")
                        if getattr(self.sdxl, k)})
            out.update({f"masks.{k}": getattr(self.masks, k) for k in ("detector", "sam") if getattr(self.masks, k)})
        return out

    def edit_settings(self) -> dict[str, Any]:
        """The settings that shape an images part (recorded in the manifest: a resume with other
        values is refused); the SDXL batch size and compilation change speed, not images."""
        out: dict[str, Any] = {"editor": self.editor, "seed": self.seed,
                               "image_format": self.image_format, "filter": self.filter}
        if self.filter:
            out["filter_model"] = self.filter_model
        if self.editor == "sdxl":
            sdxl = {k: v for k, v in asdict(self.sdxl).items() if k not in ("batch_size", "compile")}
            out.update(sdxl=sdxl, masks=asdict(self.masks))
        return out

    def final_settings(self) -> dict[str, Any]:
        """The settings that shape a final part (`cfgen filter` redoes them all with new ones)."""
        thresholds = {f.name: getattr(self, f.name) for f in fields(FilterConfig)}
        return {"filter": self.filter, **thresholds, "store_size": self.store_size, "image_format": self.image_format}


def make_editor(cfg: ImagesConfig, device: str) -> Editor:
    if cfg.editor == "scene":
        from .editors import SceneEditor
        return SceneEditor(image_format=cfg.image_format)
    if cfg.editor == "sdxl":
        from .sdxl import SDXLEditor
        return SDXLEditor(cfg.sdxl, cfg.masks, device=device,
                          image_format=cfg.image_format)
    raise ValueError(f"unknown editor {cfg.editor!r} (scene, sdxl)")


def edit_anchors(editor: Editor, jobs: list[tuple[Any, list[Any], list[int]]]
                 ) -> tuple[list[list[EditResult] | Exception], int]:
    """Edits of a group of anchors, batched across them (`edit_many`), and how many anchors were
    redone after an out of memory.

    Out of memory: free the cache and redo each anchor alone, one image at a time (seeded per
    image, so the result is the same). A sticky
    CUDA error, wherever it was raised (the editor, freeing the cache after an out of memory):
    WorkerBroken, the worker loop replaces the process. Any other error of a group is retried
    anchor by anchor, so one bad anchor fails alone (its exception is returned in its place)."""
    if len(jobs) > 1:
        try:
            return list(editor.edit_many(jobs)), 0
        except Exception as e:
            _raise_if_broken(e)
    out: list[list[EditResult] | Exception] = []
    redone = 0
    for anchor, rewrites, seeds in jobs:
        try:
            results, oom = _edit_one(editor, anchor, rewrites, seeds)
            out.append(results)
            redone += oom
        except Exception as e:
            _raise_if_broken(e)
            out.append(e)
    return out, redone


def _edit_one(editor: Editor, anchor: Any, rewrites: list[Any], seeds: list[int]) -> tuple[list[EditResult], int]:
    """An anchor's edits, and 1 when they had to be redone one at a time after an out of memory."""
    try:
        return editor.edit(anchor, rewrites, seeds), 0
    except Exception as e:
        _raise_if_broken(e)
        if not is_oom(e):
            raise
    import torch
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        return editor.edit(anchor, rewrites, seeds, batch_size=1), 1
    except Exception as e:
        _raise_if_broken(e)
        raise


def _raise_if_broken(e: BaseException) -> None:
    """A sticky CUDA error poisons the process: WorkerBroken, so the distributor replaces it."""
    if isinstance(e, WorkerBroken):
        raise e
    if is_fatal_device_error(e):
        raise WorkerBroken(f"{type(e).__name__}: {e}"[:300]) from e


class EditJob:
    """Generate and score every kept rewrite of one unit."""

    def __init__(self, cfg: ImagesConfig, input_cfg: InputConfig):
        self.cfg = cfg
        self.input_cfg = input_cfg
        self.device: str | None = None
        self.editor: Editor | None = None
        self.scorer: Any = None

    def setup(self, device: str) -> None:
        """Load the editor (and the filter's scorer) once per worker and keep them (what a Ray
        actor's __init__ calls)."""
        if self.editor is not None and self.device == device:
            return
        self.editor = make_editor(self.cfg, device)
        if self.cfg.filter:
            from .filter import ClipScorer
            self.scorer = ClipScorer(self.cfg.filter_model, device)
        self.device = device

    def __getstate__(self) -> dict[str, Any]:
        return {"cfg": self.cfg, "input_cfg": self.input_cfg, "device": None, "editor": None, "scorer": None}

    def __call__(self, unit: Unit, device: str = "cpu") -> dict[str, Any]:
        t0 = time.time()
        self.setup(device)
        cfg = self.cfg
        ledger = Ledger(cfg.run, EDIT_STAGE)
        cap_path = Path(cfg.run) / "captions" / f"{unit.name}.parquet"
        table = pq.read_table(cap_path)
        rewrites = table_to_rewrites(table)
        captions = {r["key"]: r["caption"] for r in table.to_pylist()}
        upstream = {r["key"]: (Status(r["status"]), r["reason"]) for r in table.to_pylist() if r["i"] < 0}
        editor, scorer = self.editor, self.scorer
        stats = UnitStats(unit.index)
        rows: list[dict[str, Any]] = []
        cf_rej: Counter = Counter()
        n_gen = n_oom = 0
        tmp = AtomicTarWriter(ledger.dir / f"{unit.name}.tar")
        group_edits = max(1, editor.batch_size)
        score_edits = scorer.batch_size if scorer is not None else 1      # images: anchors and their edits
        pending: list[tuple[Any, list[Rewrite], list[int]]] = []     # waiting for the editor
        edited: list[tuple[Any, list[Rewrite], list[EditResult]]] = []   # waiting for the filter

        def flush() -> None:
            """Edit the pending anchors; score and write once the filter has a batch to fill."""
            nonlocal n_oom
            outs, redone = edit_anchors(editor, pending)
            n_oom += redone
            for (a, kept, seeds), results in zip(pending, outs):
                if isinstance(results, Exception):       # one anchor never stops the unit
                    e = results
                    results = [EditResult(r.i, status=FAILED, reason=f"editor_error: {type(e).__name__}: {e}"[:300],
                                          seed=s) for r, s in zip(kept, seeds)]
                edited.append((a, kept, results))
            pending.clear()
            if sum(1 + sum(x.status == GENERATED for x in res) for _, _, res in edited) >= score_edits:
                write_edited()

        def write_edited() -> None:
            nonlocal n_gen
            gens = [[x for x in results if x.status == GENERATED] for _, _, results in edited]
            scores: list[list[dict[str, float]]] = [[{} for _ in gen] for gen in gens]
            if scorer is not None:
                texts = [{r.i: r.text for r in kept} for _, kept, _ in edited]
                scores = scorer.score_many([(decode_rgb(a.image), a.caption, [decode_rgb(x.image) for x in gen],
                                             [by_i[x.i] for x in gen])
                                            for (a, _, _), gen, by_i in zip(edited, gens, texts)])
            for (a, kept, results), gen, sc_list in zip(edited, gens, scores):
                sc = {x.i: s for x, s in zip(gen, sc_list)}
                sample = Generated(a.key, a.caption, a.image, a.image_ext, a.source_id, a.meta, cf_ext=cfg.image_format)
                for r, x in zip(kept, results):
                    rows.append(_row(a.key, a.caption, r, x, sc.get(x.i, {})))
                    if x.status == GENERATED:
                        sample.cf_images[x.i] = x.image
                    else:
                        cf_rej[x.reason.split(":")[0]] += 1
                n_gen += len(gen)
                if gen:
                    tmp.write(sample.to_wds())
                    stats.add(KEPT)
                elif all(x.status == FAILED for x in results):
                    stats.add(FAILED, results[0].reason.split(":")[0])
                else:
                    stats.add(REJECTED, "no_cf_generated")
            edited.clear()

        try:
            for rec in read_unit(unit, self.input_cfg):
                if rec.anchor is None:
                    stats.add(rec.status, rec.reason)
                    continue
                a = rec.anchor
                if captions.get(a.key, a.caption) != a.caption:     # the input changed under the run
                    stats.add(FAILED, "caption_mismatch")
                    continue
                kept = [r for r in rewrites.get(a.key, []) if r.status == KEPT]    # at most the run's K (captions)
                if not kept:
                    status, reason = upstream.get(a.key, (REJECTED, "no_kept_rewrite"))
                    stats.add(status if status in (REJECTED, FAILED) else REJECTED, reason or "no_kept_rewrite")
                    continue
                pending.append((a, kept, [edit_seed(cfg.seed, a.key, r.i) for r in kept]))
                if sum(len(k) for _, k, _ in pending) >= group_edits:     # enough edits for a full batch
                    flush()
            if pending:
                flush()
            write_edited()
            tmp.close()
        except BaseException:
            tmp.abort()
            raise
        part = ledger.dir / f"{unit.name}.parquet"
        atomic_write_parquet(part, pa.Table.from_pylist(rows, schema=EDIT_SCHEMA))
        dt = time.time() - t0
        stats.extra = {"cf_generated": n_gen, "cf_rejected": dict(cf_rej), "oom_retried_anchors": n_oom,
                       "seconds": round(dt, 3),
                       "images_per_s": round(n_gen / max(dt, 1e-9), 3), "device": device, "editor": cfg.editor}
        ledger.mark_done(unit, stats, outputs=[part, tmp.path], inputs=[cap_path])
        return stats.to_dict()


def _row(key: str, caption: str, r: Rewrite, x: EditResult, scores: dict[str, float]) -> dict[str, Any]:
    e = r.edit
    row = {"key": key, "i": r.i, "text": r.text, "caption": caption,
           "edit_type": e.type if e else None, "edit_from": e.from_ if e else None,
           "edit_to": e.to if e else None, "edit_scope": e.scope if e else None,
           "scope_used": x.scope or (e.scope if e else None), "status": x.status, "reason": x.reason,
           "seed": x.seed, "mask_box": x.mask_box}
    row.update({k: scores.get(k) for k in SCORE_KEYS})
    return row


class FinalizeJob:
    """Apply the filter thresholds to one unit's generated counterfactuals; write the final shard."""

    def __init__(self, cfg: ImagesConfig):
        self.cfg = cfg

    def setup(self, device: str) -> None:
        """No model: the scores were stored with every counterfactual."""

    def __call__(self, unit: Unit, device: str = "cpu") -> dict[str, Any]:
        import webdataset as wds
        cfg = self.cfg
        src = Ledger(cfg.run, EDIT_STAGE)
        ledger = Ledger(cfg.run, FINAL_STAGE)
        edit_stats = json.loads(src.stats_path(unit).read_text())
        rows = pq.read_table(src.dir / f"{unit.name}.parquet").to_pylist()
        by_key: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_key.setdefault(r["key"], []).append(r)
        stats = UnitStats(unit.index)
        # anchors that never reached generation keep their reasons from the edit step
        for reason, n in edit_stats["rejected"].items():
            for _ in range(n):
                stats.add(REJECTED, reason)
        for reason, n in edit_stats["failed"].items():
            for _ in range(n):
                stats.add(FAILED, reason)
        filtered: Counter = Counter()
        by_type: Counter = Counter()
        n_cf = 0
        seen: set[str] = set()
        tar = src.dir / f"{unit.name}.tar"
        with AtomicTarWriter(ledger.dir / f"{unit.name}.tar") as w:
            for raw in wds.WebDataset(str(tar.resolve()), shardshuffle=False, empty_check=False):
                g = Generated.from_wds(raw, cfg.image_format)
                key = g.key
                seen.add(key)
                cfs = []
                for r in by_key.get(key, []):
                    if r["status"] != GENERATED:
                        continue
                    sc = {k: r[k] for k in SCORE_KEYS if r[k] is not None}
                    keep, why = verdict(sc, cfg) if (cfg.filter and sc) else (True, "")
                    if not keep:
                        filtered[why] += 1
                        continue
                    img = g.cf_images[r["i"]]
                    cfs.append(Counterfactual(
                        i=len(cfs), text=r["text"], image=_resize(img, cfg),
                        edit=Edit(r["edit_type"], r["edit_from"], r["edit_to"], r["scope_used"] or r["edit_scope"]),
                        mask_box=r["mask_box"], scores=sc, seed=r["seed"], rewrite=r["i"]))
                if not cfs:
                    stats.add(REJECTED, "all_cf_filtered")
                    continue
                anchor_img = g.image if g.image_ext == cfg.image_format else encode_image(decode_rgb(g.image),
                                                                                          cfg.image_format)
                w.write(Sample(key=key, caption=g.caption, image=_resize(anchor_img, cfg), image_ext=cfg.image_format,
                               meta={"source_id": g.source_id, "source": g.meta.get("key", g.source_id)},
                               cfs=cfs).to_wds())
                stats.add(KEPT)
                n_cf += len(cfs)
                by_type.update(c.edit.type for c in cfs)
        missing = edit_stats["kept"] - len(seen)
        for _ in range(max(missing, 0)):
            stats.add(FAILED, "missing_from_images_tar")
        secs = edit_stats.get("seconds", 0.0)
        stats.extra = {"cf_kept": n_cf, "cf_filtered": dict(filtered), "kept_by_type": dict(by_type),
                       "cf_generated": edit_stats.get("cf_generated", 0), "edit_seconds": secs,
                       "cf_rejected": edit_stats.get("cf_rejected", {})}
        ledger.mark_done(unit, stats, outputs=[w.path], inputs=[tar, src.dir / f"{unit.name}.parquet"])
        return stats.to_dict()


def _resize(data: bytes, cfg: ImagesConfig) -> bytes:
    if not cfg.store_size:
        return data
    im = decode_rgb(data)
    if min(im.size) <= cfg.store_size:
        return data
    scale = cfg.store_size / min(im.size)
    return encode_image(im.resize((round(im.width * scale), round(im.height * scale))), cfg.image_format)


def run_images(cfg: ImagesConfig, gpus: list[str] | None = None, device: str = "cpu") -> dict[str, Any]:
    with run_lock(cfg.run):
        return _run_images(cfg, gpus, device)


def _run_images(cfg: ImagesConfig, gpus: list[str] | None, device: str) -> dict[str, Any]:
    manifest = Manifest.read(cfg.run)
    manifest.check_inputs(cfg.run)
    units = manifest.units
    cap = Ledger(cfg.run, "captions")
    ready = [u for u in units if cap.is_done(u)]
    if not ready:
        raise ValueError(f"{cfg.run}: no finished captions parts; run `cfgen captions` first")
    edits = Ledger(cfg.run, EDIT_STAGE)
    check_settings(edits, cfg.edit_settings())
    check_settings(Ledger(cfg.run, FINAL_STAGE), cfg.final_settings(), hint=REFILTER)
    if edits.pending(ready):
        for option, name in cfg.models().items():
            require_model(name, f"images option {option}")
    edit_summary = run_units(EditJob(cfg, manifest.input_config()), ready, edits, distributor=cfg.distributor,
                             workers=cfg.workers, gpus=gpus, retries=cfg.retries, desc="images", device=device,
                             item_key="cf_generated", ray_address=cfg.ray_address)
    summary = _run_filter(cfg, units)
    summary["units_failed"] = {**{f"captions/{u.name}": "captions part missing or changed: rerun `cfgen captions`"
                                  for u in units if u not in ready},
                               **{f"images/{k}": v for k, v in edit_summary["units_failed"].items()},
                               **{f"final/{k}": v for k, v in summary["units_failed"].items()}}
    return summary


def run_filter(cfg: ImagesConfig, redo: bool = False) -> dict[str, Any]:
    """(Re)build final shards from generated images and stored scores; no image is regenerated.
    The image format must be the one the images were generated in."""
    with run_lock(cfg.run):
        units = Manifest.read(cfg.run).units
        check_settings(Ledger(cfg.run, EDIT_STAGE), {"image_format": cfg.image_format}, record=False)
        return _run_filter(cfg, units, redo)


def _run_filter(cfg: ImagesConfig, units: list[Unit], redo: bool = False) -> dict[str, Any]:
    final = Ledger(cfg.run, FINAL_STAGE)
    if redo:
        for u in units:
            final.stats_path(u).unlink(missing_ok=True)
    check_settings(final, cfg.final_settings(), hint=REFILTER)
    edits = Ledger(cfg.run, EDIT_STAGE)
    ready = [u for u in units if edits.is_done(u)]
    summary = run_units(FinalizeJob(cfg), ready, final, distributor="sequential", desc="filter",
                        item_key="cf_kept")
    x = summary["extra"]
    secs = x.get("edit_seconds", 0.0)
    x["images_per_s"] = round(x.get("cf_generated", 0) / max(secs, 1e-9), 2)
    x["kept_cf_per_device_hour"] = round(x.get("cf_kept", 0) / max(secs, 1e-9) * 3600)
    return summary
