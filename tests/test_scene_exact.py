"""Scene counterfactuals are exact (issue #29 item 0): every counterfactual the scene editor makes
is the world's own render of its caption's scene, pixel for pixel before encoding, and carries no
ghost of a removed or moved object.

The editor used to paste the render of the new scene into the anchor's JPEG-decoded pixels inside
the changed region; outside it the anchor's JPEG ringing of the old object stayed ("two yellow
rings" -> "one yellow ring" kept a pale second ring). `_pasted` below is that behaviour, kept as
the reference the ghost check is measured against.

Tolerance after JPEG: a fixed bound on the per-pixel error says little here: the world's own
quality-95 JPEG of a render is up to ~130 levels off at saturated colour edges (4:2:0 chroma
subsampling), so any bound loose enough for the codec would let a ghost through. The tolerance is
therefore the codec's own error on that very render: a counterfactual may be as far from
`render(new)` as `encode_image(render(new), "jpg", 95)` decodes to, per pixel at most, and no
further on average at the old object's place.
"""
from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest

from cfgen.datamodel import Anchor, Edit, Rewrite, Status
from cfgen.images.editors import SceneEditor
from cfgen.io.images import decode_rgb, encode_image
from cfgen.world.generate import WorldConfig, _sample
from cfgen.world.scene import (COLORS, RELATIONS, SHAPES, Parsed, Scene, caption, caption_of, diff_mask,
                               mask_box, parse_caption, render)

SIZE = 64
N_PER_FORM = 30               # scenes per caption form (single, pair, two): ~480 rewrites in all


def _world() -> tuple[WorldConfig, list[Anchor]]:
    """A small world built in code: anchors encoded exactly as `cfgen world` writes them."""
    cfg = WorldConfig(seed=3, image_size=SIZE)
    allowed, _ = cfg.combos()
    anchors = []
    for f, probs in enumerate([(1, 0, 0), (0, 1, 0), (0, 0, 1)]):
        rng = random.Random(f"exact-{f}")
        for i in range(N_PER_FORM):
            s = _sample(f"{f}{i:04d}", cfg.scene(rng, allowed, form_probs=probs), cfg)
            anchors.append(Anchor(s["__key__"], s["txt"].decode(), s["jpg"], meta=json.loads(s["json"])))
    return cfg, anchors


def _rewrites(key: str, scene: Scene) -> list[Rewrite]:
    """Every edit type the world can render: colour and shape (first object, every other value),
    size, quantity (a <-> two), position (the relation flipped) and the binding swap."""
    p = parse_caption(caption(scene))
    out: list[tuple[str, str, str, Parsed]] = []
    (s0, c0, h0), rest = p.nps[0], list(p.nps[1:])
    out += [("color", c0, c, replace(p, nps=tuple([(s0, c, h0)] + rest))) for c in COLORS if c != c0]
    out += [("shape", h0, h, replace(p, nps=tuple([(s0, c0, h)] + rest))) for h in SHAPES if h != h0]
    size = scene.objects[0].size
    other = "small" if size == "large" else "large"
    out.append(("size", size, other, replace(p, nps=tuple([(other, c0, h0)] + rest))))
    if p.form in ("single", "two"):
        out.append(("quantity", "a" if p.form == "single" else "two", "two" if p.form == "single" else "one",
                    replace(p, form="two" if p.form == "single" else "single")))
    if p.form == "pair":
        out.append(("position", p.rel, RELATIONS[p.rel], replace(p, rel=RELATIONS[p.rel])))
        (s1, c1, h1), = rest
        if c1 != c0:
            out.append(("swap", c0, c1, replace(p, nps=((s0, c1, h0), (s1, c0, h1)))))
    return [Rewrite(key, i, caption_of(q), Status.KEPT, edit=Edit(t, f, to, "local"))
            for i, (t, f, to, q) in enumerate(out)]


def _pasted(anchor: Anchor, new: Scene, fmt: str = "jpg") -> bytes:
    """The pre-fix counterfactual: the new render pasted into the anchor's decoded pixels inside
    the changed region only."""
    base, cf = render(Scene.from_dict(anchor.meta["scene"]), SIZE), render(new, SIZE)
    m = diff_mask(base, cf)
    return encode_image(np.where(m[..., None], cf, np.asarray(decode_rgb(anchor.image))), fmt, 95)


def _px(b: bytes) -> np.ndarray:
    return np.asarray(decode_rgb(b)).astype(np.int16)


def _old_place(old: Scene, new: Scene) -> np.ndarray:
    """Where an object of the old scene that the new one lacks (removed, moved, recoloured,
    reshaped, resized) was, with the 2-pixel border its JPEG ringing reaches, and where the new
    render shows background: where a ghost of it would show."""
    gone = [o for o in old.objects if o not in new.objects]
    ref = render(new, SIZE)
    out = np.zeros((SIZE, SIZE), bool)
    for o in gone:
        alone = np.any(render(Scene([o], bg=old.bg, form="single"), SIZE) != old.bg, axis=-1)
        grown = alone.copy()
        for _ in range(2):
            g = grown.copy()
            g[1:] |= grown[:-1]; g[:-1] |= grown[1:]; g[:, 1:] |= grown[:, :-1]; g[:, :-1] |= grown[:, 1:]
            grown = g
        out |= grown
    return out & np.all(ref == old.bg, axis=-1)


@pytest.fixture(scope="module")
def edited():
    """(anchor, rewrite, jpg result, png result) for every rewrite of every anchor."""
    _, anchors = _world()
    jpg, png = SceneEditor(), SceneEditor(image_format="png")
    out = []
    for a in anchors:
        rws = _rewrites(a.key, Scene.from_dict(a.meta["scene"]))
        seeds = [1000 + r.i for r in rws]
        out += list(zip([a] * len(rws), rws, jpg.edit(a, rws, seeds), png.edit(a, rws, seeds)))
    return out


