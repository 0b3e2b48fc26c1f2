"""Editors turn (anchor image, rewrite) into a counterfactual image. One interface:

    editor.edit(anchor, rewrites, seeds) -> [EditResult]

`scene` renders the scene world exactly; `sdxl` (images/sdxl.py) inpaints with SDXL.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from ..datamodel import Anchor, Rewrite, Status
from ..io.images import decode_rgb, encode_image
from ..seeds import stable_seed


@dataclass
class EditResult:
    i: int                       # rewrite index
    image: bytes | None = None   # encoded counterfactual image
    status: Status = Status.GENERATED
    reason: str = ""
    mask_box: list[int] | None = None
    scope: str = ""              # the scope actually used (a local edit with no mask becomes global)
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Editor(Protocol):
    """What the images stage asks of an editor (tests/test_editor_contract.py runs it over each):
    `edit` one anchor's rewrites; `edit_many` several anchors' at once (an editor that cannot
    batch across anchors edits them one by one); `batch_size`, the edits it generates together,
    which the stage fills by grouping anchors (1: no grouping)."""

    name: str
    batch_size: int

    def edit(self, anchor: Anchor, rewrites: list[Rewrite], seeds: list[int],
             batch_size: int | None = None) -> list[EditResult]: ...

    def edit_many(self, jobs: list[tuple[Anchor, list[Rewrite], list[int]]],
                  batch_size: int | None = None) -> list[list[EditResult]]: ...


def edit_seed(seed: int, key: str, i: int) -> int:
    """Seed of counterfactual (key, i): any single image can be reproduced alone."""
    return stable_seed(seed, key, i)


# An anchor is not the render of its scene metadata when the mean colour of some 8x8 block differs
# by more than this (0-255). JPEG moves block means little (world seed 3, 300 renders: at most 14
# at quality 95, 31 at quality 30: chroma subsampling at saturated edges); a different scene moves
# some block by 75 or more (299 pairs of consecutive scenes: min 74.6, 5th percentile 135).
SCENE_MISMATCH_BLOCK = 45.0


def _block_means(px: np.ndarray, b: int = 8) -> np.ndarray:
    h, w = px.shape[0] // b * b, px.shape[1] // b * b
    return px[:h, :w].astype(np.float32).reshape(h // b, b, w // b, b, -1).mean(axis=(1, 3))


class SceneEditor:
    """Exact edits of the scene world: parse the rewrite back into a scene and render it.

    The counterfactual IS the world's own render of the rewritten scene (`world.scene.render`),
    pixel for pixel before encoding; nothing of the anchor's decoded pixels is kept. (Pasting the
    render into the anchor's JPEG-decoded pixels inside the changed region left the anchor's JPEG
    ringing of a removed or moved object outside it: a faint ghost, issue #29.) The clean renders
    of anchor and counterfactual differ exactly inside the mask (`mask_box`, `mask_pixels`: the
    changed region). An anchor whose pixels are not the render of its scene metadata is rejected
    (`scene_mismatch`), so a counterfactual is never the render of another image's scene.
    Rewrites that would show a held-out colour-shape pair are rejected: training counterfactuals
    must not leak the held-out test combinations.
    """

    name = "scene"
    batch_size = 1                       # renders are cheap: no grouping of anchors

    def __init__(self, image_format: str = "jpg", quality: int = 95):
        self.image_format = image_format
        self.quality = quality

    def edit_many(self, jobs: list[tuple[Anchor, list[Rewrite], list[int]]],
                  batch_size: int | None = None) -> list[list[EditResult]]:
        return [self.edit(a, rws, seeds) for a, rws, seeds in jobs]

    def edit(self, anchor: Anchor, rewrites: list[Rewrite], seeds: list[int],
             batch_size: int | None = None) -> list[EditResult]:
        from ..world.scene import NotRenderable, Scene, apply_caption, diff_mask, mask_box, render
        scene_d = anchor.meta.get("scene")
        if scene_d is None:
            return [EditResult(r.i, status=Status.REJECTED, reason="no_scene_metadata", seed=s)
                    for r, s in zip(rewrites, seeds)]
        scene = Scene.from_dict(scene_d)
        world = anchor.meta.get("world", {})
        held = {tuple(c) for c in world.get("heldout", [])}
        anchor_px = np.asarray(decode_rgb(anchor.image))
        size = anchor_px.shape[1]            # the image's own size, never the metadata's claim
        if anchor_px.shape[0] != size or int(world.get("image_size", size)) != size:
            return [EditResult(r.i, status=Status.REJECTED, reason="image_size_mismatch", seed=s)
                    for r, s in zip(rewrites, seeds)]
        base = render(scene, size)
        if np.abs(_block_means(anchor_px) - _block_means(base)).max(initial=0.0) > SCENE_MISMATCH_BLOCK:
            return [EditResult(r.i, status=Status.REJECTED, reason="scene_mismatch", seed=s)
                    for r, s in zip(rewrites, seeds)]
        out = []
        for r, seed in zip(rewrites, seeds):
            try:
                new = apply_caption(scene, r.text, random.Random(seed))
            except NotRenderable as e:
                out.append(EditResult(r.i, status=Status.REJECTED, reason="not_renderable", seed=seed,
                                      extra={"detail": str(e)}))
                continue
            if {o.combo for o in new.objects} & held:
                out.append(EditResult(r.i, status=Status.REJECTED, reason="heldout_combination", seed=seed))
                continue
            cf = render(new, size)
            m = diff_mask(base, cf)
            if not m.any():
                out.append(EditResult(r.i, status=Status.REJECTED, reason="no_visible_change", seed=seed))
                continue
            out.append(EditResult(r.i, image=encode_image(cf, self.image_format, self.quality),
                                  mask_box=mask_box(m), scope=r.edit.scope if r.edit else "local",
                                  seed=seed, extra={"scene": new.to_dict(), "mask_pixels": int(m.sum())}))
        return out
