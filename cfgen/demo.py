"""`cfgen demo`: the whole method on the embedded scene world, on a CPU, with no download.

world -> captions (rules backend) -> pretrain a small CLIP on factual pairs only (the stand-in
for a pretrained model) -> images (scene editor, CLIP filter with that model) -> final shards
-> fine-tune it with each recipe for the same number of steps from the same start -> evaluate
all on the world's held-out compositional test -> table (mean and 95% CI over seeds) + plot.
Every step is skipped when its output already exists, so a rerun continues where it stopped.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RECIPES = ["std-ft", "textneg-ft", "cf-vlm", "cf-vlm-no-align", "cf-vlm-no-csd", "cf-vlm-no-fcd"]
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
COLUMNS = [("unseen:binding_swap", "binding (unseen)"), ("unseen:relation_swap", "relation (unseen)"),
           ("unseen:replace_color", "repl. color (unseen)"), ("unseen:replace_shape", "repl. shape (unseen)"),
           ("seen:binding_swap", "binding (seen)"), ("seen:relation_swap", "relation (seen)")]


@dataclass
class DemoConfig:
    out: str = "shards/demo"
    n: int = 5000
    n_test: int = 1000
    world_seed: int = 0
    world: dict[str, Any] = field(default_factory=lambda: {
        "relations": ["to the left of", "to the right of"], "distractor_prob": 0.25, "size_mention_prob": 0.3,
        "form_probs": [0.1, 0.8, 0.1]})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    recipes: list[str] = field(default_factory=lambda: list(RECIPES))
    pretrain_steps: int = 800
    pretrain_batch: int = 64
    pretrain_lr: float = 1e-3
    finetune_steps: int = 150
    finetune_batch: int = 32
    finetune_lr: float = 5e-4
    k: int = 4
    clip_image_size: int = 64
    clip_patch_size: int = 8
    num_workers: int = 0

    @classmethod
    def quick(cls, out: str) -> "DemoConfig":
        return cls(out=out, n=400, n_test=200, seeds=[0], pretrain_steps=40, finetune_steps=10,
                   pretrain_batch=32, finetune_batch=16)


def _done(model_dir: Path) -> bool:
    return (model_dir / "train_config.json").exists()


def _train(shards: list[str], model: str, out: Path, recipe: str, steps: int, batch: int, lr: float,
           warmup: int, seed: int, cfg: DemoConfig) -> None:
    from .train.trainer import recipe_config, train
    if _done(out):
        return
    tc = recipe_config(recipe, {"shards": shards, "model": model, "out": str(out), "max_steps": steps,
                                "batch_size": batch, "micro_batch": batch, "lr": lr, "warmup_steps": warmup,
                                "seed": seed, "num_workers": cfg.num_workers, "save_every": 0,
                                "log_every": max(1, steps // 20), "shuffle_buffer": 500, "k": cfg.k})
    train(tc)


def _world_eval(model_dir: Path, world: Path) -> dict[str, float]:
    from .eval.run import evaluate
    res_file = model_dir / "world_eval.json"
    if res_file.exists():
        return json.loads(res_file.read_text())
    r = evaluate(str(model_dir), {"world": str(world)})["world"]
    res_file.write_text(json.dumps(r))
    return r


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of a 95% t-interval (0 half-width for one seed)."""
    m = float(np.mean(values))
    if len(values) < 2:
        return m, float("nan")
    half = T95.get(len(values) - 1, 1.96) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return m, half


