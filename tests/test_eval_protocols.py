"""`cfgen eval` on fixtures in the official layouts: protocols, accounting, errors, comparisons."""
import csv
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from cfgen.eval import benchmarks as B
from cfgen.eval.scoring import Scorer
from cfgen.eval.run import run_bench
from cfgen.eval.stats import compare_items, paired_bootstrap
from tests.helpers import ColorEncoder, img


@pytest.fixture()
def scorer():
    return Scorer(ColorEncoder())


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "cfgen.cli", *args], capture_output=True, text=True, timeout=300)


def _vlc(root, entries):
    img(root / "imgs" / "1.jpg", "blue")
    f = root / "data" / "Attribute" / "vg" / "color.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps([["1.jpg", e] for e in entries]))
    y = root / "corpus" / "v1" / "Attribute" / "color" / "vg.yaml"
    y.parent.mkdir(parents=True)
    y.write_text(yaml.safe_dump({"ANNO_PATH": "data/Attribute/vg/color.json", "IMG_ROOT": "imgs/"}))


def test_vl_checklist_scores_one_item_per_entry_officially_and_all_pairs_on_request(tmp_path, scorer):
    _vlc(tmp_path, [{"POS": ["a blue sky", "a red sky", "a red car"], "NEG": ["a red sky", "a blue sky"]},
                    {"POS": ["a blue kite"], "NEG": []}])
    r = run_bench(scorer, "vl-checklist", str(tmp_path))
    f = "file:data/Attribute/vg/color.json"
    assert r.n[f] == 1 and r.metrics[f] == 1.0 == r.metrics["Attribute:mean_of_files"]     # POS[0] vs NEG[0] only
    assert r.skipped == {"no_pos_or_neg": 1}
    a = run_bench(scorer, "vl-checklist-allpairs", str(tmp_path))
    assert a.n[f] == 2 and a.metrics[f] == 0.5
    assert a.skipped == {"no_pos_or_neg": 1, "unpaired_option": 1}


def test_vl_checklist_caps_entries_per_corpus_file_like_the_official_itc():
    items = [B.Item("x", ["a", "b"], groups={"file": f}, id=f"{f}:{e}:0") for f in ("f1", "f2") for e in range(5)]
    kept = B.cap_per_file(items, max_num=4)
    assert [it.id for it in kept] == ["f1:0:0", "f1:1:0", "f2:0:0", "f2:1:0"]


