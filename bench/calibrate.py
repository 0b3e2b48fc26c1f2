"""Calibrate the demo's stand-in CLIP: pretrain once with the given settings (the web split does
not depend on the world seed), then print its held-out profile (replace colour/shape, binding and
relation swaps) on the test split of each world seed.

    python bench/calibrate.py OUT --world-seeds 0,1,2 --set steps=4000 --set eval_every=500
    python bench/calibrate.py OUT --world-seeds 0,1,2 --release   # rebuild cfgen/demo/standin
    python bench/calibrate.py OUT --backbone vlm --release        # rebuild cfgen/demo/standin-vlm

Decided from the pretrained model alone, before any fine-tuning result is looked at. `--release`
pretrains with the default PretrainConfig and copies the result, with its profiles on every
world seed given, into the package as the released stand-in the demo fine-tunes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

from cfgen.demo import DemoConfig
from cfgen.train.model import DualEncoder
from cfgen.world.generate import WorldConfig, generate_world
from cfgen.demo.pretrain import BACKBONES, PretrainConfig, held_out_test, pretrain_stand_in, profile


def world_profile(model_dir: Path, world_dir: Path) -> dict[str, float]:
    enc = DualEncoder.load(model_dir)
    return profile(enc.model, enc.pre, *held_out_test(enc.pre, world_dir))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--world-seeds", default="0")
    ap.add_argument("--set", action="append", default=[], help="PretrainConfig field=value")
    ap.add_argument("--backbone", default="clip", choices=sorted(BACKBONES))
    ap.add_argument("--release", action="store_true", help="copy the result into cfgen/demo/standin[-vlm]")
    a = ap.parse_args()
    over = {}
    for kv in a.set:
        k, v = kv.split("=", 1)
        over[k] = type(getattr(PretrainConfig(), k))(v)
    default = PretrainConfig.released(a.backbone)
    pcfg = dataclasses.replace(default, **over)
    if a.release and pcfg.recipe() != default.recipe():
        ap.error("--release takes the default PretrainConfig (change the defaults, not --set)")
    demo = DemoConfig()
    seeds = [int(x) for x in a.world_seeds.split(",")]
    worlds = {}
    for ws in seeds:
        worlds[ws] = (Path(a.out) / f"world{ws}", WorldConfig(n=demo.n, n_test=demo.n_test, seed=ws, **demo.world))
        generate_world(*worlds[ws])
    tag = a.backbone + "".join(f"_{k}{v}" for k, v in sorted(over.items()))
    model = Path(a.out) / f"pre-{tag}"
    info = pretrain_stand_in(model, *worlds[seeds[0]], pcfg, log=print)
    profiles = {str(ws): world_profile(model, wdir) for ws, (wdir, _) in worlds.items()}
    for ws, prof in profiles.items():
        print(json.dumps({"world_seed": int(ws), "backbone": a.backbone, "settings": over, "seconds": info["seconds"], **prof}))
    with open(Path(a.out) / "calibration.jsonl", "a") as f:
        f.write(json.dumps({"backbone": a.backbone, "settings": over, "seconds": info["seconds"], "profiles": profiles}) + "\n")
    if a.release:
        info["profiles"] = profiles
        (model / "pretrain.json").write_text(json.dumps(info, indent=1))
        release = BACKBONES[a.backbone]
        shutil.rmtree(release, ignore_errors=True)
        shutil.copytree(model, release, ignore=shutil.ignore_patterns("world_eval.json"))
        print(f"released stand-in written to {release}")


if __name__ == "__main__":
    main()
