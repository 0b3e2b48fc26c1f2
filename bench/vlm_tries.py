"""Issue #29 item 3: the four untried settings for the demo's generative-VLM backbone, each with
the demo's paired test (world seed 0, training seeds 0-4, paired to std-ft on the same start,
seeds and data order; the test fixed before the runs: a setting works if cf-vlm-plus or cf-vlm
beats std-ft on unseen binding with a 95% interval above 0).

Usage: python bench/vlm_tries.py OUT [--tries lora,anchors,layer2,late] [--json FILE]

- lora: the released VLM stand-in fine-tuned with LoRA (rank 8, alpha 16, language model's
  attention projections; every recipe, std-ft too, so the pairs stay paired), lr 1e-3.
- anchors: twice the anchors (6,000 world anchors) and twice the steps (200), so each anchor is
  still seen about once.
- layer2: LLaVA-1.5's own choice, vision_feature_layer -2 (the penultimate vision layer): the
  released VLM switched to it and pretrained 500 more steps on the web split (its settings), so
  the projector learns the new features; compared with `cont`, the same 500 steps at layer -1.
- late: binding-bearing web captions late in pretraining: the released VLM pretrained 500 more
  steps on web captions that always name colours (object_only_prob 0); also compared with `cont`.

Each pretrained variant's held-out profile is recorded beside its fine-tuning table. Nothing
here is shipped; everything is deterministic.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cfgen.demo import COLUMNS, DemoConfig, ci95, run_demo  # noqa: E402
from cfgen.demo.pretrain import (RELEASED_VLM, PretrainConfig, align_steps, held_out_test, profile,  # noqa: E402
                                 web_corpus, web_inputs)
from cfgen.train.model import DualEncoder  # noqa: E402
from cfgen.world.generate import WorldConfig, generate_world  # noqa: E402

RECIPES = ["std-ft", "cf-vlm", "cf-vlm-plus"]


def lora_recipes(out: Path) -> list[str]:
    """The three recipes with LoRA adapters, as YAML files the demo takes by path."""
    import yaml
    root = Path(__file__).resolve().parents[1] / "pipelines" / "train"
    paths = []
    for r in RECIPES:
        doc = yaml.safe_load((root / f"{r}.yaml").read_text())
        doc["train"].update({"lora_rank": 8, "lora_alpha": 16, "recipe": f"{r}-lora"})
        p = out / f"{r}-lora.yaml"
        p.write_text(yaml.safe_dump(doc))
        paths.append(str(p))
    return paths


def continue_pretraining(out: Path, world_dir: Path, wcfg: WorldConfig, steps: int, layer: int,
                         object_only_prob: float) -> dict:
    """The released VLM stand-in, `steps` more pretraining steps (its own loop and schedule shape,
    lr 3e-4) at vision_feature_layer `layer` on web captions with `object_only_prob`; saved in
    `out` with a pretrain.json so the demo fine-tunes it as its stand-in."""
    if (out / "pretrain.json").is_file():
        return json.loads((out / "pretrain.json").read_text())
    t0 = time.time()
    enc = DualEncoder.load(RELEASED_VLM)
    model, pre = enc.model, enc.pre
    model.vlm.config.vision_feature_layer = layer
    cfg = replace(PretrainConfig.released("vlm"), steps=steps, warmup=20, lr=3e-4, object_only_prob=object_only_prob,
                  web_seed=1)     # fresh web scenes, not the ones the release was pretrained on
    pixels, tok = web_inputs(pre, *web_corpus(wcfg, cfg)[:2])
    tests, test_px = held_out_test(pre, world_dir)
    curve = []
    align_steps(model, pixels, tok, cfg, steps, max(1, steps // 2),
                lambda step, loss: curve.append({"step": step, "loss": round(loss, 4),
                                                 **profile(model, pre, tests, test_px)}))
    enc.save(out)
    released = json.loads((RELEASED_VLM / "pretrain.json").read_text())
    info = {**released, "continued": {"steps": steps, "vision_feature_layer": layer, "config": asdict(cfg)},
            "seconds": round(time.time() - t0, 1), "curve": released["curve"] + curve, "profile": curve[-1]}
    (out / "pretrain.json").write_text(json.dumps(info, indent=1))
    return info


def demo(out: Path, **kw) -> dict:
    """The demo's fine-tunes of the stand-in in `out`, and each recipe paired to the first (std-ft
    or its LoRA twin): mean and 95% CI of the per-seed differences, in points."""
    recipes = kw.pop("recipes", RECIPES)
    cfg = DemoConfig(out=str(out), recipes=recipes, pretrain=PretrainConfig.released("vlm"), **kw)
    r = run_demo(cfg, log=lambda m: print(m, flush=True))
    per_seed = json.loads((out / "results.json").read_text())["per_seed"]
    base = per_seed[recipes[0]]
    paired = {f"{Path(name).stem} - {Path(recipes[0]).stem}": {
        col: ci95([100 * (per_seed[name][s][col] - base[s][col]) for s in base]) for col, _ in COLUMNS}
        for name in recipes[1:]}
    return {"paired": paired, "table": r["table"], "wall_s": r["wall_s"], "markdown": r["markdown"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tries", default="lora,anchors,cont,layer2,late")
    ap.add_argument("--json")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {}
    for t in a.tries.split(","):
        t0 = time.time()
        d = out / t
        if t == "lora":
            d.mkdir(parents=True, exist_ok=True)
            res[t] = demo(d, recipes=lora_recipes(d))
        elif t == "anchors":
            res[t] = demo(d, n=6000, finetune_steps=200)
        elif t in ("cont", "layer2", "late"):
            wcfg = WorldConfig(n=3000, n_test=1000, seed=0, **DemoConfig().world)
            world = d / "world"
            if not (world / "world.json").is_file():
                shutil.rmtree(world, ignore_errors=True)
                generate_world(world, wcfg)
            pre = continue_pretraining(d / "models" / "pretrained", world, wcfg, 500,
                                       -2 if t == "layer2" else -1, 0.0 if t == "late" else 0.5)
            res[t] = {"pretrained_profile": pre["profile"], **demo(d)}
        else:
            raise SystemExit(f"unknown try {t!r}")
        res[t]["seconds"] = round(time.time() - t0, 1)
        print(f"[{t}] {res[t]['seconds']} s\n{res[t]['markdown']}\n" + "\n".join(
            f"{k}: " + ", ".join(f"{c} {m:+.1f} ± {h:.1f}" for c, (m, h) in v.items())
            for k, v in res[t]["paired"].items()), flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
