"""`cfgen world`: write the scene world as img2dataset-format shards plus a held-out test split.

Layout: `OUT/world.json`, `OUT/train/NNNNN.tar` (anchors; colour-shape pairs of the held-out
set never appear), `OUT/test/NNNNN.tar` (each sample's json lists negative captions per test:
binding swap, relation swap, replace colour / shape, and whether it uses a held-out pair).
Every sample is a pure function of (seed, split, index), so output is deterministic.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from ..io.writer import AtomicTarWriter, atomic_write_json, remove_stale_tmp
from ..io.images import encode_image
from .scene import COLORS, RELATIONS, SHAPES, Scene, caption, heldout_combos, render, sample_scene

TEST_TYPES = ("binding_swap", "relation_swap", "replace_color", "replace_shape")


@dataclass
class WorldConfig:
    n: int = 10_000
    n_test: int = 1_000
    seed: int = 0
    image_size: int = 64
    per_shard: int = 1_000
    n_heldout: int = 6
    distractor_prob: float = 0.5
    size_mention_prob: float = 0.5
    jpeg_quality: int = 95
    relations: list[str] = field(default_factory=lambda: list(RELATIONS))
    form_probs: list[float] = field(default_factory=lambda: [0.15, 0.75, 0.10])   # single, pair, two
    heldout: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.heldout:
            self.heldout = [list(c) for c in heldout_combos(self.seed, self.n_heldout)]

    def scene(self, rng: random.Random, allowed: list[tuple[str, str]], **over: Any) -> Scene:
        """A scene drawn with this world's caption forms, distractors, size mentions and relations."""
        kw: dict[str, Any] = dict(form_probs=tuple(self.form_probs), distractor_prob=self.distractor_prob,
                                  size_mention_prob=self.size_mention_prob, relations=tuple(self.relations))
        return sample_scene(rng, allowed, **{**kw, **over})

    def combos(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        held = [tuple(c) for c in self.heldout]
        allowed = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in held]
        return allowed, held  # type: ignore[return-value]


def _rng(cfg: WorldConfig, split: str, idx: int) -> random.Random:
    return random.Random(f"world-{cfg.seed}-{split}-{idx}")


def _meta(key: str, cap: str, img: bytes, cfg: WorldConfig, scene: Scene, **extra: Any) -> dict[str, Any]:
    return {"url": f"world://{key}", "caption": cap, "key": key, "status": "success",
            "error_message": None, "width": cfg.image_size, "height": cfg.image_size,
            "original_width": cfg.image_size, "original_height": cfg.image_size,
            "sha256": hashlib.sha256(img).hexdigest(), "scene": scene.to_dict(),
            "world": {"heldout": cfg.heldout, "image_size": cfg.image_size}, **extra}


def _sample(key: str, scene: Scene, cfg: WorldConfig, **extra: Any) -> dict[str, Any]:
    cap = caption(scene)
    img = encode_image(render(scene, cfg.image_size), "jpg", cfg.jpeg_quality)
    meta = _meta(key, cap, img, cfg, scene, **extra)
    return {"__key__": key, "jpg": img, "txt": cap.encode(),
            "json": json.dumps(meta, sort_keys=True).encode()}


def train_sample(cfg: WorldConfig, idx: int, shard: int) -> dict[str, Any]:
    allowed, _ = cfg.combos()
    scene = cfg.scene(_rng(cfg, "train", idx), allowed)
    return _sample(f"{shard:05d}{idx % cfg.per_shard:04d}", scene, cfg)


def negatives(scene: Scene, rng: random.Random) -> dict[str, str]:
    """Negative captions for each compositional test (pair scenes only)."""
    a, b = scene.objects[0], scene.objects[1]
    out: dict[str, str] = {}
    if a.color != b.color:
        out["binding_swap"] = caption(replace(scene, objects=[replace(a, color=b.color), replace(b, color=a.color)]
                                              + scene.objects[2:]))
    out["relation_swap"] = caption(replace(scene, rel=RELATIONS[scene.rel]))
    other_colors = [c for c in COLORS if c not in (a.color, b.color)]
    out["replace_color"] = caption(replace(scene, objects=[replace(a, color=rng.choice(other_colors))]
                                           + scene.objects[1:]))
    other_shapes = [s for s in SHAPES if s not in (a.shape, b.shape)]
    out["replace_shape"] = caption(replace(scene, objects=[replace(a, shape=rng.choice(other_shapes))]
                                           + scene.objects[1:]))
    return out


def test_sample(cfg: WorldConfig, idx: int, shard: int) -> dict[str, Any]:
    """Even indices: the first named object is a held-out pair; odd: only seen pairs."""
    allowed, held = cfg.combos()
    rng = _rng(cfg, "test", idx)
    unseen = idx % 2 == 0
    scene = cfg.scene(rng, allowed, must_include=held if unseen else None, form_probs=(0.0, 1.0, 0.0))
    return _sample(f"{shard:05d}{idx % cfg.per_shard:04d}", scene, cfg,
                   tests=negatives(scene, rng), heldout=unseen)


def _write_split(out: Path, split: str, n: int, cfg: WorldConfig, make) -> list[str]:
    paths = []
    n_shards = (n + cfg.per_shard - 1) // cfg.per_shard
    with tqdm(total=n, desc=f"world {split}", unit="img") as bar:
        for shard in range(n_shards):
            path = out / split / f"{shard:05d}.tar"
            lo, hi = shard * cfg.per_shard, min(n, (shard + 1) * cfg.per_shard)
            if not path.exists():
                with AtomicTarWriter(path) as w:
                    for idx in range(lo, hi):
                        w.write(make(cfg, idx, shard))
            bar.update(hi - lo)
            paths.append(str(path))
    return paths


def generate_world(out: str | Path, cfg: WorldConfig) -> dict[str, Any]:
    """Write (or finish writing) the world; existing complete shards of the same config are kept."""
    out = Path(out)
    info = {"config": asdict(cfg)}
    wj = out / "world.json"
    if wj.exists() and json.loads(wj.read_text()).get("config") != info["config"]:
        raise ValueError(f"{out} holds a world with another config; choose a new --out")
    atomic_write_json(wj, info)
    for split in ("train", "test"):
        remove_stale_tmp(out / split)
    info["train"] = _write_split(out, "train", cfg.n, cfg, train_sample)
    info["test"] = _write_split(out, "test", cfg.n_test, cfg, test_sample)
    return info


def load_test_items(paths: list[str]) -> Iterator[dict[str, Any]]:
    """Test items: {key, image (bytes), caption, tests: {type: negative}, heldout}."""
    import webdataset as wds
    for s in wds.WebDataset([str(Path(p).resolve()) for p in paths], shardshuffle=False):
        meta = json.loads(s["json"])
        yield {"key": s["__key__"], "image": s["jpg"], "caption": s["txt"].decode(),
               "tests": meta["tests"], "heldout": meta["heldout"]}
