"""`cfgen demo`: the whole method on the embedded scene world, on a CPU, with no download.

world -> captions (rules backend) -> the stand-in "pretrained CLIP" (the released checkpoint shipped
in the wheel, or pretrained here on the world's web split with `pretrain_from_scratch`;
`demo/pretrain.py`) -> images (scene editor, CLIP filter with that model) -> final shards ->
fine-tune it with each recipe, for every seed, from the same start with the same data order ->
evaluate on the world's held-out compositional test -> per-recipe table and paired differences
against std-ft and textneg-ft (same seed), with 95% t-intervals over seeds.
Every step is skipped when its output already exists, so a rerun continues where it stopped.
The held-out split, its items and their scoring are fixed by the world config alone.
"""
from __future__ import annotations

import json
import math
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from .pretrain import PretrainConfig

RECIPES = ["std-ft", "textneg-ft", "cf-vlm", "cf-vlm-plus"]
ABLATIONS = ["text-only-cf", "image-only-cf", "cf-vlm-no-align", "cf-vlm-no-csd", "cf-vlm-no-fcd"]
BASELINES = ("std-ft", "textneg-ft")
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
COLUMNS = [("unseen:binding_swap", "binding (unseen)"), ("unseen:relation_swap", "relation (unseen)"),
           ("unseen:replace_color", "repl. color (unseen)"), ("unseen:replace_shape", "repl. shape (unseen)"),
           ("seen:binding_swap", "binding (seen)"), ("seen:relation_swap", "relation (seen)")]


@dataclass
class DemoConfig:
    out: str = "shards/demo"
    n: int = 3000
    n_test: int = 1000
    world_seed: int = 0
    world: dict[str, Any] = field(default_factory=lambda: {
        "relations": ["to the left of", "to the right of"], "distractor_prob": 0.25, "size_mention_prob": 0.3,
        "form_probs": [0.1, 0.8, 0.1]})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    recipes: list[str] = field(default_factory=lambda: list(RECIPES))
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    pretrain_from_scratch: bool = False   # pretrain the stand-in here even when the released one matches
    finetune_steps: int = 80           # bench/PREREGISTERED_finetune80.md: fits the 5-minute target
    finetune_batch: int = 32
    finetune_lr: float = 1e-3
    k: int = 4
    workers: int = 2                 # fine-tunes run in parallel processes, one thread each

    @classmethod
    def quick(cls, out: str, backbone: str = "clip") -> "DemoConfig":
        """A small run: the released settings of `backbone`'s stand-in, pretrained here for a few steps."""
        pretrain = replace(PretrainConfig.released(backbone), steps=30, web_n=512, batch=32, eval_every=15)
        return cls(out=out, n=300, n_test=200, seeds=[0, 1], finetune_steps=6, finetune_batch=16, pretrain=pretrain)


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of a 95% t-interval (NaN half-width for one value)."""
    m = float(np.mean(values))
    if len(values) < 2:
        return m, float("nan")
    half = T95.get(len(values) - 1, 1.96) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return m, half


def _warm_up() -> None:
    """A worker's first task: the imports every fine-tune needs, done while the parent still runs
    the single-threaded world and captions stages."""
    import importlib
    for module in ("cfgen.eval.run", "cfgen.train.trainer"):
        importlib.import_module(module)


def _world_eval(mdir: str, world: str, threads: int) -> dict[str, float]:
    """A model's held-out world accuracy, cached in its directory."""
    import torch
    from ..eval.run import evaluate
    if threads:
        torch.set_num_threads(threads)
    res_file = Path(mdir) / "world_eval.json"
    if not res_file.exists():
        res_file.write_text(json.dumps(evaluate(mdir, {"world": world})["world"].metrics))
    return json.loads(res_file.read_text())


def _finetune_job(args: tuple[list[str], str, str, str | None, int, dict[str, Any], str, int]) -> dict[str, float]:
    """One fine-tune + its evaluation (a process-pool task; results cached in the model directory).
    No recipe: the evaluation of the model already there (the pretrained start)."""
    shards, pretrained, mdir, recipe, seed, over, world, threads = args
    import torch
    from ..train.trainer import recipe_config, train
    if threads:
        torch.set_num_threads(threads)
    if recipe is not None and not (Path(mdir) / "train_config.json").exists():
        train(recipe_config(recipe, {"shards": shards, "model": pretrained, "out": mdir, "seed": seed, **over}))
    return _world_eval(mdir, world, threads)


