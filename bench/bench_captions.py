"""Captions stage throughput: `rules` backend anchors/s (K = 4, validation included) on N
photo-style captions, the validator's own rate, and the `transformers` backend with a tiny model.
`--sugarcrepe DIR` (the official release's data/*.json, github RAIVNLab/sugar-crepe) adds the
validator's acceptance of SugarCrepe's human-validated negatives and how it types them."""
import argparse
import importlib
import random
import tempfile

from common import report, timer

SUBJ = ["a man", "a woman", "two dogs", "a small cat", "three people", "a young boy", "an old lady", "a red bus",
        "a brown horse", "a little girl"]
VERB = ["riding", "holding", "sitting on", "standing next to", "walking behind", "kicking", "eating", "looking at"]
OBJ = ["a wooden table", "a red frisbee", "a large tree", "a white couch", "the ball", "a blue car", "a pizza",
       "two bicycles", "a black umbrella", "a green field"]
TAIL = ["", " in the park", " on the beach", " near the water", " on a city street", " in a kitchen"]


def captions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJ)} {rng.choice(VERB)} {rng.choice(OBJ)}{rng.choice(TAIL)}".capitalize() + "."
            for _ in range(n)]


def sugarcrepe(folder: str, validator) -> dict:
    """Per SugarCrepe category: the share of its negatives accepted as one edit, typed `swap`, and
    read as one `swap` (accepted, or refused as implausible: "a green horse in a brown field")."""
    import json
    from collections import Counter
    from pathlib import Path
    out = {}
    for f in sorted(Path(folder).glob("*.json")):
        items = list(json.loads(f.read_text()).values())
        verdicts = [validator(x["caption"], x["negative_caption"]) for x in items]
        types = Counter(v.edit.type for v in verdicts if v.ok)
        read = sum(v.edit is not None and v.edit.type == "swap" for v in verdicts)    # refused as implausible too
        out[f.stem] = {"n": len(items), "accepted": round(sum(v.ok for v in verdicts) / len(items), 3),
                       "swap": round(types["swap"] / len(items), 3), "read_swap": round(read / len(items), 3),
                       "rejected": dict(Counter(v.reason for v in verdicts if not v.ok).most_common(4))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--no-transformers", action="store_true", help="rules and validator only")
    ap.add_argument("--sugarcrepe", help="folder with SugarCrepe's swap_att.json, replace_obj.json, ...")
    a = ap.parse_args()
    from cfgen.captions.rules import RulesBackend
    from cfgen.captions.stage import validate_candidates
    from cfgen.captions.validate import Validator
    from cfgen.datamodel import Anchor
    caps = captions(a.n)
    fig: dict = {}
    b = RulesBackend(k=a.k)
    b.generate(caps[:50], [str(i) for i in range(50)])          # warm-up (model load)
    v = Validator()
    with timer(fig, "rules_total_s"):
        gens = b.generate(caps, [str(i) for i in range(len(caps))])
        kept = 0
        for i, (c, g) in enumerate(zip(caps, gens)):
            kept += sum(r.status == "kept" for r in validate_candidates(Anchor(str(i), c), g, a.k, v))
    pairs = [(c, g.candidates[0]["text"]) for c, g in zip(caps, gens) if g.candidates]
    vmod = importlib.import_module("cfgen.captions.validate")     # the package exports a function of that name
    for cached in (vmod._read_cached, vmod.canonical, vmod.normalize, vmod._mixed_script):
        cached.cache_clear()                 # the validator alone, on candidates it has not seen
    with timer(fig, "validator_s"):
        for c, r in pairs:
            v(c, r)
    fig.update(anchors_per_s=round(a.n / fig["rules_total_s"], 1), rewrites_kept=kept,
               validator_per_s=round(len(pairs) / fig["validator_s"], 1))
    if a.sugarcrepe:
        fig["sugarcrepe"] = sugarcrepe(a.sugarcrepe, v)
    if a.no_transformers:
        report("captions", vars(a), fig)
        return
    from cfgen.captions.backends import TransformersBackend, default_prompt
    from cfgen.testing import build_causal_lm
    with tempfile.TemporaryDirectory() as d:
        build_causal_lm(d, corpus=caps[:200])
        tb = TransformersBackend(d, default_prompt().read_text(), k=a.k, max_new_tokens=64, batch_size=8)
        with timer(fig, "transformers_tiny_32_s"):
            tb.generate(caps[:32], [str(i) for i in range(32)])
        fig["transformers_tiny_captions_per_s"] = round(32 / fig["transformers_tiny_32_s"], 2)
    report("captions", vars(a), fig)


if __name__ == "__main__":
    main()
