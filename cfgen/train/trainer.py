"""`cfgen train`: fine-tune a CLIP/SigLIP model with alpha*L_align + beta*L_csd + gamma*L_fcd.

Reads top to bottom: `prepare` (config -> model, optimiser, schedule, resume) -> `train` loops
epochs of steps: `accumulate` (micro-batches with gradient accumulation, global-batch losses with
features gathered across ranks, `losses.gather`) -> `update` (step, clamp temperature) ->
`write_log` -> `checkpoint` (`checkpoint.py`: safetensors + JSON, no pickle; `--resume`
continues exactly). Multi-GPU / multi-node via accelerate.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .checkpoint import (latest_checkpoint, load_checkpoint, prune_checkpoints, read_log, save_checkpoint,
                         save_rng)
from .losses import MAX_LOGIT_SCALE, CFVLMLoss, all_ranks_have, clamp_logit_scale
from ..io.writer import append_line, atomic_write_bytes, refuse_symlink
from .model import FeatureModule

log = logging.getLogger("cfgen.train")


class NonFiniteLoss(RuntimeError):
    """Training stopped on a NaN/Inf loss; the message names the last usable checkpoint."""


@dataclass
class TrainConfig:
    shards: list[str] = field(default_factory=list)
    model: str = "openai/clip-vit-base-patch32"
    out: str = "ckpt"
    recipe: str = "cf-vlm"
    alpha: float = 1.0
    beta: float = 0.45
    gamma: float = 0.55
    m1: float = 0.25
    m2: float = 0.30
    hinge_space: str = "cosine"        # cosine (paper) | logit: hinges on S / tau, margins in logits
    text_negatives: str = "none"       # none | one | all: counterfactual captions as extra negatives
    image_negatives: bool = False      # counterfactual images as extra negatives for anchor captions
    cf_in_batch: bool = False          # counterfactual pairs join the contrastive batch as pairs of their own
    use_cf: bool = True                # load counterfactuals at all (std-ft: False)
    k: int = 0                         # counterfactual slots per anchor (0: the K of the run the shards come from, else 4)
    cf_ratio: float = 1.0
    lr: float = 1e-5
    warmup_steps: int = 500
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    batch_size: int = 256              # effective (global) batch of anchors, on any number of processes
    micro_batch: int = 0               # anchors per process per forward (0: batch_size / processes)
    max_steps: int = 1000
    grad_clip: float = 1.0
    precision: str = "auto"            # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32
    seed: int = 0
    save_every: int = 500
    keep_checkpoints: int = 3          # the newest N resumable checkpoints are kept (0: all)
    log_every: int = 10
    num_workers: int = 4
    shuffle_buffer: int = 1000
    tensorboard: bool = False
    resume: bool = False
    train_temperature: bool = True
    lora_rank: int = 0                 # > 0: LoRA adapters (generative VLMs), everything else frozen
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_vision: bool = False          # adapters on the vision tower too (else it stays frozen)
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.hinge_space not in ("cosine", "logit"):
            raise ValueError(f"train option hinge_space must be cosine or logit, not {self.hinge_space!r}")

    def needs_cf(self) -> bool:
        return self.needs_cf_images() or (self.use_cf and self.text_negatives != "none")

    def needs_cf_images(self) -> bool:
        """Whether any loss term reads a counterfactual image (textneg-ft reads only the captions:
        its counterfactual images are neither decoded nor encoded)."""
        return self.use_cf and (self.beta > 0 or self.gamma > 0 or self.image_negatives or self.cf_in_batch)


WORLD_SIZES = (1, 2, 4, 8)                 # every shipped recipe must start at each of these


def accumulation_steps(batch_size: int, micro_batch: int, world: int) -> tuple[int, int]:
    """(micro_batch, accumulation steps) so that micro_batch * world * accum == batch_size exactly."""
    micro = micro_batch or batch_size // world
    if micro <= 0 or batch_size % (micro * world):
        fits = [m for m in range(1, batch_size + 1) if all(batch_size % (m * w) == 0 for w in WORLD_SIZES)]
        raise ValueError(f"train settings batch_size {batch_size} and micro_batch {micro_batch or 'auto'} cannot run on "
                         f"{world} process(es): micro_batch x processes must divide batch_size; set micro_batch to 0 "
                         f"(batch_size / processes) or to one that works at {', '.join(map(str, WORLD_SIZES))} "
                         f"processes: {', '.join(map(str, fits))}")
    return micro, batch_size // (micro * world)


# ------------------------------------------------------------------------------ optimiser
def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norms, embeddings' 1-d params and the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or "norm" in name or "bias" in name or "logit_scale" in name or "logit_bias" in name
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ------------------------------------------------------------------------------ the loop
@dataclass
class Run:
    """Everything one training run holds while it loops (built once by `prepare`)."""

    cfg: TrainConfig
    accelerator: Any
    encoder: Any                       # the DualEncoder: its preprocessor and processor
    features: Any                      # the FeatureModule as accelerate prepared it (DDP-wrapped on several ranks)
    model: Any                         # the unwrapped model (temperature, saving)
    loss: CFVLMLoss
    opt: Any
    sched: Any
    state: dict[str, Any]
    urls: list[str]
    micro: int
    accum: int
    skipped: Any
    tb: Any = None
    bar: Any = None
    t_last: float = field(default_factory=time.time)
    imgs_since: int = 0

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)


def prepare(cfg: TrainConfig) -> Run:
    """Accelerator, model (or the latest intact checkpoint with --resume), optimiser, schedule."""
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup
    from .data import SkipCounter, shard_urls
    from .model import DualEncoder

    out = Path(cfg.out)
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "fp32"
    acc = Accelerator(mixed_precision="bf16" if precision == "bf16" else "no")
    micro, accum = accumulation_steps(cfg.batch_size, cfg.micro_batch, acc.num_processes)
    urls = shard_urls(cfg.shards)
    if len(urls) < acc.num_processes:
        raise ValueError(f"{len(urls)} shard(s) for {acc.num_processes} processes: every process needs at least one shard")
    torch.manual_seed(cfg.seed)
    resume_from = latest_checkpoint(out) if cfg.resume else None
    if cfg.resume and resume_from is None:
        log.warning("--resume: no intact checkpoint in %s/checkpoints; starting from the beginning", out)
    from .vlm import lora_resume_source, saved_logit_scale
    lora_src = lora_resume_source(resume_from / "model") if resume_from else None
    # The dtype is the trainer's, whatever the checkpoint's config names (llava-1.5-hf says float16):
    # fp32 master weights under autocast; a LoRA run's frozen base in bf16 when training in bf16.
    dtype = torch.bfloat16 if precision == "bf16" and cfg.lora_rank else torch.float32
    enc = DualEncoder.load(lora_src[0] if lora_src else resume_from / "model" if resume_from else cfg.model,
                           dtype=dtype)
    model = enc.model
    if cfg.lora_rank:
        if enc.kind != "vlm":
            raise ValueError(f"train option lora_rank: LoRA is for generative VLMs; {cfg.model} is a {enc.kind} model")
        model.add_lora(cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_vision,
                       adapter=lora_src[1] if lora_src else None)
        if lora_src:                                   # the temperature of the checkpoint
            model.logit_scale.data.fill_(saved_logit_scale(resume_from / "model"))
    if cfg.gradient_checkpointing:
        inner = getattr(model, "vlm", model)
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.logit_scale.requires_grad_(cfg.train_temperature)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            eps=cfg.eps)
    sched = get_cosine_schedule_with_warmup(opt, cfg.warmup_steps, cfg.max_steps)
    state = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "anchors_seen": 0, "config": asdict(cfg), "data": urls}
    if resume_from is not None:
        state = load_checkpoint(resume_from, opt, sched, acc.process_index)
        check_resume(resume_from, state, cfg, urls)
        log.info("resumed from %s at step %d", resume_from, state["step"])
    # from_pretrained returns eval mode: without train(), dropout is off and transformers skips
    # gradient checkpointing (it checkpoints only `if self.gradient_checkpointing and self.training`)
    features, opt = acc.prepare(FeatureModule(model).train(), opt)
    model = acc.unwrap_model(features).model
    run = Run(cfg, acc, enc, features, model, CFVLMLoss.for_model(cfg, model), opt, sched, state, urls, micro,
              accum, SkipCounter())
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        log_path = out / "train_log.jsonl"
        if log_path.exists():                      # drop log lines past the resumed step
            atomic_write_bytes(log_path, "".join(x + "\n" for x in read_log(log_path, state["step"])).encode())
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            run.tb = SummaryWriter(str(out / "tb"))
    return run


def accumulate(run: Run, it: Any) -> dict[str, torch.Tensor] | None:
    """Forward and backward of one step's micro-batches; the summed loss terms, or None when the
    epoch ran out on any rank (gradients of a partial step are dropped)."""
    acc, state = run.accelerator, run.state
    sums: dict[str, torch.Tensor] = {}         # on the device: no host sync per micro-step
    for m in range(run.accum):
        b = next(it, None)
        if not all_ranks_have(b is not None, acc.device):
            run.opt.zero_grad(set_to_none=True)
            return None
        state["batches_in_epoch"] += 1
        run.skipped.skipped += b.skipped           # counted in the loader's process, summed here
        ctx = acc.no_sync(run.features) if m < run.accum - 1 else nullcontext()
        dev = dict(device=acc.device, non_blocking=True)
        with ctx:
            with acc.autocast():
                img, txt = run.features(run.encoder.pre.on_device(b.pixel_values.to(**dev)), b.input_ids.to(**dev),
                                     b.attention_mask.to(**dev))
            # losses in fp32, outside autocast: logits at scale up to 100 lose too much in bf16
            losses = run.loss(img.float(), txt.float(), b.n, b.cf_owner.to(**dev), b.cf_slot.to(**dev),
                              b.mask, b.local, run.model.logit_scale)
            acc.backward(losses["total"] / run.accum)
        for kname, v in losses.items():
            sums[kname] = sums.get(kname, 0.0) + v.detach() / run.accum
        run.imgs_since += int(b.pixel_values.shape[0]) * acc.num_processes
    return sums


def update(run: Run, sums: dict[str, torch.Tensor]) -> None:
    """Stop on a non-finite loss (saving the parameters before it), else clip, step, clamp."""
    state = run.state
    if not torch.isfinite(sums["total"]):      # one host sync per step, before the update
        ck = run.out / "checkpoints" / f"step-{state['step']:07d}-before-nonfinite"
        save_rng(ck.with_name(ck.name + ".tmp"), run.accelerator.process_index)
        if run.accelerator.is_main_process:
            save_checkpoint(ck, run.model, run.encoder.processor, run.opt, run.sched, state)
        raise NonFiniteLoss(f"non-finite loss ({float(sums['total'])}) at step {state['step']}; "
                            f"parameters before it are saved in {ck}")
    if run.cfg.grad_clip:
        run.accelerator.clip_grad_norm_(run.features.parameters(), run.cfg.grad_clip)
    run.opt.step()
    run.sched.step()
    run.opt.zero_grad(set_to_none=True)
    clamp_logit_scale(run.model.logit_scale, MAX_LOGIT_SCALE)
    state["step"] += 1
    state["anchors_seen"] = state.get("anchors_seen", 0) + run.cfg.batch_size


def write_log(run: Run, sums: dict[str, torch.Tensor]) -> None:
    """One line of train_log.jsonl (and TensorBoard) on the main process."""
    state, cfg = run.state, run.cfg
    dt = time.time() - run.t_last
    rec = {"step": state["step"], "loss": float(sums["total"]), "align": float(sums["align"]),
           "csd": float(sums["csd"]), "fcd": float(sums["fcd"]),
           "temperature": float(1 / run.model.logit_scale.detach().exp()),
           "lr": run.sched.get_last_lr()[0], "images_per_s": run.imgs_since / max(dt, 1e-9),
           "epoch": state["epoch"], "skipped_corrupt": run.skipped.skipped, "global_batch": cfg.batch_size,
           "anchors_seen": state["anchors_seen"]}
    append_line(run.out / "train_log.jsonl", json.dumps(rec))
    if run.tb is not None:
        for kname, v in rec.items():
            run.tb.add_scalar(kname, v, state["step"])
    run.bar.set_postfix(loss=f"{rec['loss']:.3f}", ips=f"{rec['images_per_s']:.0f}")
    run.t_last, run.imgs_since = time.time(), 0


def checkpoint(run: Run) -> None:
    """A resumable checkpoint: every rank's RNG, then the main process's model and optimiser."""
    acc = run.accelerator
    ck = run.out / "checkpoints" / f"step-{run.state['step']:07d}"
    if acc.is_main_process:
        shutil.rmtree(ck.with_name(ck.name + ".tmp"), ignore_errors=True)
    acc.wait_for_everyone()
    save_rng(ck.with_name(ck.name + ".tmp"), acc.process_index)
    acc.wait_for_everyone()
    if acc.is_main_process:
        save_checkpoint(ck, run.model, run.encoder.processor, run.opt, run.sched, run.state)
        prune_checkpoints(run.out, run.cfg.keep_checkpoints)
    acc.wait_for_everyone()


# Settings a resume may change: they do not change what the steps compute (max_steps extends or
# shortens a run; its cosine schedule then ends at the new length, logged).
RESUME_FREE = {"resume", "out", "save_every", "keep_checkpoints", "log_every", "num_workers", "tensorboard",
               "max_steps"}


def check_resume(ckpt: Path, state: dict[str, Any], cfg: TrainConfig, urls: list[str]) -> None:
    """Refuse to continue a checkpoint whose recipe or data differ from this run's, naming them."""
    saved = state.get("config", {})
    now = asdict(cfg)
    differ = [f"{k} {saved[k]!r} -> {now[k]!r}" for k in sorted(now)
              if k not in RESUME_FREE | {"shards"} and k in saved and saved[k] != now[k]]
    if "data" in state and state["data"] != urls:
        differ.append(f"shards ({len(state['data'])} -> {len(urls)} files)")
    if differ:
        raise ValueError(f"--resume: {ckpt} was trained with other settings: {'; '.join(differ)}; resume with the "
                         "same recipe and data, or start a new --out")
    if saved.get("max_steps", cfg.max_steps) != cfg.max_steps:
        log.warning("--resume: max_steps %s -> %s: the cosine schedule now ends at step %s", saved["max_steps"],
                    cfg.max_steps, cfg.max_steps)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Epochs of steps until max_steps; each epoch's data order depends on (seed, epoch) only, so a
    resumed run sees exactly the batches the uninterrupted one would have. `--out` is locked (as a
    stage locks its run) by the main process for the whole run."""
    import os
    from ..run import run_lock
    cfg = with_run_k(cfg)
    if int(os.environ.get("RANK", "0")) != 0:        # set by torchrun / accelerate launch; read before any
        return _train(cfg)                           # process group exists (creating one here would skew it)
    refuse_symlink(cfg.out)
    with run_lock(cfg.out):
        return _train(cfg)


def with_run_k(cfg: TrainConfig) -> TrainConfig:
    """K is the run's, written once by captions: an unset k takes it (4 for shards of no run); a
    smaller k is an explicit choice; a larger one would train on slots the run never filled."""
    from .data import run_k, shard_urls
    made = run_k(shard_urls(cfg.shards, say=False))
    if cfg.k == 0:
        return replace(cfg, k=made or 4)
    if made and cfg.k > made:
        raise ValueError(f"train option k {cfg.k}: the run made at most {made} counterfactuals per anchor "
                         f"(captions k in its manifest); use k <= {made}, or leave it unset")
    return cfg


def _train(cfg: TrainConfig) -> dict[str, Any]:
    from tqdm.auto import tqdm
    from .data import make_loader
    run = prepare(cfg)
    acc, state = run.accelerator, run.state
    run.bar = tqdm(total=cfg.max_steps, initial=state["step"], desc=f"train {cfg.recipe}",
                   disable=not acc.is_main_process)
    while state["step"] < cfg.max_steps:
        it = iter(make_loader(run.urls, run.encoder.pre, k=cfg.k, cf_ratio=cfg.cf_ratio, use_cf=cfg.needs_cf(),
                              cf_images=cfg.needs_cf_images(), micro_batch=run.micro, seed=cfg.seed, epoch=state["epoch"],
                              skip_batches=state["batches_in_epoch"], shuffle_buffer=cfg.shuffle_buffer,
                              num_workers=cfg.num_workers, rank=acc.process_index,
                              world_size=acc.num_processes, uint8_pixels=True))
        fresh_epoch, step_at_start, ran_out = state["batches_in_epoch"] == 0, state["step"], False
        while state["step"] < cfg.max_steps:
            sums = accumulate(run, it)
            if sums is None:
                ran_out = True
                break
            update(run, sums)
            run.bar.update(1)
            if acc.is_main_process and (state["step"] % cfg.log_every == 0 or state["step"] == cfg.max_steps):
                write_log(run, sums)
            if cfg.save_every and state["step"] % cfg.save_every == 0:
                checkpoint(run)
        if fresh_epoch and state["step"] == step_at_start:
            raise ValueError(f"a whole epoch over {len(run.urls)} shard(s) ({run.urls[0]}, ...) gave no training "
                             f"step of {run.micro} x {run.accum} anchors per process ({run.skipped.skipped} corrupt "
                             "sample(s) or shard(s) skipped): too few readable samples for --batch-size/--micro-batch")
        if ran_out or state["step"] < cfg.max_steps:
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
    run.bar.close()
    run.features.eval()
    acc.wait_for_everyone()
    if acc.is_main_process:
        run.model.save_pretrained(run.out)
        run.encoder.processor.save_pretrained(run.out)
        atomic_write_bytes(run.out / "train_config.json", json.dumps(asdict(cfg), indent=1).encode())
    if run.tb is not None:
        run.tb.close()
    return {"step": state["step"], "epoch": state["epoch"], "skipped_corrupt": run.skipped.skipped,
            "out": str(run.out)}


def recipe_config(recipe: str | None, *overrides: dict[str, Any] | None,
                  config: dict[str, Any] | None = None) -> TrainConfig:
    """A TrainConfig: `config` (a run's settings, e.g. paper.yaml's train section), then the recipe
    (a file of loss settings under pipelines/train/, or a YAML path; by default the one `config`
    names), then overrides. The result, saved as train_config.json, is exactly the run."""
    from ..config import build, load_yaml, resolve_recipe
    recipe = recipe or (config or {}).get("recipe")
    base = load_yaml(resolve_recipe(recipe), "train") if recipe else {}
    return build(TrainConfig, config, base, *overrides)


__all__ = ["TrainConfig", "train", "NonFiniteLoss", "recipe_config"]