def run_demo(cfg: DemoConfig, log: Any = print) -> dict[str, Any]:
    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        pool: Executor | None = None
        if cfg.workers > 1:            # started now: the workers import torch while world and captions run
            pool = stack.enter_context(ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn")))
            for _ in range(cfg.workers):
                pool.submit(_warm_up)
        return _run_demo(cfg, out, pool, t0, log)


def _run_demo(cfg: DemoConfig, out: Path, pool: Executor | None, t0: float, log: Any) -> dict[str, Any]:
    from ..captions.stage import CaptionsConfig, run_captions
    from ..images.stage import ImagesConfig, run_images
    from ..world import world_vocab
    from ..world.generate import WorldConfig, generate_world
    from .pretrain import RELEASED, copy_stand_in, pretrain_stand_in, released_stand_in

    timings: dict[str, float] = {}

    def tick(name: str, t: float) -> None:
        timings[name] = round(timings.get(name, 0.0) + time.time() - t, 1)

    t = time.time()
    world = out / "world"
    wcfg = WorldConfig(n=cfg.n, n_test=cfg.n_test, seed=cfg.world_seed, **cfg.world)
    info = generate_world(world, wcfg)
    tick("world", t)
    log(f"[demo] world seed {cfg.world_seed}: {cfg.n} anchors, {cfg.n_test} test items, "
        f"held-out pairs {info['config']['heldout']}")

    t = time.time()
    run = out / "run"
    cap = run_captions(CaptionsConfig(input=[str(world / "train")], out=str(run), k=cfg.k, rules_vocab=world_vocab()))
    tick("captions", t)
    log(f"[demo] captions: {cap['extra'].get('rewrites_kept', 0)} rewrites kept for {cap['kept']} of {cap['in']} anchors")

    t = time.time()
    pretrained = out / "models" / "pretrained"
    released, why = (None, "asked to pretrain") if cfg.pretrain_from_scratch else released_stand_in(wcfg, cfg.pretrain)
    name = "CLIP" if cfg.pretrain.backbone == "clip" else "VLM (LLaVA architecture, E5-V embeddings)"
    if released is not None:
        pre = copy_stand_in(released, pretrained)
        log(f"[demo] stand-in {name}: the released checkpoint ({cfg.pretrain.length()} x {cfg.pretrain.batch} on "
            f"the web split, {pre['seconds']:.0f} s to pretrain; --pretrain does it again here)")
    else:
        log(f"[demo] pretraining the stand-in {name} here ({why})")
        pre = pretrain_stand_in(pretrained, world, wcfg, cfg.pretrain, log=log)
        log(f"[demo] stand-in {name} pretrained on the web split ({cfg.pretrain.length()} x {cfg.pretrain.batch})")
    tick("pretrain", t)

    t = time.time()
    # Scene edits are exact renders: the filter runs and stores its scores, with permissive thresholds
    # (the stand-in cannot yet tell binding edits apart and would drop exactly those). As in the
    # paper, the filter is a CLIP whatever the backbone fine-tuned: the stand-in CLIP.
    scorer = pretrained if cfg.pretrain.backbone == "clip" else RELEASED
    img = run_images(ImagesConfig(run=str(run), filter=True, filter_model=str(scorer),
                                  min_cf_score=-1.0, min_margin=-1.0, min_img_sim=-1.0, max_img_sim=1.01))
    tick("images+filter", t)
    log(f"[demo] images: {img['extra'].get('cf_kept', 0)} counterfactuals for {img['kept']} anchors; rejected: "
        + ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in img["extra"].items() if k.startswith("cf_rejected.")))

    t = time.time()
    over = {"max_steps": cfg.finetune_steps, "batch_size": cfg.finetune_batch, "micro_batch": cfg.finetune_batch,
            "lr": cfg.finetune_lr, "warmup_steps": max(1, cfg.finetune_steps // 10), "num_workers": 0,
            "save_every": 0, "log_every": max(1, cfg.finetune_steps // 20), "shuffle_buffer": 500, "k": cfg.k}
    # the jobs that encode counterfactual images cost about 3x the others: longest first, so the
    # two workers finish together instead of one waiting on the last long job
    jobs = sorted(((seed, recipe) for seed in cfg.seeds for recipe in cfg.recipes),
                  key=lambda j: (j[1] in BASELINES, cfg.seeds.index(j[0])))
    threads = 1 if pool is not None else 0
    args = [([str(run / "final")], str(pretrained), str(out / "models" / f"seed{s}" / Path(r).stem), r, s, over, str(world),
             threads) for s, r in jobs]
    args.append(([], "", str(pretrained), None, 0, {}, str(world), threads))       # the pretrained start, last
    evals = list(pool.map(_finetune_job, args) if pool is not None else map(_finetune_job, args))
    tick("finetune+eval", t)
    base = evals.pop()
    done = dict(zip(jobs, evals))
    results: dict[str, dict[int, dict[str, float]]] = {"pretrained": {s: base for s in cfg.seeds}}
    for recipe in cfg.recipes:                   # rows and seeds in the order asked for
        results[recipe] = {seed: done[(seed, recipe)] for seed in cfg.seeds}

    table = summarize(results)
    paired = paired_differences(results)
    wall = round(time.time() - t0, 1)
    md = table_markdown(table, paired, cfg, wall)
    (out / "results.md").write_text(md + "\n")
    (out / "results.json").write_text(json.dumps({
        "per_seed": results, "table": table, "paired": paired, "config": asdict(cfg),
        "pretrain_profile": pre["profile"], "pretrain_curve": pre["curve"], "timings_s": timings,
        "wall_s": wall}, indent=1))
    plot_table(table, out / "results.png")
    return {"table": table, "paired": paired, "markdown": md, "wall_s": wall, "timings_s": timings, "out": str(out)}


def summarize(results: dict[str, dict[int, dict[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    return {name: {col: ci95([100 * per_seed[s][col] for s in per_seed]) for col, _ in COLUMNS}
            for name, per_seed in results.items()}


def paired_differences(results: dict[str, dict[int, dict[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """recipe - baseline on the same seed (same start, same data order), mean and 95% CI, in points."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for baseline in BASELINES:
        if baseline not in results:
            continue
        for name, per_seed in results.items():
            if name in ("pretrained", baseline) or (name in BASELINES and baseline == "textneg-ft"):
                continue
            seeds = sorted(set(per_seed) & set(results[baseline]))
            out[f"{name} - {baseline}"] = {
                col: ci95([100 * (per_seed[s][col] - results[baseline][s][col]) for s in seeds]) for col, _ in COLUMNS}
    return out


def _cell(m: float, h: float, sign: bool = False) -> str:
    return (f"{m:+.1f}" if sign else f"{m:.1f}") + ("" if h != h else f" ± {h:.1f}")


def table_markdown(table: dict[str, dict[str, tuple[float, float]]], paired: dict[str, dict[str, tuple[float, float]]],
                   cfg: DemoConfig, wall_s: float) -> str:
    head = "| recipe | " + " | ".join(lbl for _, lbl in COLUMNS) + " |"
    rule = "|" + "---|" * (len(COLUMNS) + 1)
    lines = [f"Held-out compositional test of the scene world (world seed {cfg.world_seed}): accuracy % "
             f"(mean ± 95% CI over training seeds {cfg.seeds}; stand-in pretrained {cfg.pretrain.length()}, "
             f"fine-tune {cfg.finetune_steps} steps x {cfg.finetune_batch} anchors, K = {cfg.k}; wall {wall_s:.0f} s).",
             "", head, rule]
    for name, cols in table.items():
        lines.append(f"| {name} | " + " | ".join(_cell(*cols[c]) for c, _ in COLUMNS) + " |")
    if paired:
        lines += ["", "Paired differences, points (same seed, start and data order; mean ± 95% CI; "
                  "an interval that excludes 0 is a difference at the 5% level):", "",
                  head.replace("| recipe |", "| difference |"), rule]
        for name, cols in paired.items():
            lines.append(f"| {name} | " + " | ".join(_cell(*cols[c], sign=True) for c, _ in COLUMNS) + " |")
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


__all__ = ["DemoConfig", "run_demo", "ci95", "paired_differences", "RECIPES", "ABLATIONS"]
