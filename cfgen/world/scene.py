"""A procedural scene world with exact captions, exact counterfactual renders and exact masks.

Scenes hold 1-4 flat-colored objects (shape, color, size, position) on a plain background.
The shapes (square, ring, cross, triangle) differ at the scale of a ViT patch, so a small
model can learn to see them; filled look-alikes (circle vs. diamond) it barely could.
Captions come from a small grammar that names one object, two objects and a spatial relation,
or two identical objects ("two small red circles"); unnamed objects are distractors. Because
the grammar can be parsed back, any rewrite the grammar can express can be rendered exactly.
"""
from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (230, 210, 40), "purple": (140, 60, 180), "orange": (240, 140, 30),
}
SHAPES: tuple[str, ...] = ("square", "ring", "cross", "triangle")
SIZES: dict[str, float] = {"small": 0.17, "large": 0.29}     # diameter as a fraction of the side
RELATIONS: dict[str, str] = {
    "to the left of": "to the right of", "to the right of": "to the left of",
    "above": "below", "below": "above",
}
MARGIN = 0.12   # centers must differ by this much (fraction of the side) for a relation to hold


@dataclass(frozen=True)
class Obj:
    shape: str
    color: str
    size: str
    x: float
    y: float

    @property
    def combo(self) -> tuple[str, str]:
        return (self.color, self.shape)


@dataclass
class Scene:
    """Objects plus how the caption talks about them."""

    objects: list[Obj]
    bg: int = 225
    form: str = "pair"               # single | pair | two
    rel: str = ""                    # for pair: relation of objects[0] to objects[1]
    say_size: list[bool] = field(default_factory=lambda: [False, False])

    @property
    def n_named(self) -> int:
        return {"single": 1, "pair": 2, "two": 2}[self.form]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["objects"] = [asdict(o) for o in self.objects]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scene":
        return cls(objects=[Obj(**o) for o in d["objects"]], bg=d["bg"], form=d["form"],
                   rel=d["rel"], say_size=list(d["say_size"]))


# ------------------------------------------------------------------------------ captions
def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _np(o: Obj, say_size: bool, det: str = "a") -> str:
    words = ([o.size] if say_size else []) + [o.color, o.shape]
    if det == "a":
        det = article(words[0])
    return " ".join([det] + words)


def caption(scene: Scene) -> str:
    a = scene.objects[0]
    if scene.form == "single":
        return _np(a, scene.say_size[0])
    if scene.form == "two":
        return _np(a, scene.say_size[0], "two") + "s"
    return f"{_np(a, scene.say_size[0])} {scene.rel} {_np(scene.objects[1], scene.say_size[1])}"


_NP = r"(a|an|one|two) (?:(small|large) )?(" + "|".join(COLORS) + r") (" + "|".join(SHAPES) + r")(s?)"
_CAP = re.compile(rf"^{_NP}(?: ({'|'.join(map(re.escape, RELATIONS))}) {_NP})?$")


@dataclass(frozen=True)
class Parsed:
    """A caption parsed by the world grammar."""

    form: str
    nps: tuple[tuple[str | None, str, str], ...]     # (size or None, color, shape)
    rel: str = ""


def parse_caption(text: str) -> Parsed | None:
    """Parse a world caption; None when the grammar cannot express it."""
    m = _CAP.match(" ".join(text.lower().strip().rstrip(".").split()))
    if not m:
        return None
    g = m.groups()
    det1, s1, c1, sh1, pl1 = g[0:5]
    if (det1 == "two") != (pl1 == "s"):
        return None
    if g[5] is None:
        return Parsed("two" if det1 == "two" else "single", ((s1, c1, sh1),))
    det2, s2, c2, sh2, pl2 = g[6:11]
    if det1 == "two" or det2 == "two" or pl2:
        return None
    return Parsed("pair", ((s1, c1, sh1), (s2, c2, sh2)), g[5])


# ------------------------------------------------------------------------------ geometry
def relation_holds(a: Obj, b: Obj, rel: str) -> bool:
    dx, dy = b.x - a.x, b.y - a.y
    return {"to the left of": dx > MARGIN, "to the right of": -dx > MARGIN,
            "above": dy > MARGIN, "below": -dy > MARGIN}[rel]


