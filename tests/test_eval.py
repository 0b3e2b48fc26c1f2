import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from cfgen.eval import benchmarks as B
from cfgen.eval.scoring import Scorer
from cfgen.eval.report import write_reports
from cfgen.eval.run import run_bench
from tests.helpers import COLORS, ColorEncoder, img

def _m(*a, **k):
    return run_bench(*a, **k).metrics


@pytest.fixture()
def scorer():
    return Scorer(ColorEncoder())


# ------------------------------------------------------------------ metrics by hand
def test_ties_count_as_wrong_unless_the_official_code_takes_the_argmax():
    assert B.is_correct(np.array([0.6, 0.5]), 0)
    assert not B.is_correct(np.array([0.5, 0.5]), 0)
    assert not B.is_correct(np.array([0.5, 0.7, 0.5]), 0)
    assert B.is_correct(np.array([0.5, 0.5]), 0, argmax=True) and not B.is_correct(np.array([0.5, 0.5]), 1, argmax=True)


def test_aro_relation_macro_drops_symmetric_relations():
    items = [B.Item("x", ["a", "b"], groups={"relation": r}) for r in ["left of", "left of", "on", "next to"]]
    m, n = B.aro_relation_metrics(items, [True, False, True, False])
    assert m["macro"] == pytest.approx((0.5 + 1.0) / 2) and m["micro"] == pytest.approx(0.5)
    assert n == {"macro": (2, "relations"), "micro": (4, "items")}


def test_aro_attribution_macro_needs_25_items_per_pair():
    items = [B.Item("x", ["a", "b"], groups={"attributes": "red_blue"}) for _ in range(25)]
    items += [B.Item("x", ["a", "b"], groups={"attributes": "big_small"}) for _ in range(3)]
    corrects = [i < 20 for i in range(25)] + [False] * 3
    m, n = B.aro_attribution_metrics(items, corrects)
    assert m["macro"] == pytest.approx(0.8) and n["macro"] == (1, "pairs") and m["micro"] == pytest.approx(20 / 28)


def test_recall_at_k_by_hand_with_ties():
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.3], [0.1, 0.8, 0.7]])
    r = B.recall_at_k(sim, [{0}, {1}, {2}], ks=(1, 2))
    # q0: right best -> hit@1; q1: tie with a wrong one -> miss@1, hit@2; q2: one wrong ahead -> hit@2 only
    assert r == {1: pytest.approx(1 / 3), 2: pytest.approx(1.0)}


def test_winoground_scores_by_hand():
    assert B.winoground_metrics(np.array([[0.9, 0.1], [0.2, 0.8]])) == {"text": True, "image": True, "group": True}
    # caption 0 prefers image 1 -> image score fails; text score holds
    assert B.winoground_metrics(np.array([[0.5, 0.6], [0.4, 0.9]])) == {"text": True, "image": False, "group": False}


def test_order_perturbations_are_seeded_permutations():
    sh = B.Shuffler(seed=0)
    cap = "a small red dog is sitting on a large wooden bench near the lake"
    outs = sh.all(cap)
    assert len(outs) == 4 and outs == B.Shuffler(seed=0).all(cap) and outs != B.Shuffler(seed=1).all(cap)
    for o in outs:
        assert sorted(o.split()) == sorted(cap.split())
    assert len(set(outs)) >= 3


# ------------------------------------------------------------------ loaders on official formats
def test_aro_vg_relation_and_attribution_files(tmp_path, scorer):
    root = tmp_path / "aro"
    rel = []
    for i, (r, good) in enumerate([("left of", True), ("left of", False), ("on", True), ("next to", False)]):
        name = img(root / "images" / f"{i}.jpg", "red", (40, 30))
        t, f = ("the red cup", "the blue cup") if good else ("the blue cup", "the red cup")
        rel.append({"image_id": str(i), "relation_name": r, "image_path": name, "bbox_x": 5, "bbox_y": 5,
                    "bbox_w": 20, "bbox_h": 10, "true_caption": t, "false_caption": f})
    (root / "visual_genome_relation.json").write_text(json.dumps(rel))
    m = _m(scorer, "aro-vg-relation", str(root))
    assert m == {"macro": pytest.approx(0.75), "micro": pytest.approx(0.5)}
    items = B.load_vg_relation(root)
    assert items[0].box == (5, 5, 25, 15) and B.load_image(items[0].image, items[0].box).size == (20, 10)
    att = [{"image_id": "0", "attributes": ["red", "blue"], "image_path": "0.jpg", "bbox_x": 0, "bbox_y": 0,
            "bbox_w": 10, "bbox_h": 10, "true_caption": "the red car", "false_caption": "the blue car"}] * 25
    (root / "visual_genome_attribution.json").write_text(json.dumps(att))
    assert _m(scorer, "aro-vg-attribution", str(root))["macro"] == pytest.approx(1.0)


def test_coco_order_file(tmp_path, scorer):
    name = img(tmp_path / "val2014" / "a.jpg", "red")
    (tmp_path / "coco_karpathy_test.json").write_text(json.dumps(
        [{"image": f"val2014/{name}", "caption": ["A red bus on a road.", "a bus that is red"], "image_id": "1"}]))
    items = B.load_order(tmp_path / "coco_karpathy_test.json")
    assert len(items) == 2 and all(len(i.texts) == 5 and i.correct == 0 for i in items)
    assert items[0].texts[0] == "a red bus on a road"
    # every option names the same colour: all tie -> the true caption (first) wins, as ARO's argmax
    assert _m(scorer, "coco-order", str(tmp_path / "coco_karpathy_test.json"))["precision@1"] == 1.0


