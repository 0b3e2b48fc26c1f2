"""The demo's stand-in for a released CLIP checkpoint: a small CLIP pretrained on a "web" split
of the scene world, calibrated so that, like real CLIP, it recognises objects and attributes
well and is weak at binding and spatial relations.

What makes the profile realistic (each measured; see the README's calibration table):
- shapes a small ViT can see (square, ring, cross, triangle differ at patch scale);
- web-like captions: with probability `object_only_prob` a caption names the objects and the
  relation but not their colours ("a ring to the left of a large square"), as alt-text often
  does; without these, colour alone solves every in-batch contrast and shape is never learned;
- the web split covers every colour-shape pair (real CLIP has seen red triangles); the held-out
  pairs are held out of the fine-tuning data and its counterfactuals, never of pretraining;
- weak, not blind, on relations: a grounding head (`GroundingHead`) and relation twins in the
  batch let the embedding keep where things are, and the checkpoint is taken while the relation
  words are being learned (`stop_frac`), as real CLIP sits a little above chance on them.

Pretraining runs in memory (rendered pixels, tokens computed once), with the same align loss
as the trainer, and records a curve of the held-out profile every `eval_every` steps.
"""
from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..eval.benchmarks import world_accuracy
from ..io.images import decode_rgb, encode_image
from ..train.model import image_features, text_features
from ..world.generate import WorldConfig, load_test_items
from ..world.scene import COLORS, RELATIONS, SHAPES, Scene, article, caption, render


@dataclass
class PretrainConfig:
    backbone: str = "clip"             # clip | vlm (a LLaVA-architecture VLM whose vision tower starts
                                       # from the released stand-in CLIP; E5-V prompt embeddings)
    vlm_pooling: str = "last"          # the VLM's embedding: E5-V's last token, or the mean (cfgen/train/vlm.py)
    steps: int = 5000                  # length of the learning-rate schedule
    stop_frac: float = 0.62            # the checkpoint is taken at this fraction of the schedule (< 1: mid-schedule,
                                       # here while relations are being learned; bench/relations.md, session 14)
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 100
    web_n: int = 20_000                # web-split scenes (cycled over); recorded as "n" in pretrain.json
    web_seed: int = 0                  # the web split does not depend on the world seed: one stand-in for all
    object_only_prob: float = 0.75     # captions that name objects without their colours
    twin_prob: float = 0.5             # a scene's batch neighbour is its twin (`twin_kind`)
    twin_kind: str = "relation"        # shape: one object's shape changed | relation: the pair's places swapped
    ground_weight: float = 65.0        # weight of the grounding head's loss (`GroundingHead`; 0: none)
    image_size: int = 64
    patch_size: int = 8
    width: int = 64
    layers: int = 3
    text_width: int = 64
    text_layers: int = 2
    seed: int = 0                      # initialisation and batch order
    eval_every: int = 200
    threads: int = 0                   # torch threads (0: torch's default)

    def __post_init__(self) -> None:
        if not 0.0 < self.stop_frac <= 1.0:
            raise ValueError(f"pretrain option stop_frac: {self.stop_frac} is not in (0, 1]")
        if self.twin_kind not in ("shape", "relation"):
            raise ValueError(f"pretrain option twin_kind: {self.twin_kind!r} is not one of shape, relation")
        if self.ground_weight and self.backbone != "clip":
            raise ValueError("pretrain option ground_weight: the grounding head is for the clip backbone only")

    @classmethod
    def released(cls, backbone: str = "clip") -> "PretrainConfig":
        """The settings the released stand-in of `backbone` was pretrained with."""
        released_dir(backbone)
        return cls(backbone=backbone, **RELEASED_SETTINGS[backbone])

    def recipe(self) -> dict[str, Any]:
        """What decides the weights (not how often the curve is taken, nor the thread count), as
        pretrain.json records it (web_n under its recorded name "n", as the released stand-ins have it)."""
        return {("n" if k == "web_n" else k): v for k, v in asdict(self).items() if k not in ("eval_every", "threads")}

    def last_step(self) -> int:
        """The step the checkpoint is taken at."""
        return max(1, round(self.steps * self.stop_frac))

    def length(self) -> str:
        """How long it pretrains, as the demo reports it."""
        last = self.last_step()
        return f"{last} steps" if last == self.steps else f"{last} of {self.steps} scheduled steps"


