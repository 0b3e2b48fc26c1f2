"""Captions stage throughput: `rules` backend anchors/s (K = 4, validation included) on N
photo-style captions, the validator's own rate, and the `transformers` backend with a tiny model."""
import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=4)
    a = ap.parse_args()
    from cfgen.captions.rules import RulesBackend
    from cfgen.captions.stage import judge
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
            kept += sum(r.status == "kept" for r in judge(Anchor(str(i), c), g, a.k, v))
    pairs = [(c, g.candidates[0]["text"]) for c, g in zip(caps, gens) if g.candidates]
    with timer(fig, "validator_s"):
        for c, r in pairs:
            v(c, r)
    fig.update(anchors_per_s=round(a.n / fig["rules_total_s"], 1), rewrites_kept=kept,
               validator_per_s=round(len(pairs) / fig["validator_s"], 1))
    from cfgen.captions.backends import TransformersBackend, default_prompt
    from tests.fixtures import build_causal_lm
    with tempfile.TemporaryDirectory() as d:
        build_causal_lm(d, corpus=caps[:200])
        tb = TransformersBackend(d, default_prompt().read_text(), k=a.k, max_new_tokens=64, batch_size=8)
        with timer(fig, "transformers_tiny_32_s"):
            tb.generate(caps[:32], [str(i) for i in range(32)])
        fig["transformers_tiny_captions_per_s"] = round(32 / fig["transformers_tiny_32_s"], 2)
    report("captions", vars(a), fig)


if __name__ == "__main__":
    main()
