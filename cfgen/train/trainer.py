"""`cfgen train`: fine-tune a CLIP/SigLIP model with alpha*L_align + beta*L_csd + gamma*L_fcd.

Reads top to bottom: config -> model, optimiser, schedule -> (resume) -> loop over micro-
batches with gradient accumulation -> global-batch losses (features gathered across ranks with
gradients, `losses.gather`) -> step, clamp temperature, log, checkpoint (`checkpoint.py`:
safetensors + JSON, no pickle; `--resume` continues exactly). Multi-GPU / multi-node via accelerate.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import latest_checkpoint, load_checkpoint, read_log, save_checkpoint, save_rng
from .losses import (MAX_LOGIT_SCALE, align_loss, all_ranks_have, clamp_logit_scale, csd_loss, fcd_loss, gather,
                     siglip_loss)
from .model import FeatureModule, is_siglip

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
    k: int = 4
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
    log_every: int = 10
    num_workers: int = 4
    shuffle_buffer: int = 1000
    tensorboard: bool = False
    resume: bool = False
    train_temperature: bool = True

    def __post_init__(self) -> None:
        if self.hinge_space not in ("cosine", "logit"):
            raise ValueError(f"train option hinge_space must be cosine or logit, not {self.hinge_space!r}")

    def needs_cf(self) -> bool:
        return self.use_cf and (self.beta > 0 or self.gamma > 0 or self.text_negatives != "none"
                                or self.image_negatives or self.cf_in_batch)


def dense_cf(feats: torch.Tensor, n: int, owner: torch.Tensor, slot: torch.Tensor, k: int) -> torch.Tensor:
    """Counterfactual features [M, D] -> [n, K, D] (zeros where a sample has no k-th counterfactual).

    Always built from `feats`, even when M = 0, so the result stays in the autograd graph and the
    backward of the cross-rank gather runs its collective on every rank."""
    return feats.new_zeros(n, k, feats.shape[-1]).index_put((owner, slot), feats[n:])


def accumulation_steps(batch_size: int, micro_batch: int, world: int) -> tuple[int, int]:
    """(micro_batch, accumulation steps) so that micro_batch * world * accum == batch_size exactly."""
    micro = micro_batch or batch_size // world
    if micro <= 0 or batch_size % (micro * world):
        raise ValueError(f"batch_size {batch_size} is not a multiple of micro_batch {micro} x {world} process(es); "
                         f"choose micro_batch so that micro_batch x processes divides batch_size")
    return micro, batch_size // (micro * world)


def compute_losses(img: torch.Tensor, txt: torch.Tensor, n: int, owner: torch.Tensor, slot: torch.Tensor,
                   mask: torch.Tensor, local: torch.Tensor, logit_scale: torch.Tensor,
                   logit_bias: torch.Tensor | None, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """All loss terms on the global batch (identical on every rank)."""
    k = mask.shape[1]
    a_img, a_txt = gather(img[:n]), gather(txt[:n])
    cf_img, cf_txt = gather(dense_cf(img, n, owner, slot, k)), gather(dense_cf(txt, n, owner, slot, k))
    mask, local = gather(mask.to(img.device), False), gather(local.to(img.device), False)
    out: dict[str, torch.Tensor] = {}
    if logit_bias is not None:
        out["align"] = siglip_loss(a_img, a_txt, logit_scale, logit_bias)
    else:
        ex_t = ex_tm = ex_i = ex_im = None
        if cfg.text_negatives != "none":
            tm = mask.clone()
            if cfg.text_negatives == "one":
                tm[:, 1:] = False
            ex_t, ex_tm = cf_txt.reshape(-1, cf_txt.shape[-1]), tm.reshape(-1)
        if cfg.image_negatives:
            ex_i, ex_im = cf_img.reshape(-1, cf_img.shape[-1]), mask.reshape(-1)
        b_img, b_txt = a_img, a_txt
        if cfg.cf_in_batch:        # each (I_cf, T_cf) is a pair of its own: its anchor's hard negative both ways
            b_img, b_txt = torch.cat([a_img, cf_img[mask]]), torch.cat([a_txt, cf_txt[mask]])
        out["align"] = align_loss(b_img, b_txt, logit_scale, ex_t, ex_tm, ex_i, ex_im)
    # the hinges see S (paper) or S / tau, the scale InfoNCE works at (tau not trained through them)
    hs = logit_scale.exp().detach() if cfg.hinge_space == "logit" else 1.0
    s_anchor = hs * (a_img * a_txt).sum(-1)
    out["csd"] = csd_loss(hs * (cf_img * cf_txt).sum(-1), s_anchor, mask, cfg.m1)
    out["fcd"] = fcd_loss(hs * (cf_img * a_txt[:, None]).sum(-1), s_anchor, local, cfg.m2)
    out["total"] = cfg.alpha * out["align"] + cfg.beta * out["csd"] + cfg.gamma * out["fcd"]
    return out


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
def train(cfg: TrainConfig) -> dict[str, Any]:
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup
    from .data import SkipCounter, make_loader, shard_urls
    from .model import DualEncoder

    out = Path(cfg.out)
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "fp32"
    acc = Accelerator(mixed_precision="bf16" if precision == "bf16" else "no")
    world, rank = acc.num_processes, acc.process_index
    micro, accum = accumulation_steps(cfg.batch_size, cfg.micro_batch, world)
    urls = shard_urls(cfg.shards)
    if len(urls) < world:
        raise ValueError(f"{len(urls)} shard(s) for {world} processes: every process needs at least one shard")
    torch.manual_seed(cfg.seed)
    resume_from = latest_checkpoint(out) if cfg.resume else None
    if cfg.resume and resume_from is None:
        log.warning("--resume: no intact checkpoint in %s/checkpoints; starting from the beginning", out)
    enc = DualEncoder.load(resume_from / "model" if resume_from else cfg.model)
    model = enc.model
    model.logit_scale.requires_grad_(cfg.train_temperature)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            eps=cfg.eps)
    sched = get_cosine_schedule_with_warmup(opt, cfg.warmup_steps, cfg.max_steps)
    state = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "anchors_seen": 0, "config": asdict(cfg)}
    if resume_from is not None:
        state = load_checkpoint(resume_from, opt, sched, rank)
        log.info("resumed from %s at step %d", resume_from, state["step"])
    feats = FeatureModule(model)
    feats, opt = acc.prepare(feats, opt)
    raw = acc.unwrap_model(feats).model
    bias = getattr(raw, "logit_bias", None) if is_siglip(raw.config) else None
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train_log.jsonl"
    if acc.is_main_process and log_path.exists():      # drop log lines past the resumed step
        keep = read_log(log_path, state["step"])
        log_path.write_text("".join(x + "\n" for x in keep))
    tb = None
    if cfg.tensorboard and acc.is_main_process:
        from torch.utils.tensorboard import SummaryWriter
        tb = SummaryWriter(str(out / "tb"))
    skipped = SkipCounter()
    from tqdm.auto import tqdm
    bar = tqdm(total=cfg.max_steps, initial=state["step"], desc=f"train {cfg.recipe}", disable=not acc.is_main_process)
    t_last, imgs_since = time.time(), 0
    while state["step"] < cfg.max_steps:
        loader = make_loader(urls, enc.pre, k=cfg.k, cf_ratio=cfg.cf_ratio, use_cf=cfg.needs_cf(),
                             micro_batch=micro, seed=cfg.seed, epoch=state["epoch"],
                             skip_batches=state["batches_in_epoch"], shuffle_buffer=cfg.shuffle_buffer,
                             num_workers=cfg.num_workers, handler=skipped, rank=rank, world_size=world)
        it = iter(loader)
        exhausted = False
        fresh_epoch, step_at_start = state["batches_in_epoch"] == 0, state["step"]
        while state["step"] < cfg.max_steps and not exhausted:
            sums: dict[str, torch.Tensor] = {}         # on the device: no host sync per micro-step
            n_micro = 0
            for m in range(accum):
                b = next(it, None)
                if not all_ranks_have(b is not None, acc.device):
                    exhausted = True
                    break
                state["batches_in_epoch"] += 1
                ctx = acc.no_sync(feats) if m < accum - 1 else nullcontext()
                dev = dict(device=acc.device, non_blocking=True)
                with ctx:
                    with acc.autocast():
                        img, txt = feats(b.pixel_values.to(**dev), b.input_ids.to(**dev), b.attention_mask.to(**dev))
                    # losses in fp32, outside autocast: logits at scale up to 100 lose too much in bf16
                    losses = compute_losses(img.float(), txt.float(), b.n, b.cf_owner.to(**dev),
                                            b.cf_slot.to(**dev), b.mask, b.local, raw.logit_scale, bias, cfg)
                    acc.backward(losses["total"] / accum)
                for kname, v in losses.items():
                    sums[kname] = sums.get(kname, 0.0) + v.detach() / accum
                imgs_since += int(b.pixel_values.shape[0]) * world
                n_micro += 1
            if n_micro < accum:          # epoch ended mid-step: the partial step is dropped
                opt.zero_grad(set_to_none=True)
                break
            if not torch.isfinite(sums["total"]):      # one host sync per step, before the update
                ck = out / "checkpoints" / f"step-{state['step']:07d}-before-nonfinite"
                save_rng(ck.with_name(ck.name + ".tmp"), rank)
                if acc.is_main_process:
                    save_checkpoint(ck, raw, enc.processor, opt, sched, state)
                raise NonFiniteLoss(f"non-finite loss ({float(sums['total'])}) at step {state['step']}; "
                                    f"parameters before it are saved in {ck}")
            if cfg.grad_clip:
                acc.clip_grad_norm_(feats.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            clamp_logit_scale(raw.logit_scale, MAX_LOGIT_SCALE)
            state["step"] += 1
            state["anchors_seen"] = state.get("anchors_seen", 0) + cfg.batch_size
            bar.update(1)
            if acc.is_main_process and (state["step"] % cfg.log_every == 0 or state["step"] == cfg.max_steps):
                dt = time.time() - t_last
                rec = {"step": state["step"], "loss": float(sums["total"]), "align": float(sums["align"]),
                       "csd": float(sums["csd"]), "fcd": float(sums["fcd"]),
                       "temperature": float(1 / raw.logit_scale.detach().exp()),
                       "lr": sched.get_last_lr()[0], "images_per_s": imgs_since / max(dt, 1e-9),
                       "epoch": state["epoch"], "skipped_corrupt": skipped.skipped, "global_batch": cfg.batch_size,
                       "anchors_seen": state["anchors_seen"]}
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                if tb is not None:
                    for kname, v in rec.items():
                        tb.add_scalar(kname, v, state["step"])
                bar.set_postfix(loss=f"{rec['loss']:.3f}", ips=f"{rec['images_per_s']:.0f}")
                t_last, imgs_since = time.time(), 0
            if cfg.save_every and state["step"] % cfg.save_every == 0:
                ck = out / "checkpoints" / f"step-{state['step']:07d}"
                if acc.is_main_process:
                    shutil.rmtree(ck.with_name(ck.name + ".tmp"), ignore_errors=True)
                acc.wait_for_everyone()
                save_rng(ck.with_name(ck.name + ".tmp"), rank)
                acc.wait_for_everyone()
                if acc.is_main_process:
                    save_checkpoint(ck, raw, enc.processor, opt, sched, state)
                acc.wait_for_everyone()
        if fresh_epoch and state["step"] == step_at_start:
            raise ValueError(f"a whole epoch over {len(urls)} shard(s) ({urls[0]}, ...) gave no training step of "
                             f"{micro} x {accum} anchors per process ({skipped.skipped} corrupt sample(s) or shard(s) "
                             "skipped): too few readable samples for --batch-size/--micro-batch")
        if exhausted or state["step"] < cfg.max_steps:
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
    bar.close()
    acc.wait_for_everyone()
    if acc.is_main_process:
        raw.save_pretrained(out)
        enc.processor.save_pretrained(out)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    if tb is not None:
        tb.close()
    return {"step": state["step"], "epoch": state["epoch"], "skipped_corrupt": skipped.skipped, "out": str(out)}


def recipe_config(recipe: str | None, *overrides: dict[str, Any] | None,
                  config: dict[str, Any] | None = None) -> TrainConfig:
    """A TrainConfig: `config` (a run's settings, e.g. paper.yaml's train section), then the recipe
    (a file of loss settings under pipelines/train/, or a YAML path; by default the one `config`
    names), then overrides. The result, saved as train_config.json, is exactly the run."""
    from ..config import build, load_yaml, resolve_recipe
    recipe = recipe or (config or {}).get("recipe")
    base = load_yaml(resolve_recipe(recipe), "train") if recipe else {}
    return build(TrainConfig, config, base, *overrides)


__all__ = ["TrainConfig", "train", "compute_losses", "NonFiniteLoss", "recipe_config"]