# The released stand-ins: pretrained once with the default PretrainConfig (per backbone) on the
# default world's web split (bench/calibrate.py --release rebuilds them) and shipped in the wheel,
# as released checkpoints are: the demo fine-tunes one instead of spending minutes pretraining.
RELEASED = Path(__file__).with_name("standin")
RELEASED_VLM = Path(__file__).with_name("standin-vlm")
BACKBONES = {"clip": RELEASED, "vlm": RELEASED_VLM}
# Where a backbone's released stand-in departs from the PretrainConfig defaults (calibrated per
# backbone from the pretrained model's held-out profile alone; see the README).
# The VLM's recipe is pinned in full, so the CLIP's defaults can move (to the grounding head, which
# is for a CLIP only) without changing it; its weights hold the tower of the CLIP it started from.
RELEASED_SETTINGS: dict[str, dict[str, Any]] = {
    "clip": {},
    "vlm": {"steps": 2500, "stop_frac": 1.0, "object_only_prob": 0.5, "twin_prob": 0.0, "twin_kind": "shape", "ground_weight": 0.0}}
# The world settings that shape the web split (the seed, sizes and held-out pairs do not).
WEB_WORLD_FIELDS = ("image_size", "distractor_prob", "size_mention_prob", "jpeg_quality", "relations", "form_probs")


def released_dir(backbone: str) -> Path:
    """Where the released stand-in of `backbone` lives (an unknown backbone is an error)."""
    if backbone not in BACKBONES:
        raise ValueError(f"pretrain option backbone: {backbone!r} is not one of {', '.join(BACKBONES)}")
    return BACKBONES[backbone]


def web_world(world: WorldConfig) -> dict[str, Any]:
    return {k: getattr(world, k) for k in WEB_WORLD_FIELDS}


def released_stand_in(world: WorldConfig, cfg: PretrainConfig) -> tuple[Path | None, str]:
    """The shipped checkpoint when it was pretrained exactly as (world, cfg) asks, else (None, why)."""
    info_file = released_dir(cfg.backbone) / "pretrain.json"
    if not info_file.is_file():
        return None, f"no released stand-in at {info_file.parent}"
    info = json.loads(info_file.read_text())
    if info.get("recipe") != json.loads(json.dumps(cfg.recipe())):
        return None, "the pretraining settings differ from the released stand-in's"
    if info.get("world") != json.loads(json.dumps(web_world(world))):
        return None, "the world's scene settings differ from the released stand-in's"
    return info_file.parent, ""


def copy_stand_in(src: Path, out: str | Path) -> dict[str, Any]:
    """Copy a stand-in directory to `out` (atomically: a killed copy leaves no half directory)."""
    out = Path(out)
    if not (out / "pretrain.json").exists():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return json.loads((out / "pretrain.json").read_text())


def web_caption(text: str, rng: random.Random, object_only_prob: float) -> str:
    """A world caption, or with probability `object_only_prob` the same caption without colours."""
    if rng.random() >= object_only_prob:
        return text
    words = [w for w in text.split() if w not in COLORS]
    for i, w in enumerate(words[:-1]):
        if w in ("a", "an"):
            words[i] = article(words[i + 1])
    return " ".join(words)


def shape_twin(scene: Scene, rng: random.Random) -> Scene:
    """The same scene with one named object's shape changed (both objects of a "two" scene).

    Near-duplicate web images that differ in what the object is: the contrast that makes a
    model look at shape, without ever contrasting which colour goes with which object."""
    objs = list(scene.objects)
    i = 0 if scene.form != "pair" else rng.randrange(2)
    new = rng.choice([s for s in SHAPES if s != objs[i].shape])
    for j in ([0, 1] if scene.form == "two" else [i]):
        objs[j] = replace(objs[j], shape=new)
    return replace(scene, objects=objs)


def relation_twin(scene: Scene, rng: random.Random) -> Scene:
    """A pair scene with its two named objects' places swapped and the relation flipped (the caption
    changes in the relation word only); any other scene comes back as it is, and `web_corpus` draws
    a new scene in its place.

    Near-duplicate web images that only where things are tells apart: once the image side keeps
    position (`GroundingHead`), the contrast that teaches the text side its relation words."""
    if scene.form != "pair":
        return scene
    a, b = scene.objects[0], scene.objects[1]
    return replace(scene, objects=[replace(a, x=b.x, y=b.y), replace(b, x=a.x, y=a.y)] + list(scene.objects[2:]),
                   rel=RELATIONS[scene.rel])


TWINS: dict[str, Callable[[Scene, random.Random], Scene]] = {"shape": shape_twin, "relation": relation_twin}