def test_conme_reads_both_file_kinds_by_their_real_columns_and_never_writes_nan(tmp_path, scorer):
    img(tmp_path / "i.jpg", "red")
    cols = ["image", "question", "answer", "base_question", "correct_option", "incorrect_option", "question_format"]
    with open(tmp_path / "replace-att.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerow(["i.jpg", "Which fits?", "A", "q", "a red kite", "a blue kite", "binary"])
        w.writerow(["i.jpg", "Which fits?", "A", "q", "", "", "binary"])                 # unparseable: counted
    with open(tmp_path / "replace-att_HUMAN_FILTER.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "image", "text_options", "correct_option"])
        w.writerow(["7", "i.jpg", "['a blue kite', 'a red kite']", "a red kite"])
    r = run_bench(scorer, "conme", str(tmp_path))
    assert r.metrics["replace-att"] == 1.0 and r.n["replace-att"] == 1
    assert r.metrics["replace-att_HUMAN_FILTER"] == 1.0 and r.n["replace-att_HUMAN_FILTER"] == 1
    assert r.skipped == {"no_parseable_options": 1}
    assert all(v == v for v in r.metrics.values())                                        # no NaN
    bad = tmp_path / "only_bad"
    bad.mkdir()
    (bad / "replace-rel.csv").write_text("image,question,answer\ni.jpg,no options here,A\n")
    with pytest.raises(ValueError, match="no ConMe row with parseable options"):
        run_bench(scorer, "conme", str(bad))


def _sugarcrepe(data, coco):
    img(coco / "1.jpg", "green")
    data.mkdir(parents=True, exist_ok=True)
    for cat in B.SUGARCREPE_FILES:
        (data / f"{cat}.json").write_text(json.dumps(
            {"0": {"filename": "1.jpg", "caption": "a green field", "negative_caption": "a blue field"}}))


def test_sugarcrepe_official_layout_with_a_separate_coco_root(tmp_path, world_clip):
    _sugarcrepe(tmp_path / "sugar_crepe", tmp_path / "coco" / "val2017")
    r = _cli("eval", "--model", str(world_clip), "--bench", f"sugarcrepe={tmp_path / 'sugar_crepe'}",
             "--out", str(tmp_path / "out"))
    assert r.returncode == 1 and "--coco-root" in r.stderr and "Traceback" not in r.stderr
    r = _cli("eval", "--model", str(world_clip), "--bench", f"sugarcrepe={tmp_path / 'sugar_crepe'}",
             "--coco-root", str(tmp_path / "coco" / "val2017"), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "out" / "results.json").read_text())[str(world_clip)]["sugarcrepe"]
    assert res["n_items:avg"] == 7 and all(res[f"n_items:{c}"] == 1 for c in B.SUGARCREPE_FILES)
    long = pd.read_csv(tmp_path / "out" / "results_long.csv")
    assert {"model", "model_path", "config_hash", "benchmark", "metric", "value", "n", "n_of"} <= set(long.columns)
    assert int(long[long.metric == "avg"].n.iloc[0]) == 7 and long[long.metric == "avg"].n_of.iloc[0] == "items"
    assert len(pd.read_parquet(tmp_path / "out" / "results_long.parquet")) == len(long)


def test_missing_and_corrupt_images_stop_with_one_line_or_are_skipped_and_counted(tmp_path, scorer, world_clip):
    data, coco = tmp_path / "sc", tmp_path / "coco"
    _sugarcrepe(data, coco)
    (data / "swap_att.json").write_text(json.dumps({
        "0": {"filename": "gone.jpg", "caption": "a green field", "negative_caption": "a blue field"},
        "1": {"filename": "bad.jpg", "caption": "a green field", "negative_caption": "a blue field"}}))
    (coco / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match="gone.jpg: image not found"):
        run_bench(scorer, "sugarcrepe", str(data), str(coco))
    r = run_bench(scorer, "sugarcrepe", str(data), str(coco), skip_missing=True)
    assert r.skipped == {"missing_image": 1, "corrupt_image": 1}
    assert "swap_att" not in r.metrics and r.n["avg"] == 6
    (data / "swap_att.json").write_text(json.dumps({
        "1": {"filename": "bad.jpg", "caption": "a green field", "negative_caption": "a blue field"}}))
    cli = _cli("eval", "--model", str(world_clip), "--bench", f"sugarcrepe={data}", "--coco-root", str(coco),
               "--out", str(tmp_path / "o"))
    assert cli.returncode == 1 and "bad.jpg" in cli.stderr and "unreadable" in cli.stderr
    assert "Traceback" not in cli.stderr


def test_a_truncated_json_names_the_file_and_line(tmp_path, world_clip):
    root = tmp_path / "aro"
    root.mkdir()
    (root / "visual_genome_relation.json").write_text('[\n {"image_path": "x.jpg",\n "true_caption": ')
    r = _cli("eval", "--model", str(world_clip), "--bench", f"aro-vg-relation={root}", "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "visual_genome_relation.json: line 3" in r.stderr and "Traceback" not in r.stderr


def test_paired_bootstrap_and_comparison_by_hand():
    diff, lo, hi = paired_bootstrap(np.array([1, 0, 1, 1] * 25), np.array([1, 1, 1, 1] * 25))
    assert diff == pytest.approx(0.25) and 0.1 < lo < 0.25 < hi <= 0.4
    d0, lo0, hi0 = paired_bootstrap(np.array([1, 0] * 50), np.array([1, 0] * 50))
    assert (d0, lo0, hi0) == (0.0, 0.0, 0.0)
    items = {"a": {"b1": [("1", "x", True), ("2", "x", False), ("3", "y", True)]},
             "b": {"b1": [("1", "x", True), ("2", "x", True), ("3", "y", True), ("4", "y", False)]}}
    rows = {(r["category"]): r for r in compare_items(items)}
    assert rows["x"]["diff"] == pytest.approx(0.5) and rows["x"]["n"] == 2
    assert rows["all"]["n"] == 3                          # item 4 was scored by one model only: not paired
