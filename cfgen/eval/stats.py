"""Statistics of `cfgen eval`: paired differences between models on the same items, with
percentile bootstrap intervals."""
from __future__ import annotations

from typing import Any

import numpy as np


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Difference of accuracies b - a on the same items, with a 95% percentile bootstrap interval
    (items resampled jointly for both models)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    boots = d[idx].mean(1)
    return float(d.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def compare_items(items: dict[str, dict[str, list[tuple[str, str, bool]]]]) -> list[dict[str, Any]]:
    """{model: {bench: [(id, category, correct)]}} -> per (bench, category) the difference of every
    other model to the first, on the items both scored, with its paired bootstrap interval."""
    models = list(items)
    out = []
    for m in models[1:]:
        for bench, rows_a in items[models[0]].items():
            b = {(i, c): x for i, c, x in items[m].get(bench, [])}
            cats: dict[str, tuple[list[bool], list[bool]]] = {}
            for i, c, x in rows_a:
                if (i, c) in b:
                    for key in (c, "all"):
                        cats.setdefault(key, ([], []))
                        cats[key][0].append(x)
                        cats[key][1].append(b[(i, c)])
            for cat, (xa, xb) in sorted(cats.items()):
                if cat == "all" and len(cats) == 2:
                    continue                       # one category: "all" repeats it
                diff, lo, hi = paired_bootstrap(np.array(xa), np.array(xb))
                out.append({"benchmark": bench, "category": cat, "base": models[0], "model": m, "n": len(xa),
                            "diff": diff, "ci_low": lo, "ci_high": hi, "significant": bool(lo > 0 or hi < 0)})
    return out


# ------------------------------------------------------------------------------- reports