def run_demo(cfg: DemoConfig, log: Any = print) -> dict[str, Any]:
    from .captions.stage import CaptionsConfig, run_captions
    from .images.stage import ImagesConfig, run_images
    from .models import build_clip
    from .world import world_vocab, world_words
    from .world.generate import WorldConfig, generate_world

    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def tick(name: str, t: float) -> None:
        timings[name] = round(timings.get(name, 0.0) + time.time() - t, 1)

    t = time.time()
    world = out / "world"
    info = generate_world(world, WorldConfig(n=cfg.n, n_test=cfg.n_test, seed=cfg.world_seed, **cfg.world))
    tick("world", t)
    log(f"[demo] world: {cfg.n} anchors, {cfg.n_test} test items, held-out pairs {info['config']['heldout']}")

    t = time.time()
    run = out / "run"
    cap = run_captions(CaptionsConfig(input=[str(world / "train")], out=str(run), k=cfg.k, rules_vocab=world_vocab()))
    tick("captions", t)
    log(f"[demo] captions: {cap['extra'].get('rewrites_kept', 0)} rewrites kept for {cap['kept']} of {cap['in']} anchors")

    # One pretrained model (the stand-in for a released checkpoint); seeds vary the fine-tuning.
    t = time.time()
    models = out / "models"
    pretrained = models / "pretrained"
    if not (models / "init" / "config.json").exists():
        build_clip(models / "init", words=world_words(), image_size=cfg.clip_image_size,
                   patch_size=cfg.clip_patch_size, seed=cfg.world_seed)
    _train([str(world / "train")], str(models / "init"), pretrained, "std-ft", cfg.pretrain_steps,
           cfg.pretrain_batch, cfg.pretrain_lr, max(1, cfg.pretrain_steps // 10), cfg.world_seed, cfg)
    tick("pretrain", t)
    log(f"[demo] pretrained a small CLIP on factual pairs ({cfg.pretrain_steps} steps x {cfg.pretrain_batch})")

    t = time.time()
    # Scene edits are exact renders: the filter runs and stores its scores, with permissive thresholds
    # (a weak pretrained CLIP cannot yet tell binding edits apart and would drop exactly those).
    img = run_images(ImagesConfig(run=str(run), filter=True, filter_model=str(pretrained),
                                  min_cf_score=-1.0, min_margin=-1.0, min_img_sim=-1.0, max_img_sim=1.01))
    tick("images+filter", t)
    log(f"[demo] images: {img['extra'].get('cf_kept', 0)} counterfactuals for {img['kept']} anchors "
        f"({img['extra'].get('images_per_s', 0)} images/s); rejected: "
        + ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in img["extra"].items() if k.startswith("cf_rejected.")))

    results: dict[str, dict[int, dict[str, float]]] = {"pretrained": {}}
    base = _world_eval(pretrained, world)
    final = [str(run / "final")]
    for seed in cfg.seeds:
        results["pretrained"][seed] = base
        for recipe in cfg.recipes:
            t = time.time()
            mdir = models / f"seed{seed}" / recipe
            _train(final, str(pretrained), mdir, recipe, cfg.finetune_steps, cfg.finetune_batch,
                   cfg.finetune_lr, max(1, cfg.finetune_steps // 10), seed, cfg)
            tick("finetune", t)
            t = time.time()
            results.setdefault(recipe, {})[seed] = _world_eval(mdir, world)
            tick("eval", t)
        log(f"[demo] seed {seed} done ({time.time() - t0:.0f}s)")

    table = summarize(results)
    md = table_markdown(table, cfg)
    (out / "results.md").write_text(md + "\n")
    (out / "results.json").write_text(json.dumps({"per_seed": results, "table": table, "config": asdict(cfg),
                                                  "timings_s": timings, "wall_s": round(time.time() - t0, 1)},
                                                 indent=1))
    plot_table(table, out / "results.png")
    return {"table": table, "markdown": md, "wall_s": round(time.time() - t0, 1), "timings_s": timings,
            "out": str(out)}


def summarize(results: dict[str, dict[int, dict[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    return {name: {col: ci95([100 * per_seed[s][col] for s in per_seed]) for col, _ in COLUMNS}
            for name, per_seed in results.items()}


def table_markdown(table: dict[str, dict[str, tuple[float, float]]], cfg: DemoConfig) -> str:
    head = "| recipe | " + " | ".join(lbl for _, lbl in COLUMNS) + " |"
    lines = [f"Held-out compositional test of the scene world: accuracy % (mean ± 95% CI over seeds {cfg.seeds}; "
             f"pretrain {cfg.pretrain_steps} steps, fine-tune {cfg.finetune_steps} steps x {cfg.finetune_batch}).",
             "", head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, cols in table.items():
        cells = [f"{m:.1f}" + ("" if h != h else f" ± {h:.1f}") for m, h in (cols[c] for c, _ in COLUMNS)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_table(table: dict[str, dict[str, tuple[float, float]]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(table)
    cols = COLUMNS[:2]
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 3.6))
    w = 0.8 / len(cols)
    for j, (c, lbl) in enumerate(cols):
        means = [table[n][c][0] for n in names]
        errs = [0 if table[n][c][1] != table[n][c][1] else table[n][c][1] for n in names]
        ax.bar(np.arange(len(names)) + j * w, means, w, yerr=errs, capsize=3, label=lbl)
    ax.set_xticks(np.arange(len(names)) + w * (len(cols) - 1) / 2)
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set_ylabel("accuracy %")
    ax.set_ylim(40, 100)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