def valid_relations(a: Obj, b: Obj) -> list[str]:
    return [r for r in RELATIONS if relation_holds(a, b, r)]


def _radius(o: Obj) -> float:
    return SIZES[o.size] / 2


def overlaps(o: Obj, others: list[Obj], gap: float = 0.02) -> bool:
    return any(max(abs(o.x - p.x), abs(o.y - p.y)) < _radius(o) + _radius(p) + gap for p in others)


def random_position(rng: random.Random, o: Obj, others: list[Obj], tries: int = 200) -> Obj | None:
    r = _radius(o)
    for _ in range(tries):
        cand = replace(o, x=rng.uniform(r + 0.02, 1 - r - 0.02), y=rng.uniform(r + 0.02, 1 - r - 0.02))
        if not overlaps(cand, others):
            return cand
    return None


# ------------------------------------------------------------------------------ rendering
def render(scene: Scene, size: int = 64) -> np.ndarray:
    """Exact, aliased rendering: HxWx3 uint8. Same scene -> same pixels."""
    im = Image.new("RGB", (size, size), (scene.bg,) * 3)
    d = ImageDraw.Draw(im)
    for o in scene.objects:
        r = _radius(o) * size
        cx, cy = o.x * size, o.y * size
        box = [cx - r, cy - r, cx + r, cy + r]
        col = COLORS[o.color]
        if o.shape == "square":
            d.rectangle([cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85], fill=col)
        elif o.shape == "triangle":
            d.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=col)
        elif o.shape == "ring":
            d.ellipse(box, outline=col, width=max(1, round(r * 0.45)))
        elif o.shape == "cross":
            t = r * 0.36
            d.rectangle([cx - r, cy - t, cx + r, cy + t], fill=col)
            d.rectangle([cx - t, cy - r, cx + t, cy + r], fill=col)
        else:
            raise ValueError(f"unknown shape {o.shape}")
    return np.asarray(im)


