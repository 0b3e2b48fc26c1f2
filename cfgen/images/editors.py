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


class SceneEditor:
    """Exact edits of the scene world: parse the rewrite back into a scene and render it.

    The counterfactual keeps the anchor's own pixels outside the changed region, so it differs
    from the anchor only inside the mask. Rewrites that would show a held-out colour-shape pair
    are rejected: training counterfactuals must not leak the held-out test combinations.
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
            pixels = np.where(m[..., None], cf, anchor_px)
            out.append(EditResult(r.i, image=encode_image(pixels, self.image_format, self.quality),
                                  mask_box=mask_box(m), scope=r.edit.scope if r.edit else "local",
                                  seed=seed, extra={"scene": new.to_dict(), "mask_pixels": int(m.sum())}))
        return out
