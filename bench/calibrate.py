"""Calibrate the demo's stand-in CLIP: pretrain with given settings on one or more world seeds
and print the held-out profile (replace colour/shape, binding and relation swaps).

    python bench/calibrate.py OUT --world-seeds 0,1 --set twin_prob=0.5 --set steps=1200

Decided from the pretrained model alone, before any fine-tuning result is looked at.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from cfgen.demo import DemoConfig
from cfgen.world.generate import WorldConfig, generate_world
from cfgen.world.pretrain import PretrainConfig, pretrain_stand_in


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--world-seeds", default="0")
    ap.add_argument("--set", action="append", default=[], help="PretrainConfig field=value")
    a = ap.parse_args()
    over = {}
    for kv in a.set:
        k, v = kv.split("=", 1)
        typ = type(getattr(PretrainConfig(), k))
        over[k] = typ(v)
    pcfg = dataclasses.replace(PretrainConfig(), **over)
    demo = DemoConfig()
    tag = "_".join(f"{k}{v}" for k, v in sorted(over.items())) or "default"
    rows = []
    for ws in [int(x) for x in a.world_seeds.split(",")]:
        wdir = Path(a.out) / f"world{ws}"
        wcfg = WorldConfig(n=demo.n, n_test=demo.n_test, seed=ws, **demo.world)
        generate_world(wdir, wcfg)
        info = pretrain_stand_in(Path(a.out) / f"pre-{tag}-w{ws}", wdir, wcfg, pcfg, seed=ws, log=print)
        rows.append({"world_seed": ws, "settings": over, "seconds": info["seconds"], **info["profile"]})
        print(json.dumps(rows[-1]))
    with open(Path(a.out) / "calibration.jsonl", "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
