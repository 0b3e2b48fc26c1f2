"""`cfgen` command line: one click group, one subcommand per stage. Each command parses its
options into the stage's config (`config.build`: YAML recipe, then flags) and calls one function
of the stage; nothing here does a stage's work."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from .config import build, load_yaml
from .errors import one_line_errors


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cfgen")
def main() -> None:
    """cfgen: counterfactual image-text pairs and CF-VLM fine-tuning for CLIP-style models."""


@main.command()
@click.option("--n", default=10_000, show_default=True, help="training anchors")
@click.option("--n-test", default=1_000, show_default=True, help="held-out test items")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output directory")
@click.option("--seed", default=0, show_default=True)
@click.option("--image-size", default=64, show_default=True)
@click.option("--per-shard", default=1_000, show_default=True)
@one_line_errors
def world(n: int, n_test: int, out: str, seed: int, image_size: int, per_shard: int) -> None:
    """Write the procedural scene world (img2dataset-format shards + held-out test)."""
    from .world.generate import WorldConfig, generate_world
    info = generate_world(out, WorldConfig(n=n, n_test=n_test, seed=seed, image_size=image_size,
                                           per_shard=per_shard))
    click.echo(json.dumps({"train_shards": len(info["train"]), "test_shards": len(info["test"]),
                           "heldout": info["config"]["heldout"]}))


def _report(summary: dict[str, Any], run: str) -> None:
    """Print the stage summary; any failed unit makes the command fail (exit 1), naming the units."""
    click.echo(json.dumps(summary, indent=1, sort_keys=True))
    failed = summary.get("units_failed") or {}
    if failed:
        first = next(iter(failed.items()))
        raise click.ClickException(f"{len(failed)} unit(s) failed in {run} (listed in failed.json; "
                                   f"rerun the command to retry them), e.g. {first[0]}: {first[1]}"[:500])


@main.command()
@click.option("--input", "inputs", multiple=True, required=True,
              help="shards/tables: brace lists, globs or directories (repeatable)")
@click.option("--out", required=True, help="run directory")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="YAML recipe (section `captions`)")
@click.option("--backend", type=click.Choice(["rules", "transformers", "openai", "vllm"]))
@click.option("--k", type=int, help="rewrites per caption [4]")
@click.option("--swaps/--no-swaps", default=None, help="keep binding swaps (edit type swap) [keep]")
@click.option("--prompt", type=click.Path(exists=True, dir_okay=False), help="prompt template file")
@click.option("--structured/--no-structured", default=None, help="ask for JSON rewrites")
@click.option("--judge/--no-judge", default=None,
              help="the backend's model judges each kept rewrite; a no rejects it (prompts/judge.txt) [no]")
@click.option("--model", help="model id or directory (transformers, openai, vllm)")
@click.option("--base-url", envvar="OPENAI_BASE_URL", help="OpenAI-compatible server URL [$OPENAI_BASE_URL]")
@click.option("--api-key-env", help="environment variable holding the server's API key [OPENAI_API_KEY]")
@click.option("--tensor-parallel-size", type=int, help="vllm: GPUs per model copy [the number of --gpus]")
@click.option("--gpus", help="GPUs: 0-7, 0,2,5 or all (vllm: one engine over all of them; transformers: a worker each)")
@click.option("--concurrency", type=int, help="openai backend: requests in flight [64]")
@click.option("--seed", type=int)
@click.option("--batch-size", type=int)
@click.option("--workers", type=int, help="CPU worker processes")
@click.option("--distributor", type=click.Choice(["local", "ray"]))
@click.option("--ray-address")
@click.option("--image-col")
@click.option("--caption-col")
@click.option("--id-col")
@click.option("--limit", type=int, help="quick look: rewrite the first N anchors, print, write nothing")
@click.option("--dry-run", is_flag=True, help="print the rendered prompt for the first caption")
@one_line_errors
def captions(inputs, out, config_path, limit, dry_run, gpus, **kw) -> None:
    """Stage 1: K counterfactual rewrites per caption, validated and typed."""
    from .captions.stage import CaptionsConfig, first_prompt, preview_captions, run_captions
    from .run import parse_gpus
    cfg = build(CaptionsConfig, load_yaml(config_path, "captions"), kw, {"input": list(inputs), "out": out})
    gpu_list = parse_gpus(gpus) or None
    if dry_run:
        click.echo(first_prompt(cfg))
        return
    if limit:
        for a, g, rws in preview_captions(cfg, limit, gpu_list):
            click.echo(f"{a.key}: {a.caption}")
            for r in rws:
                e = "; ".join(x for x in (f"{r.edit.type}/{r.edit.scope}: {r.edit.from_!r} -> {r.edit.to!r}"
                                          if r.edit else "", r.reason) if x)
                click.echo(f"   [{r.status}] {r.text}   ({e})")
            if g.error:
                click.echo(f"   [failed] {g.error}")
        return
    _report(run_captions(cfg, gpu_list), cfg.out)


def _images_options(f):
    for opt in reversed([
        click.option("--run", required=True, help="run directory (from `cfgen captions`)"),
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                     help="YAML recipe (section `images`)"),
        click.option("--filter-model", help="CLIP/SigLIP model for filtering"),
        click.option("--filter/--no-filter", "filter_", default=None, help="CLIP-similarity filtering"),
        click.option("--min-cf-score", type=float), click.option("--min-margin", type=float),
        click.option("--min-img-sim", type=float), click.option("--max-img-sim", type=float),
        click.option("--store-size", type=int, help="resize final images (shortest side)"),
    ]):
        f = opt(f)
    return f


def _images_cfg(config_path, run, filter_, kw):
    from .images.stage import ImagesConfig
    return build(ImagesConfig, load_yaml(config_path, "images"), kw, {"run": run, "filter": filter_})


@main.command()
@_images_options
@click.option("--editor", type=click.Choice(["scene", "sdxl"]))
@click.option("--gpus", help="GPUs, one worker each: 0-7, 0,2,5 or all")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="without --gpus: where to run")
@click.option("--workers", type=int, help="CPU worker processes (with --device cpu)")
@click.option("--seed", type=int)
@click.option("--distributor", type=click.Choice(["local", "ray"]))
@click.option("--ray-address")
@one_line_errors
def images(run, config_path, filter_, gpus, device, **kw) -> None:
    """Stage 2: masked edits of each anchor toward its rewrites, CLIP filter, final shards."""
    from .run import parse_gpus
    from .images.stage import run_images
    cfg = _images_cfg(config_path, run, filter_, kw)
    gpu_list = parse_gpus(gpus)
    _report(run_images(cfg, gpus=gpu_list or None, device=device or ("cuda" if gpu_list else "cpu")), run)


@main.command(name="filter")
@_images_options
@one_line_errors
def filter_cmd(run, config_path, filter_, **kw) -> None:
    """Re-filter generated counterfactuals with new thresholds (no image is regenerated)."""
    from .images.stage import run_filter
    _report(run_filter(_images_cfg(config_path, run, filter_, kw), redo=True), run)


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="sheet.png", show_default=True)
@click.option("--n", default=8, show_default=True, help="anchors (rows)")
@one_line_errors
def inspect(run, out, n) -> None:
    """Contact sheet of final samples: anchor, counterfactuals, edit types, masks, scores."""
    from .images.inspect import contact_sheet
    k = contact_sheet(run, out, n=n)
    click.echo(f"wrote {out} ({k} anchors)")


@main.command()
@click.option("--shards", multiple=True, required=True, help="final shards: brace lists, globs, directories")
@click.option("--model", help="transformers id or directory: CLIP, SigLIP, or a generative VLM (LLaVA-1.5, Qwen2-VL, Qwen2.5-VL)")
@click.option("--out", required=True, help="output directory (loads with the model's own from_pretrained)")
@click.option("--recipe", default=None,
              help="std-ft, textneg-ft, text-only-cf, image-only-cf, cf-vlm, cf-vlm-plus, cf-vlm-no-{align,csd,fcd}, "
                   "or a YAML; applied over --config [the recipe --config names, else cf-vlm]")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="YAML (section `train`)")
@click.option("--max-steps", type=int)
@click.option("--batch-size", type=int, help="effective batch (anchors)")
@click.option("--micro-batch", type=int, help="per process per forward")
@click.option("--lr", type=float)
@click.option("--warmup-steps", type=int)
@click.option("--k", type=int, help="counterfactuals per anchor to use (at most the run's K) [the run's K]")
@click.option("--cf-ratio", type=float, help="fraction of anchors whose counterfactuals are used")
@click.option("--alpha", type=float)
@click.option("--beta", type=float)
@click.option("--gamma", type=float)
@click.option("--seed", type=int)
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]))
@click.option("--num-workers", type=int)
@click.option("--save-every", type=int)
@click.option("--keep-checkpoints", type=int, help="keep the newest N checkpoints (0: all) [3]")
@click.option("--log-every", type=int)
@click.option("--tensorboard/--no-tensorboard", default=None)
@click.option("--lora-rank", type=int, help="> 0: LoRA adapters on a generative VLM's attention (peft), the rest frozen")
@click.option("--lora-alpha", type=int)
@click.option("--lora-vision/--no-lora-vision", default=None, help="LoRA on the vision tower too")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None)
@click.option("--resume", is_flag=True, default=None, help="continue from the latest checkpoint in --out")
@one_line_errors
def train(shards, recipe, config_path, **kw) -> None:
    """Stage 3: fine-tune with alpha*L_align + beta*L_csd + gamma*L_fcd (multi-GPU: accelerate launch)."""
    from .train.trainer import recipe_config, train as run_train
    base = load_yaml(config_path, "train")
    cfg = recipe_config(recipe or base.get("recipe") or "cf-vlm", kw, {"shards": list(shards)}, config=base)
    click.echo(json.dumps(run_train(cfg)))


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", default=None, help="PNG path [RUN/loss.png]")
@one_line_errors
def plot(run, out) -> None:
    """Loss curves (each component), temperature and lr of a training run, to PNG."""
    from .train.plot import plot_run
    click.echo(f"wrote {plot_run(run, out)}")


@main.command(name="eval")
@click.option("--model", "models", multiple=True, help="model directory or id (repeat to compare)")
@click.option("--bench", "benches", multiple=True, help="NAME=PATH (aro-vg-relation, aro-vg-attribution, coco-order, "
              "flickr30k-order, sugarcrepe, vl-checklist, vl-checklist-allpairs, conme, winoground, retrieval, "
              "zeroshot, world, pope, mme)")
@click.option("--image-root", "roots", multiple=True, help="NAME=DIR: image directory of a benchmark")
@click.option("--coco-root", type=click.Path(file_okay=False), help="COCO val2017 folder (SugarCrepe's images)")
@click.option("--skip-missing", is_flag=True, help="score the rest when images are missing or unreadable, or an MME "
              "subtask has no question (counted)")
@click.option("--compare", "compare", multiple=True, type=click.Path(exists=True), help="results.json files to put side by side")
@click.option("--out", default="eval_out", show_default=True, help="directory for results.{json,csv,md}")
@click.option("--device", default="cpu", show_default=True)
@click.option("--seed", default=1, show_default=True,
              help="seed of the order perturbations and ConMe's option order (1: ARO's own draws)")
@click.option("--scoring", type=click.Choice(["contrastive", "generative"]), default="contrastive", show_default=True,
              help="cosine of CLIP/SigLIP embeddings, or P(yes) of a generative VLM (LLaVA, Qwen2-VL; needed for pope, mme)")
@one_line_errors
def eval_cmd(models, benches, roots, coco_root, skip_missing, compare, out, device, seed, scoring) -> None:
    """Score models on compositional benchmarks read from local files (never downloads)."""
    from .eval.report import markdown, merge_results, read_results, rows, write_reports
    from .eval.run import evaluate

    def pairs(opts, what):
        d = {}
        for o in opts:
            if "=" not in o:
                raise ValueError(f"{what} must be NAME=PATH, got {o!r}")
            k, v = o.split("=", 1)
            d[k] = v
        return d
    runs = [(c, *read_results(c)) for c in compare]
    bench_map = pairs(benches, "--bench")
    if models and not bench_map:
        raise ValueError("give at least one --bench NAME=PATH")
    image_roots = pairs(roots, "--image-root")
    if coco_root:
        image_roots.setdefault("sugarcrepe", coco_root)
    for m in models:
        r = evaluate(m, bench_map, image_roots, device=device, seed=seed, skip_missing=skip_missing, scoring=scoring)
        runs.append(("--model", {m: {b: x.table() for b, x in r.items()}}, {m: {b: x.items for b, x in r.items()}}))
    results, items, model_paths = merge_results(runs)
    if not results:
        raise ValueError("nothing to evaluate: give --model and --bench, or --compare")
    click.echo(markdown(rows(results)))
    files = write_reports(results, out, items=items if len(items) == len(results) else None, model_paths=model_paths)
    if "compare" in files:
        click.echo("\n" + files["compare"].read_text())
    click.echo("wrote " + ", ".join(str(f) for f in files.values()))


@main.command()
@click.option("--out", default="shards/demo", show_default=True)
@click.option("--quick", is_flag=True, help="a small two-seed run (about a minute; used by the tests and CI)")
@click.option("--seeds", default=None, help="comma-separated training seeds [0,1,2,3,4]")
@click.option("--world-seed", type=int, help="seed of the scene world (held-out pairs, scenes, test items) [0]")
@click.option("--n", type=int, help="world training anchors")
@click.option("--k", type=int, help="counterfactuals per anchor, generated and used in fine-tuning [4]")
@click.option("--pretrain", "pretrain_from_scratch", is_flag=True, default=None,
              help="pretrain the stand-in CLIP here instead of using the released one shipped with cfgen")
@click.option("--pretrain-steps", type=int,
              help="length of the pretraining schedule; the checkpoint is taken at the released fraction of it "
                   "(stop_frac) (implies --pretrain unless it is the released value)")
@click.option("--finetune-steps", type=int, help="fine-tuning steps of every recipe [80]")
@click.option("--finetune-lr", type=float)
@click.option("--workers", type=int, help="fine-tunes run in parallel processes [2]")
@click.option("--recipes", default=None, help="comma-separated recipes [std-ft,textneg-ft,cf-vlm,cf-vlm-plus]")
@click.option("--ablations", is_flag=True, help="also run the paper's ablations (Tables 3 and 4)")
@click.option("--backbone", type=click.Choice(["clip", "vlm"]), default=None,
              help="the stand-in fine-tuned: a CLIP, or a LLaVA-architecture generative VLM (E5-V embeddings) [clip]")
@one_line_errors
def demo(out, quick, seeds, recipes, ablations, pretrain_steps, backbone, **kw) -> None:
    """The whole method on the embedded scene world, on CPU: the comparison table of the recipes."""
    from dataclasses import asdict
    from .demo import ABLATIONS, DemoConfig, run_demo
    from .demo.pretrain import PretrainConfig
    base = DemoConfig.quick(out, backbone or "clip") if quick else DemoConfig(out=out)
    over: dict = dict(kw)
    if seeds:
        over["seeds"] = [int(x) for x in seeds.split(",")]
    if recipes or ablations:
        over["recipes"] = (recipes.split(",") if recipes else list(base.recipes)) + (ABLATIONS if ablations else [])
    over["pretrain"] = asdict(PretrainConfig.released(backbone)) if backbone and not quick else {}
    over["pretrain"].update({k: v for k, v in (("steps", pretrain_steps), ("backbone", backbone)) if v})
    cfg = build(DemoConfig, asdict(base), over)
    r = run_demo(cfg, log=click.echo)
    click.echo("\n" + r["markdown"])
    click.echo(f"\nwall time {r['wall_s']} s {r['timings_s']}; table, per-seed results and plot in {r['out']}/results.*")


if __name__ == "__main__":
    sys.exit(main())
