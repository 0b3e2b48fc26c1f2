"""The rules backend's rewrites of captions nobody tuned on, laid out for a blind judge.

    python bench/blind_captions.py --captions tests/data/blind/coco_val2017_180.txt --out blind/

Writes `items.tsv` (id, original, rewrite, type, from, to: every kept rewrite, in a shuffled
order with the anchor's other rewrites not side by side) for the judge, and `coverage.json`
(anchors with a kept rewrite, kept per anchor, anchors at K, edit types). The judge gets only
items.tsv and the judging rules (tests/data/blind/JUDGING.md), never the code.
"""
from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--captions", required=True, help="one caption per line")
    ap.add_argument("--out", required=True)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0, help="shuffles the judging order only")
    a = ap.parse_args()
    from cfgen.captions.rules import RulesBackend
    from cfgen.captions.stage import validate_candidates
    from cfgen.captions.validate import Validator
    from cfgen.datamodel import Anchor
    caps = [ln.strip() for ln in Path(a.captions).read_text().splitlines() if ln.strip()]
    gens = RulesBackend(k=a.k).generate(caps, [str(i) for i in range(len(caps))])
    v = Validator()
    rows, per_anchor, types = [], [], Counter()
    for i, (c, g) in enumerate(zip(caps, gens)):
        kept = [r for r in validate_candidates(Anchor(str(i), c), g, a.k, v) if r.status == "kept"]
        per_anchor.append(len(kept))
        for r in kept:
            types[r.edit.type] += 1
            rows.append((f"{i}.{r.i}", c, r.text, r.edit.type, r.edit.from_, r.edit.to))
    random.Random(a.seed).shuffle(rows)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "items.tsv", "w") as f:
        f.write("id\toriginal\trewrite\ttype\tfrom\tto\n")
        for row in rows:
            f.write("\t".join(str(x).replace("\t", " ") for x in row) + "\n")
    cov = {"anchors": len(caps), "k": a.k, "kept": len(rows),
           "anchors_with_a_kept_rewrite": sum(n > 0 for n in per_anchor),
           "kept_per_anchor": round(len(rows) / max(len(caps), 1), 2),
           "anchors_at_k": sum(n >= a.k for n in per_anchor), "types": dict(types.most_common())}
    (out / "coverage.json").write_text(json.dumps(cov, indent=1))
    print(json.dumps(cov, indent=1))


if __name__ == "__main__":
    main()