def test_sugarcrepe_files(tmp_path, scorer):
    img(tmp_path / "val2017" / "1.jpg", "green")
    for cat in B.SUGARCREPE_FILES:
        good = {"caption": "a green field", "negative_caption": "a blue field"}
        tie = {"caption": "a green field", "negative_caption": "a green meadow"}
        (tmp_path / f"{cat}.json").write_text(json.dumps({"0": {"filename": "1.jpg", **good},
                                                          "1": {"filename": "1.jpg", **(tie if cat == "swap_att" else good)}}))
    m = _m(scorer, "sugarcrepe", str(tmp_path))
    assert m["add_att"] == 1.0 and m["swap_att"] == 0.5
    assert m["avg"] == pytest.approx((6 * 1.0 + 0.5) / 7)


def test_vl_checklist_files_and_corpus_roots(tmp_path, scorer):
    root = tmp_path / "vlc"
    img(root / "imgs" / "vg" / "1.jpg", "blue")
    for typ, good in [("Attribute", True), ("Object", True), ("Relation", False)]:
        f = root / "data" / typ / "vg" / "x.json"
        f.parent.mkdir(parents=True)
        pos, neg = ("a blue sky", "a red sky") if good else ("a red sky", "a blue sky")
        f.write_text(json.dumps([["1.jpg", {"POS": [pos], "NEG": [neg]}]]))
        y = root / "corpus" / typ / "x.yaml"
        y.parent.mkdir(parents=True)
        y.write_text(yaml.safe_dump({"ANNO_PATH": f"data/{typ}/vg/x.json", "IMG_ROOT": "imgs/vg/"}))
    m = _m(scorer, "vl-checklist", str(root))
    assert (m["Attribute:mean_of_files"], m["Object:mean_of_files"], m["Relation:mean_of_files"]) == (1.0, 1.0, 0.0)
    assert m["avg"] == pytest.approx(2 / 3) and m["file:data/Attribute/vg/x.json"] == 1.0


def test_conme_csvs(tmp_path, scorer):
    img(tmp_path / "i.jpg", "red")
    with open(tmp_path / "replace-att.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "question", "answer"])
        w.writerow(["i.jpg", "Which caption fits? A) a red kite B) a blue kite", "A"])
        w.writerow(["i.jpg", "Which caption fits? A) a blue kite B) a red kite", "B"])
    with open(tmp_path / "replace-obj.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "option_a", "option_b", "answer"])
        w.writerow(["i.jpg", "a blue kite", "a red kite", "A"])
    m = _m(scorer, "conme", str(tmp_path))
    assert m["replace-att"] == 1.0 and m["replace-obj"] == 0.0 and m["avg"] == 0.5
    assert {it.question for it in B.load_conme(tmp_path)} == {"Which caption fits?", B.CONME_QUESTION}


def test_winoground_file(tmp_path, scorer):
    img(tmp_path / "images" / "ex_0.png", "red")
    img(tmp_path / "images" / "ex_1.png", "blue")
    (tmp_path / "examples.jsonl").write_text(json.dumps(
        {"id": 0, "caption_0": "a red ball", "caption_1": "a blue ball", "image_0": "ex_0", "image_1": "ex_1"}) + "\n")
    assert _m(scorer, "winoground", str(tmp_path)) == {"text": 1.0, "image": 1.0, "group": 1.0}


def test_retrieval_and_zeroshot(tmp_path, scorer):
    for c in COLORS:
        img(tmp_path / "imgs" / f"{c}.jpg", c)
    (tmp_path / "test.json").write_text(json.dumps([{"image": f"imgs/{c}.jpg", "caption": [f"a {c} thing", "something"]}
                                                    for c in COLORS]))
    m = _m(scorer, "retrieval", str(tmp_path / "test.json"))
    assert m["i2t_R@1"] == 1.0 and m["t2i_R@1"] == pytest.approx(0.5)       # "something" matches nothing
    for c in COLORS:
        img(tmp_path / "folder" / f"{c}_things" / "1.jpg", c)
    (tmp_path / "folder" / "templates.txt").write_text("a photo of a {}.\n")
    z = _m(scorer, "zeroshot", str(tmp_path / "folder"))
    assert z == {"top1": 1.0}           # class "blue_things" -> "a photo of a blue things."; no top-5 of 3 classes


def test_world_test_and_reports(small_world, world_clip, tmp_path):
    from cfgen.eval.run import evaluate
    res = evaluate(str(world_clip), {"world": str(small_world)})
    r = {"world": res["world"].table()}
    assert {"unseen:binding_swap", "seen:relation_swap", "unseen:replace_color"} <= set(res["world"].metrics)
    assert all(0.0 <= v <= 1.0 for v in res["world"].metrics.values())
    assert sum(res["world"].n.values()) == len(res["world"].items) > 0
    files = write_reports({"a": r, "b": r}, tmp_path / "rep", items={"a": {"world": res["world"].items},
                                                                       "b": {"world": res["world"].items}})
    assert json.loads(files["json"].read_text())["a"] == r
    cmp = json.loads((tmp_path / "rep" / "compare.json").read_text())
    assert cmp and all(c["diff"] == 0.0 and not c["significant"] for c in cmp)
    assert "delta b" in files["csv"].read_text().splitlines()[0]
    assert "| world | unseen:binding_swap |" in files["md"].read_text()
    out = subprocess.run([sys.executable, "-m", "cfgen.cli", "eval", "--compare", str(files["json"]), "--out",
                          str(tmp_path / "cmp")], capture_output=True, text=True)
    assert out.returncode == 0 and "delta b" in out.stdout