def diff_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean HxW mask of pixels that differ between two clean renders."""
    return np.any(a != b, axis=-1)


def mask_box(mask: np.ndarray) -> list[int] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


# ------------------------------------------------------------------------------ sampling
def heldout_combos(seed: int = 0, n: int = 6) -> list[tuple[str, str]]:
    """Colour-shape pairs never shown in training: each colour once, shapes spread evenly."""
    rng = random.Random(seed * 7919 + 17)
    shapes = list(SHAPES)
    rng.shuffle(shapes)
    colors = list(COLORS)
    rng.shuffle(colors)
    return sorted((colors[i], shapes[i % len(shapes)]) for i in range(min(n, len(colors))))


def _random_obj(rng: random.Random, allowed: list[tuple[str, str]]) -> Obj:
    color, shape = rng.choice(allowed)
    return Obj(shape=shape, color=color, size=rng.choice(list(SIZES)), x=0.5, y=0.5)


def sample_scene(rng: random.Random, allowed: list[tuple[str, str]],
                 must_include: list[tuple[str, str]] | None = None,
                 form_probs: tuple[float, float, float] = (0.15, 0.75, 0.10),
                 distractor_prob: float = 0.5, size_mention_prob: float = 0.5,
                 relations: tuple[str, ...] = tuple(RELATIONS)) -> Scene:
    """A random scene whose objects all use `allowed` colour-shape pairs.

    `must_include`: the first named object is drawn from these (used for held-out tests).
    """
    while True:
        form = rng.choices(["single", "pair", "two"], weights=form_probs)[0]
        first = _random_obj(rng, must_include or allowed)
        named = [first]
        if form == "pair":
            second = _random_obj(rng, allowed)
            if second.combo == first.combo:
                continue
            named.append(second)
        elif form == "two":
            named.append(replace(first))
        placed: list[Obj] = []
        for o in named:
            p = random_position(rng, o, placed)
            if p is None:
                break
            placed.append(p)
        else:
            rel = ""
            if form == "pair":
                rels = [r for r in valid_relations(placed[0], placed[1]) if r in relations]
                if not rels:
                    continue
                rel = rng.choice(rels)
            n_distr = rng.choice([1, 2]) if rng.random() < distractor_prob else 0
            for _ in range(n_distr):
                d = _random_obj(rng, allowed)
                if form != "single" and d.combo in {o.combo for o in named}:
                    continue
                if form == "single" and d.combo == first.combo:
                    continue
                p = random_position(rng, d, placed)
                if p is not None:
                    placed.append(p)
            if form == "pair" and not relation_holds(placed[0], placed[1], rel):
                continue
            say = [rng.random() < size_mention_prob for _ in range(2)]
            if form == "two":
                say = [say[0], say[0]]
            return Scene(objects=placed, bg=rng.randint(200, 245), form=form, rel=rel, say_size=say)


# ------------------------------------------------------------------------------ editing
class NotRenderable(ValueError):
    """The rewrite cannot be expressed as an edit of this scene."""


def apply_caption(scene: Scene, target: str, rng: random.Random) -> Scene:
    """The scene the target caption describes, changing as little of `scene` as possible.

    Handles changes of colour, shape, size, quantity (a <-> two), relation, and attribute
    swaps between the two named objects. Raises NotRenderable otherwise.
    """
    src, dst = parse_caption(caption(scene)), parse_caption(target)
    if src is None or dst is None:
        raise NotRenderable("caption outside the world grammar")
    objs = list(scene.objects)
    new = Scene(objects=objs, bg=scene.bg, form=dst.form, rel=dst.rel,
                say_size=[s is not None for s, _, _ in dst.nps] + [False] * (2 - len(dst.nps)))
    if src.form == "single" and dst.form == "two":
        if dst.nps[0][1:] != src.nps[0][1:]:
            raise NotRenderable("quantity change plus another change")
        copy = random_position(rng, objs[0], objs)
        if copy is None:
            raise NotRenderable("no room for another object")
        new.objects = [objs[0], copy] + objs[1:]
        new.say_size = [new.say_size[0]] * 2
        return _check_sizes(new, dst)
    if src.form == "two" and dst.form == "single":
        if dst.nps[0][1:] != src.nps[0][1:]:
            raise NotRenderable("quantity change plus another change")
        new.objects = [objs[0]] + objs[2:]
        return _check_sizes(new, dst)
    if src.form != dst.form:
        raise NotRenderable("form change")
    n = scene.n_named if src.form == "pair" else 1
    for k in range(n):
        size, color, shape = dst.nps[k]
        o = objs[k]
        objs[k] = replace(o, color=color, shape=shape, size=size or o.size)
    if src.form == "two":
        objs[1] = replace(objs[1], color=objs[0].color, shape=objs[0].shape, size=objs[0].size)
    if src.form == "pair" and dst.rel != src.rel:
        a, b = objs[0], objs[1]
        swapped_a, swapped_b = replace(a, x=b.x, y=b.y), replace(b, x=a.x, y=a.y)
        if relation_holds(swapped_a, swapped_b, dst.rel):
            objs[0], objs[1] = swapped_a, swapped_b
        else:
            rest = [o for i, o in enumerate(objs) if i != 0]
            for _ in range(100):
                moved = random_position(rng, a, rest)
                if moved is not None and relation_holds(moved, b, dst.rel):
                    objs[0] = moved
                    break
            else:
                raise NotRenderable("cannot place objects for the new relation")
    if src.form == "pair" and not relation_holds(objs[0], objs[1], dst.rel):
        raise NotRenderable("relation no longer holds after the edit")
    new.objects = objs
    return _check_sizes(new, dst)


def _check_sizes(new: Scene, dst: Parsed) -> Scene:
    for k, (size, _, _) in enumerate(dst.nps):
        if size is not None and new.objects[k].size != size:
            raise NotRenderable("size mismatch")
    if caption(new) != caption_of(dst):
        raise NotRenderable("edited scene does not match the rewrite")
    return new


def caption_of(p: Parsed) -> str:
    def np_(np_t: tuple[str | None, str, str], det: str) -> str:
        s, c, sh = np_t
        words = ([s] if s else []) + [c, sh]
        return " ".join([article(words[0]) if det == "a" else det] + words)
    if p.form == "single":
        return np_(p.nps[0], "a")
    if p.form == "two":
        return np_(p.nps[0], "two") + "s"
    return f"{np_(p.nps[0], 'a')} {p.rel} {np_(p.nps[1], 'a')}"