def test_every_edit_type_is_exercised(edited):
    made = [(r.edit.type, r.edit.from_) for _, r, j, _ in edited if j.status == Status.GENERATED]
    types = {t for t, _ in made}
    assert {"color", "shape", "size", "quantity", "position", "swap"} <= types
    assert sum(t == "quantity" and f == "two" for t, f in made) >= 15       # removals (the ghost's case)
    assert sum(t == "position" for t, _ in made) >= 15                     # moves
    assert len(made) >= 300


def test_counterfactual_is_the_render_of_its_caption_pixel_for_pixel(edited):
    """PNG (lossless): the counterfactual decodes to render(new scene) exactly; the new scene is
    the rewrite's caption; mask_box and mask_pixels are exactly the region where the clean renders
    of anchor and counterfactual differ."""
    n = 0
    for a, rw, _, p in edited:
        if p.status != Status.GENERATED:
            continue
        new, old = Scene.from_dict(p.extra["scene"]), Scene.from_dict(a.meta["scene"])
        assert caption(new) == rw.text
        ref = render(new, SIZE)
        assert np.array_equal(np.asarray(decode_rgb(p.image)), ref), rw.text
        m = diff_mask(render(old, SIZE), ref)
        assert p.mask_box == mask_box(m) and p.extra["mask_pixels"] == int(m.sum())
        n += 1
    assert n >= 300


def test_jpeg_counterfactual_is_within_the_codecs_own_error_and_shows_no_ghost(edited):
    """JPEG (the default): per pixel never further from render(new) than the world's own JPEG of
    that render is; at the old object's place no further on average than that JPEG (+0.5 level);
    and, over all removals and moves, the error there well below the pre-fix paste's."""
    worst_excess, ghost = 0, {"now": [], "paste": [], "codec": []}
    for a, rw, j, _ in edited:
        if j.status != Status.GENERATED:
            continue
        new, old = Scene.from_dict(j.extra["scene"]), Scene.from_dict(a.meta["scene"])
        ref = render(new, SIZE).astype(np.int16)
        err = np.abs(_px(j.image) - ref)
        codec = np.abs(_px(encode_image(render(new, SIZE), "jpg", 95)) - ref)
        worst_excess = max(worst_excess, int(err.max()) - int(codec.max()))
        assert err.max() <= codec.max(), (rw.text, int(err.max()), int(codec.max()))
        place = _old_place(old, new)
        if place.sum() >= 4:
            now, pasted = err[place].mean(), np.abs(_px(_pasted(a, new)) - ref)[place].mean()
            assert now <= codec[place].mean() + 0.5, (rw.text, now, codec[place].mean())
            ghost["now"].append(now); ghost["paste"].append(pasted); ghost["codec"].append(codec[place].mean())
    assert len(ghost["now"]) >= 30
    now, pasted, codec = (float(np.mean(ghost[k])) for k in ("now", "paste", "codec"))
    # measured (world seed 3, 645 edits): now 10.71 = codec 10.71, the pre-fix paste 12.94 levels;
    # removals ("two X" -> "one X") alone: 0.23 = 0.23 against 4.87
    assert now <= codec + 0.1 and now < pasted - 1.0, (now, pasted, codec)


def test_a_removed_object_leaves_nothing_behind():
    """"two yellow rings" -> "one yellow ring" on the world's own JPEG anchor: the counterfactual is
    the JPEG of the one-ring render, byte for byte, where the pre-fix paste left a pale ring."""
    cfg = WorldConfig(seed=3, image_size=SIZE)
    from cfgen.world.scene import Obj
    ring = Obj("ring", "yellow", "large", 0.28, 0.3)
    scene = Scene([ring, replace(ring, x=0.7, y=0.68)], bg=230, form="two")
    s = _sample("k", scene, cfg)
    a = Anchor("k", s["txt"].decode(), s["jpg"], meta=json.loads(s["json"]))
    rw = Rewrite("k", 0, "one yellow ring", Status.KEPT, edit=Edit("quantity", "two", "one", "local"))
    (r,) = SceneEditor().edit(a, [rw], [0])
    new = Scene([ring], bg=230, form="single")
    assert r.image == encode_image(render(new, SIZE), "jpg", 95)
    place = _old_place(scene, new)
    ref = render(new, SIZE).astype(np.int16)
    assert np.abs(_px(r.image) - ref)[place].mean() < 0.5
    assert np.abs(_px(_pasted(a, new)) - ref)[place].mean() > 2.0      # the ghost this test guards against


def test_an_anchor_that_is_not_the_render_of_its_scene_is_rejected():
    """The counterfactual no longer reuses the anchor's pixels, so an anchor whose pixels are
    another scene than its metadata says would get a counterfactual of a different image."""
    cfg, anchors = _world()
    a, b = anchors[N_PER_FORM], anchors[N_PER_FORM + 1]            # two pair scenes
    lying = Anchor(a.key, a.caption, b.image, meta=a.meta)
    rws = _rewrites(a.key, Scene.from_dict(a.meta["scene"]))[:2]
    assert {r.reason for r in SceneEditor().edit(lying, rws, [0, 1])} == {"scene_mismatch"}
    for q in (30, 75):                                               # a re-encoded anchor is still its scene
        recoded = Anchor(a.key, a.caption, encode_image(decode_rgb(a.image), "jpg", q), meta=a.meta)
        assert "scene_mismatch" not in {r.reason for r in SceneEditor().edit(recoded, rws, [0, 1])}