def web_corpus(world: WorldConfig, cfg: PretrainConfig) -> tuple[list[Any], list[str], list[Scene]]:
    """The web split: every colour-shape pair, the world's scene and caption distribution.
    Entries 2j and 2j+1 are twins (`twin_kind`) with probability `twin_prob` (kept in one batch).
    Seeded by `web_seed` alone, never by the world seed or its held-out pairs, so one pretrained
    stand-in serves every world seed, as one released CLIP serves every benchmark."""
    every = [(c, s) for c in COLORS for s in SHAPES]
    images, texts, scenes = [], [], []
    prev: Scene | None = None
    for i in range(cfg.web_n):
        rng = random.Random(f"web-{cfg.web_seed}-{i}")
        if i % 2 and prev is not None and cfg.twin_prob and rng.random() < cfg.twin_prob:
            scene = TWINS[cfg.twin_kind](prev, rng)
            if scene is prev:
                scene = world.scene(rng, every)
        else:
            scene = world.scene(rng, every)
        prev = scene
        scenes.append(scene)
        images.append(decode_rgb(encode_image(render(scene, world.image_size), "jpg", world.jpeg_quality)))
        texts.append(web_caption(caption(scene), rng, cfg.object_only_prob))
    return images, texts, scenes


class GroundingHead(torch.nn.Module):
    """A linear head on the normalised image embedding that regresses where each colour and each
    shape lies in the scene (x and y of the centre, -0.5..0.5; the mean over objects that share it).

    Grounded pretraining, as region-supervised CLIPs have: contrastive pretraining alone leaves this
    small ViT's embedding a bag of patches (bench/relations.md), so it can never learn a relation
    word; the head makes the embedding keep where things are, and the text side still learns from
    the captions alone what "left of" means. Trained beside InfoNCE, then discarded: the checkpoint
    stays a plain CLIP. Relation is learned in a jump from chance to 80+ within a few hundred steps,
    whose timing varies with the weight and the seed (bench/relations.md, sessions 12-14), so the
    released stand-in is the checkpoint taken during that jump (`stop_frac`)."""

    FEATURES = tuple(COLORS) + SHAPES

    def __init__(self, dim: int, scenes: list[Scene], weight: float):
        super().__init__()
        self.linear = torch.nn.Linear(dim, 2 * len(self.FEATURES))
        self.weight = weight
        target = torch.zeros(len(scenes), len(self.FEATURES), 2)
        count = torch.zeros(len(scenes), len(self.FEATURES), 1)
        index = {f: i for i, f in enumerate(self.FEATURES)}
        for n, scene in enumerate(scenes):
            for o in scene.objects:
                for f in self.features_of(o):
                    target[n, index[f]] += torch.tensor([o.x - 0.5, o.y - 0.5])
                    count[n, index[f]] += 1
        self.register_buffer("target", (target / count.clamp(min=1)).flatten(1), persistent=False)
        self.register_buffer("present", (count > 0).expand(-1, -1, 2).flatten(1).float(), persistent=False)

    @staticmethod
    def features_of(o: Any) -> tuple[str, ...]:
        """Which of FEATURES an object locates."""
        return (o.color, o.shape)

    def forward(self, idx: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        err = (self.linear(img) - self.target[idx]) ** 2 * self.present[idx]
        return self.weight * err.sum() / self.present[idx].sum().clamp(min=1)


def web_inputs(pre: Any, images: list[Any], texts: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The web split as the model's inputs, pixels made 2,000 images at a time (the pretraining loop
    indexes them in memory)."""
    pixels = torch.cat([pre.pixels(images[i:i + 2000]) for i in range(0, len(images), 2000)])
    return pixels, pre.tokens(texts)


def held_out_test(pre: Any, world_dir: str | Path) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """A world's held-out test items and their pixels, for `profile`."""
    tests = list(load_test_items(sorted(str(p) for p in (Path(world_dir) / "test").glob("*.tar"))))
    return tests, pre.pixels([decode_rgb(t["image"]) for t in tests])


@torch.no_grad()
def profile(model: Any, pre: Any, items: list[dict[str, Any]], pixels: torch.Tensor) -> dict[str, float]:
    """Held-out test accuracy (%) per split and test type: S(image, true) > S(image, negative)."""
    was = model.training
    model.eval()
    img = F.normalize(image_features(model, pixels), dim=-1)
    rows: list[tuple[str, str, bool]] = []
    for typ in ("binding_swap", "relation_swap", "replace_color", "replace_shape"):
        idx = [i for i, it in enumerate(items) if typ in it["tests"]]
        texts = [items[i]["caption"] for i in idx] + [items[i]["tests"][typ] for i in idx]
        tok = pre.tokens(texts)
        txt = F.normalize(text_features(model, tok["input_ids"], tok.get("attention_mask")), dim=-1)
        pos, neg = txt[: len(idx)], txt[len(idx):]
        ok = ((img[idx] * pos).sum(-1) > (img[idx] * neg).sum(-1)).tolist()
        rows += [("unseen" if items[i]["heldout"] else "seen", typ, o) for i, o in zip(idx, ok)]
    model.train(was)
    return {k: round(100 * a, 1) for k, (a, _) in sorted(world_accuracy(rows).items())}


def align_steps(model: Any, pixels: torch.Tensor, tok: dict[str, torch.Tensor], cfg: PretrainConfig, stop: int,
                every: int, on_eval: Callable[[int, float], None],
                extra_loss: torch.nn.Module | None = None) -> None:
    """The pretraining loop (InfoNCE on the web split, on the schedule of `cfg.steps`) up to step
    `stop`, calling `on_eval(step, loss)` every `every` steps and at `stop`: one loop for
    `pretrain_stand_in` and the relation study (bench/relations.py), which stops early. An
    `extra_loss(batch indices, normalised image embeddings)` module (the grounding head) adds to each
    step's loss and is trained with the model."""
    from transformers import get_cosine_schedule_with_warmup
    from ..train.losses import align_loss, clamp_logit_scale
    torch.manual_seed(cfg.seed)
    params = list(model.parameters()) + (list(extra_loss.parameters()) if extra_loss is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    sched = get_cosine_schedule_with_warmup(opt, cfg.warmup, cfg.steps)
    g = torch.Generator().manual_seed(cfg.seed)
    n_batches = cfg.web_n // cfg.batch          # with twins, batches take pairs (2j, 2j+1): twins meet in a batch
    model.train()
    for step in range(stop):
        if step % n_batches == 0 and cfg.twin_prob:
            pairs = torch.randperm(cfg.web_n // 2, generator=g)
            order = torch.stack([2 * pairs, 2 * pairs + 1], 1).reshape(-1)
        elif step % n_batches == 0:
            order = torch.randperm(cfg.web_n, generator=g)
        idx = order[(step % n_batches) * cfg.batch:(step % n_batches + 1) * cfg.batch]
        img = F.normalize(image_features(model, pixels[idx]), dim=-1)
        txt = F.normalize(text_features(model, tok["input_ids"][idx], tok["attention_mask"][idx]), dim=-1)
        loss = align_loss(img, txt, model.logit_scale)
        if extra_loss is not None:
            loss = loss + extra_loss(idx, img)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        clamp_logit_scale(model.logit_scale)
        if (step + 1) % every == 0 or step + 1 == stop:
            on_eval(step + 1, float(loss.detach()))


def pretrain_stand_in(out: str | Path, world_dir: str | Path, world: WorldConfig, cfg: PretrainConfig,
                      log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Build, pretrain and save the stand-in (CLIP, or a VLM) in `out` (skipped when it is already there)."""
    from .clip import build_clip
    from .vlm import build_world_vlm
    from ..train.model import DualEncoder
    from ..world import world_words
    out = Path(out)
    done = out / "pretrain.json"
    if done.exists():
        return json.loads(done.read_text())
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.time()
    init = out.with_name(out.name + ".init")
    if cfg.backbone == "vlm":                  # as LLaVA starts from a released CLIP
        clip = RELEASED if (RELEASED / "pretrain.json").is_file() else None
        build_world_vlm(init, words=world_words(), clip=clip, image_size=cfg.image_size, patch_size=cfg.patch_size,
                        width=cfg.width, layers=cfg.layers, lm_width=cfg.text_width, lm_layers=cfg.text_layers,
                        pooling=cfg.vlm_pooling, seed=cfg.seed)
    else:
        build_clip(init, words=world_words(), image_size=cfg.image_size, patch_size=cfg.patch_size, width=cfg.width,
                   layers=cfg.layers, text_width=cfg.text_width, text_layers=cfg.text_layers, seed=cfg.seed)
    enc = DualEncoder.load(init)
    model, pre = enc.model, enc.pre
    images, texts, scenes = web_corpus(world, cfg)
    pixels, tok = web_inputs(pre, images, texts)
    head = GroundingHead(model.config.projection_dim, scenes, cfg.ground_weight) if cfg.ground_weight else None
    tests, test_px = held_out_test(pre, world_dir)
    curve: list[dict[str, Any]] = []

    def record(step: int, loss: float) -> None:
        rec = {"step": step, "loss": round(loss, 4), **profile(model, pre, tests, test_px)}
        curve.append(rec)
        log(f"[pretrain] step {rec['step']}: " + ", ".join(f"{k} {v}" for k, v in rec.items() if ":" in k))

    align_steps(model, pixels, tok, cfg, cfg.last_step(), cfg.eval_every, record, extra_loss=head)
    enc.save(out)
    info = {"config": asdict(cfg), "recipe": cfg.recipe(), "world": web_world(world),
            "seconds": round(time.time() - t0, 1), "curve": curve, "profile": curve[-1]}
    done.write_text(json.dumps(info, indent=1))
    return info
