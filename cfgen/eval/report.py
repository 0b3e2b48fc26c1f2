"""Reports of `cfgen eval`: results.{json,csv,md}, the long table (one row per model, benchmark
and metric, with n and what n counts), per-item results, and the comparison of models (paired
bootstrap intervals from `stats.py`); reading earlier results back for `--compare`."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from ..io.reader import read_regular
from ..io.writer import atomic_write_bytes, refuse_symlink
from . import benchmarks as B
from .stats import compare_items


# Keys of a results table that are not metrics: n_<unit>: (and n: of older results), skipped:, undefined:
COUNT_KEY = re.compile(r"^(?:n(?:_(\w+))?|skipped|undefined):")


def count_of(mets: dict[str, Any], metric: str) -> tuple[Any, str | None]:
    """(n, what it counts) of `metric` in a results.json table, or (None, None)."""
    for k, v in mets.items():
        m = COUNT_KEY.match(k)
        if m and not k.startswith(("skipped:", "undefined:")) and k[m.end():] == metric:
            return v, m.group(1) or "items"
    return None, None


def config_hash(model: str) -> str:
    """sha256 (12 hex) of the model directory's train_config.json, else config.json, else the name."""
    for f in ("train_config.json", "config.json"):
        p = Path(model) / f
        if p.is_file():
            return hashlib.sha256(p.read_bytes()).hexdigest()[:12]
    return hashlib.sha256(model.encode()).hexdigest()[:12]


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
            if m != models[0] and v is not None and base is not None and not COUNT_KEY.match(k):
                r[f"delta {m}"] = v - base
        out.append(r)
    return out


def _fmt(v: Any) -> str:
    """Accuracies (fractions) as percentages; other values in full (MME's 1234.5, not 1.23e+03)."""
    if isinstance(v, float):
        return "nan" if v != v else (f"{100 * v:.1f}" if abs(v) <= 1.0 else f"{v:.1f}")
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


def write_reports(results: dict[str, dict[str, dict[str, Any]]], out: str | Path,
                  items: dict[str, dict[str, list[tuple[str, str, bool]]]] | None = None,
                  model_paths: dict[str, str] | None = None) -> dict[str, Path]:
    """results.{json,csv,md}; results_long.{csv,parquet} (model, model path, config hash,
    benchmark, metric, value, n, n_of: what n counts); with `items`: items.parquet and, for two or more models,
    compare.{json,md} (paired bootstrap 95% intervals per category). `model_paths`: the model
    behind a name where they differ (`merge_results`). Every file is written atomically, and
    none is written when any of them is a symlink (it could point anywhere)."""
    import pandas as pd
    out = Path(out)
    paths = model_paths or {}
    rs = rows(results)
    files: dict[str, bytes] = {"results.json": json.dumps(results, indent=1, sort_keys=True, allow_nan=False).encode()}
    long = pd.DataFrame([{"model": Path(paths.get(m, m)).name or m, "model_path": paths.get(m, m),
                          "config_hash": config_hash(paths.get(m, m)), "benchmark": b, "metric": k, "value": v,
                          **dict(zip(("n", "n_of"), count_of(mets, k)))}
                         for m, benches in results.items() for b, mets in benches.items() for k, v in mets.items()
                         if not COUNT_KEY.match(k)])
    files["results_long.csv"] = long.to_csv(index=False).encode()
    files["results_long.parquet"] = _parquet(long)
    if items:
        files["items.parquet"] = _parquet(pd.DataFrame(
            [{"model": m, "benchmark": b, "item": i, "category": c, "correct": x}
             for m, bs in items.items() for b, rows_ in bs.items() for i, c, x in rows_]))
        if len(items) > 1:
            cmp_rows = compare_items(items)
            files["compare.json"] = json.dumps(cmp_rows, indent=1).encode()
            files["compare.md"] = (markdown([{**r, "diff": f"{100 * r['diff']:+.1f}",
                                             "95% CI": f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}]"}
                                            for r in cmp_rows]) + "\n").encode()
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(c for r in rs for c in r)))
    w.writeheader()
    w.writerows(rs)
    files["results.csv"] = buf.getvalue().encode()
    files["results.md"] = (markdown(rs) + "\n").encode()
    for name in files:
        refuse_symlink(out / name)
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
    keys = {"results.json": "json", "results.csv": "csv", "results.md": "md", "results_long.csv": "long_csv",
            "results_long.parquet": "long_parquet", "items.parquet": "items", "compare.md": "compare"}
    return {keys[n]: out / n for n in files if n in keys}


def _parquet(df: Any) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def read_items(results_json: str | Path) -> dict[str, dict[str, list[tuple[str, str, bool]]]]:
    """The per-item results saved beside a results.json (for `--compare`), or {}."""
    import pandas as pd
    p = Path(results_json).with_name("items.parquet")
    if not p.is_file():
        return {}
    out: dict[str, dict[str, list[tuple[str, str, bool]]]] = {}
    try:
        for r in pd.read_parquet(io.BytesIO(read_regular(p, B.MAX_BENCH_FILE_BYTES))).itertuples():
            out.setdefault(str(r.model), {}).setdefault(str(r.benchmark), []).append(
                (str(r.item), str(r.category), bool(r.correct)))
    except (ValueError, AttributeError, OSError) as e:
        raise B.BenchFileError(f"{p}: not the items.parquet of a cfgen eval ({type(e).__name__})") from None
    return out


def read_results(path: str | Path) -> tuple[dict[str, dict[str, dict[str, Any]]], dict]:
    """An earlier results.json ({model: {benchmark: {metric: value}}}) and the per-item results
    beside it, for `--compare`; a value that is not a finite number (Python's JSON reads NaN) is null."""
    data = B.read_json(Path(path))
    ok = isinstance(data, dict) and all(isinstance(bs, dict) and all(isinstance(m, dict) for m in bs.values())
                                        for bs in data.values())
    bad = "" if ok else "not {model: {benchmark: {metric: value}}}"
    for bs in data.values() if ok else ():
        for b, mets in bs.items():
            for k, v in mets.items():
                if isinstance(v, float) and not math.isfinite(v):
                    mets[k] = None
                elif not COUNT_KEY.match(k) and not (v is None or isinstance(v, (int, float))):
                    bad = bad or f"{b}: {k} is not a number"
    if bad:
        raise B.BenchFileError(f"{path}: not a results.json of cfgen eval ({bad})")
    return data, read_items(path)


def merge_results(runs: list[tuple[str, dict, dict]]) -> tuple[dict, dict, dict[str, str]]:
    """[(source, results, items)] -> (results, items, model path of each renamed model). A model
    name found in more than one source (two results files of the same model, or a file and this
    run) is named `<model> (<source>)` in each, so none replaces another."""
    seen = Counter(m for _, res, _ in runs for m in res)
    results: dict = {}
    items: dict = {}
    paths: dict[str, str] = {}
    for src, res, its in runs:
        for m, r in res.items():
            name = m if seen[m] == 1 else f"{m} ({src})"
            results[name] = r
            if m in its:
                items[name] = its[m]
            if name != m:
                paths[name] = m
    return results, items, paths
