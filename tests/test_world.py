import json
import random

import pytest
import webdataset as wds

from cfgen.world.generate import WorldConfig, generate_world, load_test_items
from cfgen.world.scene import (NotRenderable, apply_caption, caption, diff_mask, parse_caption,
                               render, sample_scene)
from tests.helpers import digest as _digest


def test_plain_webdataset_reads_world(small_world):
    pairs = list(wds.WebDataset(str(small_world / "train" / "00000.tar"), shardshuffle=False)
                 .decode("pil").to_tuple("jpg", "txt"))
    assert len(pairs) == 100 and all(im.size == (64, 64) for im, _ in pairs)
    assert all(parse_caption(t) is not None for _, t in pairs)


def test_deterministic_for_a_seed(tmp_path):
    cfg = WorldConfig(n=120, n_test=20, per_shard=50, seed=3)
    generate_world(tmp_path / "a", cfg)
    generate_world(tmp_path / "b", cfg)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_heldout_combinations_never_in_training(small_world):
    cfg = json.loads((small_world / "world.json").read_text())["config"]
    held = {tuple(c) for c in cfg["heldout"]}
    n_unseen = 0
    for s in wds.WebDataset(str(small_world / "train" / "{00000..00002}.tar"), shardshuffle=False):
        scene = json.loads(s["json"])["scene"]
        assert not {(o["color"], o["shape"]) for o in scene["objects"]} & held
    for item in load_test_items([str(small_world / "test" / "00000.tar")]):
        first = parse_caption(item["caption"]).nps[0]
        n_unseen += item["heldout"]
        assert ((first[1], first[2]) in held) == item["heldout"]
        assert item["caption"] not in item["tests"].values()
    assert 20 <= n_unseen <= 40


def test_captions_vary_in_order_relation_and_form():
    rng = random.Random(0)
    allowed = [(c, s) for c in ("red", "blue", "green") for s in ("ring", "square")]
    scenes = [sample_scene(rng, allowed) for _ in range(300)]
    assert {s.rel for s in scenes if s.form == "pair"} == {"to the left of", "to the right of", "above", "below"}
    assert {s.form for s in scenes} == {"single", "pair", "two"}
    assert sum(len(s.objects) > s.n_named for s in scenes) > 50          # distractors occur
    for s in scenes:
        assert parse_caption(caption(s)) is not None


def _edit(scene, target):
    return apply_caption(scene, target, random.Random(0))


def test_edits_change_only_the_edited_region():
    rng = random.Random(5)
    allowed = [(c, s) for c in ("red", "blue", "green", "yellow") for s in ("ring", "square", "triangle")]
    checked = 0
    for _ in range(200):
        s = sample_scene(rng, allowed, form_probs=(0, 1, 0))
        a, b = s.objects[0], s.objects[1]
        cap = caption(s)
        new_color = next(c for c in ("red", "blue", "green", "yellow") if c not in (a.color, b.color))
        target = cap.replace(a.color, new_color, 1).replace("an ", "a ", 1)
        target = caption(apply_caption(s, target, rng)) if parse_caption(target) else None
        e = _edit(s, target)
        m = diff_mask(render(s), render(e))
        # the mask is exactly the first object's pixels: other objects are untouched
        only_a = diff_mask(render(s), render(type(s)(objects=s.objects[1:], bg=s.bg, form="single")))
        assert m.any() and not (m & ~only_a).any()
        assert e.objects[1:] == s.objects[1:]
        checked += 1
    assert checked == 200


def test_relation_swap_quantity_and_binding_swap():
    rng = random.Random(2)
    allowed = [("red", "ring"), ("blue", "square")]
    s = sample_scene(rng, allowed, form_probs=(0, 1, 0), distractor_prob=0)
    opp = {"to the left of": "to the right of", "to the right of": "to the left of", "above": "below", "below": "above"}
    e = _edit(s, caption(s).replace(s.rel, opp[s.rel]))
    assert caption(e) == caption(s).replace(s.rel, opp[s.rel])
    a, b = s.objects[0], s.objects[1]
    swapped = caption(s).replace(a.color, "@").replace(b.color, a.color).replace("@", b.color)
    e = _edit(s, swapped)
    assert (e.objects[0].color, e.objects[1].color) == (b.color, a.color)
    assert (e.objects[0].x, e.objects[0].y) == (a.x, a.y)
    one = sample_scene(rng, allowed, form_probs=(1, 0, 0), distractor_prob=0)
    two = _edit(one, "two " + caption(one).split(" ", 1)[1] + "s")
    assert len(two.objects) == 2 and two.objects[0] == one.objects[0]
    with pytest.raises(NotRenderable):
        _edit(one, "a purple elephant")

