"""`cfgen eval` on untrusted benchmark files, results files and model folders (issue #25): images
stay inside their root, only regular files are opened, pixels are capped, nothing is written
through a symlink, a NaN never loses a run, answers are parsed or counted, ids never collapse."""
import csv
import json
import os
import signal
import struct
import subprocess
import sys
import zlib
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import yaml

from cfgen.eval import benchmarks as B
from cfgen.eval.scoring import Scorer
from cfgen.eval.report import merge_results, read_results, write_reports
from cfgen.eval.run import BenchResult, run_bench
from cfgen.eval.stats import compare_items
from cfgen.io.images import MAX_PIXELS
from tests.helpers import ColorEncoder, img


@pytest.fixture()
def scorer():
    return Scorer(ColorEncoder())


class YesScorer:
    """A generative stand-in (an ItemScorer): P(yes) = 0.9 for every question."""

    bs, enc, generative = 8, None, True

    def __init__(self):
        self.unreadable = {}

    def p_yes(self, images, questions):
        return np.full(len(questions), 0.9)


@contextmanager
def deadline(seconds: int = 10):
    """A test that would block on a FIFO fails after `seconds` instead of hanging the suite."""
    def stop(*_):
        raise TimeoutError(f"blocked for {seconds} s (a FIFO was opened)")
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


# ------------------------------------------------------------------ item 6: images stay inside their root
def _escapes(root, tmp_path):
    """A red image inside `root` (in.jpg) and three names for a red image outside it: an absolute
    path, a `../` path and a link inside the root. Returns the four names, the good one first."""
    img(root / "in.jpg", "red")
    secret = tmp_path / "outside" / "secret.jpg"
    img(secret, "red")
    os.symlink(secret, root / "link.jpg")
    return ["in.jpg", str(secret), os.path.relpath(secret, root), "link.jpg"]


def _aro(tmp_path):
    root = tmp_path / "aro"
    names = _escapes(root / "images", tmp_path)
    (root / "visual_genome_relation.json").write_text(json.dumps([
        {"image_path": n, "relation_name": "on", "bbox_x": 0, "bbox_y": 0, "bbox_w": 8, "bbox_h": 8,
         "true_caption": "a red cup", "false_caption": "a blue cup"} for n in names]))
    return "aro-vg-relation", root, None, 3, "micro"


def _karpathy(tmp_path, folder: str, caption: str):
    """A Karpathy-split test.json naming the escaping images (COCO-Order and retrieval read it)."""
    root = tmp_path / folder
    names = _escapes(root, tmp_path)
    (root / "test.json").write_text(json.dumps([{"image": n, "caption": [caption]} for n in names]))
    return root / "test.json"


def _order(tmp_path):
    return "coco-order", _karpathy(tmp_path, "coco", "a red bus on a road"), None, 3, "precision@1"


def _sugarcrepe(tmp_path):
    coco = tmp_path / "val2017"
    names = _escapes(coco, tmp_path)
    (tmp_path / "sc").mkdir()
    (tmp_path / "sc" / "add_att.json").write_text(json.dumps(
        {str(i): {"filename": n, "caption": "a red field", "negative_caption": "a blue field"} for i, n in enumerate(names)}))
    return "sugarcrepe", tmp_path / "sc", coco, 3, "avg"


def _vl_checklist(tmp_path):
    root = tmp_path / "vlc"
    names = _escapes(root / "imgs", tmp_path)
    for name, img_root, entries in (("color", "imgs/", names), ("size", "../outside/", ["secret.jpg"])):
        f = root / "data" / "Attribute" / "vg" / f"{name}.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps([[n, {"POS": ["a red sky"], "NEG": ["a blue sky"]}] for n in entries]))
        y = root / "corpus" / "Attribute" / name / "vg.yaml"
        y.parent.mkdir(parents=True)
        y.write_text(yaml.safe_dump({"ANNO_PATH": f"data/Attribute/vg/{name}.json", "IMG_ROOT": img_root}))
    return "vl-checklist", root, None, 4, "file:data/Attribute/vg/color.json"   # IMG_ROOT "../outside/": 1 more


def _conme(tmp_path):
    root = tmp_path / "conme"
    names = _escapes(root, tmp_path)
    _csv(root / "replace-att.csv", ["image", "question", "answer", "correct_option", "incorrect_option"],
         [[n, "Which fits?", "A", "a red kite", "a blue kite"] for n in names])
    return "conme", root, None, 3, "avg"


def _winoground(tmp_path):
    root = tmp_path / "wino"
    names = _escapes(root / "images", tmp_path)
    img(root / "images" / "ex_1.png", "blue")
    (root / "examples.jsonl").write_text("".join(json.dumps(
        {"id": i, "caption_0": "a red ball", "caption_1": "a blue ball", "image_0": n, "image_1": "ex_1"}) + "\n"
        for i, n in enumerate(names)))
    return "winoground", root, None, 3, "group"


def _retrieval(tmp_path):
    return "retrieval", _karpathy(tmp_path, "karpathy", "a red thing"), None, 3, "i2t_R@1"


def _zeroshot(tmp_path):
    root = tmp_path / "folder"
    img(root / "red" / "1.jpg", "red")
    img(tmp_path / "outside" / "secret.jpg", "blue")
    (root / "blue").mkdir()
    os.symlink(tmp_path / "outside" / "secret.jpg", root / "blue" / "1.jpg")
    (root / "templates.txt").write_text("a {} photo\n")
    return "zeroshot", root, None, 1, "top1"


def _pope(tmp_path):
    root = tmp_path / "pope"
    names = _escapes(root, tmp_path)
    (root / "coco_pope_random.json").write_text("".join(json.dumps(
        {"question_id": i, "image": n, "text": "Is there a cup?", "label": "yes"}) + "\n" for i, n in enumerate(names)))
    return "pope", root, None, 3, "all:accuracy"


def _mme(tmp_path):
    root = tmp_path / "mme"
    img(root / "existence" / "0000.jpg", "red")
    img(tmp_path / "outside" / "secret.jpg", "red")
    os.symlink(tmp_path / "outside" / "secret.jpg", root / "existence" / "0001.jpg")
    for i in range(2):
        (root / "existence" / f"{i:04d}.txt").write_text("Is there a cup?\tYes\n")
    return "mme", root, None, 1, "existence:acc"


@pytest.mark.parametrize("layout", [_aro, _order, _sugarcrepe, _vl_checklist, _conme, _winoground, _retrieval,
                                    _zeroshot, _pope, _mme])
def test_a_benchmark_reads_images_only_inside_its_image_root(tmp_path, scorer, layout):
    """An absolute path, a `../` path, a link out of the root (and VL-CheckList's IMG_ROOT) would read
    any file on the machine: each is counted as image_outside_root and never scored."""
    kind, path, root, outside, metric = layout(tmp_path)
    r = run_bench(YesScorer() if kind in ("pope", "mme") else scorer, kind, str(path), root and str(root))
    assert r.skipped == {"image_outside_root": outside}
    assert r.n[metric] == 1                               # only the image inside the root is scored


# ------------------------------------------------------------------ item 9: only regular files are opened
def _fifo(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind,where,folder", [
    ("aro-vg-relation", "visual_genome_relation.json", ""), ("winoground", "examples.jsonl", ""),
    ("pope", "coco_pope_random.json", ""), ("conme", "replace-att.csv", ""), ("mme", "existence/0000.txt", ""),
    ("vl-checklist", "corpus/Attribute/color/vg.yaml", "data"), ("zeroshot", "classnames.txt", "a_class"),
    ("sugarcrepe", "add_att.json", "val2017")])
def test_a_fifo_as_a_benchmark_file_is_one_line_not_a_hang(tmp_path, scorer, kind, where, folder):
    """`folder`: what the layout needs besides the file (VL-CheckList's data/, a zero-shot class,
    SugarCrepe's default image folder)."""
    root = tmp_path / "bench"
    _fifo(root / where)
    (root / folder).mkdir(exist_ok=True)
    with deadline(), pytest.raises(B.BenchFileError, match=f"{where}: not a regular file"):
        run_bench(YesScorer() if kind in ("pope", "mme") else scorer, kind, str(root))


def test_a_fifo_as_an_image_is_counted_or_named_never_opened(tmp_path, scorer):
    root = tmp_path / "aro"
    img(root / "images" / "in.jpg", "red")
    _fifo(root / "images" / "pipe.jpg")
    (root / "visual_genome_relation.json").write_text(json.dumps([
        {"image_path": n, "relation_name": "on", "bbox_x": 0, "bbox_y": 0, "bbox_w": 8, "bbox_h": 8,
         "true_caption": "a red cup", "false_caption": "a blue cup"} for n in ("in.jpg", "pipe.jpg")]))
    with deadline():
        with pytest.raises(ValueError, match="pipe.jpg: not a regular file"):
            run_bench(scorer, "aro-vg-relation", str(root))
        r = run_bench(scorer, "aro-vg-relation", str(root), skip_missing=True)
    assert r.skipped == {"not_a_regular_file": 1} and r.n["micro"] == 1
    with deadline(), pytest.raises(ValueError, match="not_a_regular_file"):
        B.load_image(str(root / "images" / "pipe.jpg"))          # the loader itself refuses it too


def test_a_fifo_as_a_compared_results_file_is_one_line(tmp_path):
    with deadline(), pytest.raises(B.BenchFileError, match="results.json: not a regular file"):
        read_results(_fifo(tmp_path / "results.json"))


# ------------------------------------------------------------------ item 10: decoded and cropped pixels capped
def _png_header(path, width, height):
    """A PNG that declares width x height (and holds one row): the cap must hold from the header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * (1 + 3 * width))) + chunk(b"IEND", b""))


def test_crop_boxes_and_decoded_images_are_capped_at_40_megapixels(tmp_path, scorer):
    """A 6400 x 6400 crop box on a 64 px image is 40.96 MP (PIL pads it: 123 MB of RGB), and an
    8000 x 6000 PNG is 48 MP: both above the stages' 40 MP cap (MAX_PIXELS), so skipped as
    image_too_large (or named without --skip-missing)."""
    root = tmp_path / "aro"
    img(root / "images" / "small.jpg", "red", (64, 64))
    _png_header(root / "images" / "huge.png", 8000, 6000)
    entries = [("small.jpg", 8), ("small.jpg", 6400), ("huge.png", 8)]
    (root / "visual_genome_relation.json").write_text(json.dumps([
        {"image_path": n, "relation_name": "on", "bbox_x": 0, "bbox_y": 0, "bbox_w": side, "bbox_h": side,
         "true_caption": "a red cup", "false_caption": "a blue cup"} for n, side in entries]))
    assert MAX_PIXELS == 40_000_000 and 6400 * 6400 > MAX_PIXELS and 8000 * 6000 > MAX_PIXELS
    with pytest.raises(ValueError, match="image_too_large"):
        run_bench(scorer, "aro-vg-relation", str(root))
    r = run_bench(scorer, "aro-vg-relation", str(root), skip_missing=True)
    assert r.skipped == {"image_too_large": 2} and r.n["micro"] == 1


# ------------------------------------------------------------------ item 15: NaN is null with its reason
def test_an_undefined_metric_is_written_as_null_with_its_reason(tmp_path, scorer):
    """ARO-Attribution's macro average needs a pair with 25 items; with 3 it has none, so it is
    undefined: results.json says null and why, and the other benchmark's results are kept."""
    root = tmp_path / "aro"
    img(root / "images" / "1.jpg", "red")
    (root / "visual_genome_attribution.json").write_text(json.dumps([
        {"image_path": "1.jpg", "attributes": ["red", "blue"], "bbox_x": 0, "bbox_y": 0, "bbox_w": 8, "bbox_h": 8,
         "true_caption": "the red car", "false_caption": "the blue car"}] * 3))
    att = run_bench(scorer, "aro-vg-attribution", str(root))
    rel = BenchResult(metrics={"micro": 0.5})
    files = write_reports({"m": {"aro-vg-attribution": att.table(), "other": rel.table()}}, tmp_path / "out")
    got = json.loads(files["json"].read_text())["m"]
    assert got["aro-vg-attribution"]["macro"] is None and got["aro-vg-attribution"]["micro"] == 1.0
    assert got["aro-vg-attribution"]["undefined:macro"] == "no attribute pair has the 25 items the macro average needs"
    assert got["aro-vg-attribution"]["n_pairs:macro"] == 0 and got["other"] == {"micro": 0.5}
    assert "undefined:macro" not in set(pd.read_csv(files["long_csv"]).metric)          # a reason, not a metric


# ------------------------------------------------------------------ item 5: no write through a symlink
def test_reports_are_never_written_through_a_symlink(tmp_path):
    from cfgen.io.writer import SymlinkRefused
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.md").symlink_to(victim)
    with pytest.raises(SymlinkRefused, match="results.md is a symlink"):
        write_reports({"m": {"b": {"acc": 0.5}}}, out)
    assert victim.read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == ["results.md"]


# ------------------------------------------------------------------ item 18: ConMe answers
def test_conme_answers_are_parsed_in_their_real_forms_and_the_rest_counted(tmp_path):
    """The right option by its letter as `(B)`, `C`, `Option A` or its own text; an empty, unknown
    or out-of-range answer, or text_options that is not a list, is counted, never guessed (the old
    first-letter rule read the option "Cat on a mat" as option C and an empty answer as A)."""
    opts3 = "['a red kite', 'Cat on a mat', 'a blue kite']"
    _csv(tmp_path / "replace-att_HUMAN_FILTER.csv", ["image", "text_options", "answer"], [
        ["i.jpg", "['a red kite', 'a blue kite']", "(B)"],      # -> a blue kite
        ["i.jpg", opts3, "C"],                                  # -> a blue kite
        ["i.jpg", opts3, "Cat on a mat."],                      # -> Cat on a mat (not option C)
        ["i.jpg", opts3, "option a"],                           # -> a red kite
        ["i.jpg", opts3, ""],                                   # no_answer
        ["i.jpg", opts3, "D"],                                  # unparseable_answer: no option D
        ["i.jpg", "1", "A"],                                    # no_parseable_options
        ["i.jpg", "'abc'", "A"]])                               # no_parseable_options (a string, not a list)
    _csv(tmp_path / "replace-obj.csv", ["image", "option_a", "option_b", "answer"], [
        ["i.jpg", "a cat", "a dog", "(A)"],                     # -> a cat (the old rule: option B)
        ["i.jpg", "a cat", "a dog", ""]])                       # no_answer (the old rule: option A)
    skipped = {}
    items = B.load_conme(tmp_path, skipped=skipped)
    assert [it.texts[it.correct] for it in items] == ["a blue kite", "a blue kite", "Cat on a mat", "a red kite",
                                                      "a cat"]
    assert skipped == {"no_answer": 2, "unparseable_answer": 1, "no_parseable_options": 2}


# ------------------------------------------------------------------ item 19: zero-shot class names
def test_zeroshot_refuses_fewer_class_names_than_class_folders(tmp_path):
    for c in ("red", "green", "blue"):
        img(tmp_path / c / "1.jpg", c)
    (tmp_path / "classnames.txt").write_text("red\n\ngreen\n")       # a blank line is not a name: 2 for 3
    with pytest.raises(B.BenchFileError, match="classnames.txt: 2 names for 3 class folders"):
        B.load_image_folder(tmp_path)


# ------------------------------------------------------------------ item 21: Winoground ids
def test_winoground_lines_without_an_id_are_named_by_their_line(tmp_path, scorer):
    img(tmp_path / "images" / "ex_0.png", "red")
    img(tmp_path / "images" / "ex_1.png", "blue")
    line = {"caption_0": "a red ball", "caption_1": "a blue ball", "image_0": "ex_0", "image_1": "ex_1"}
    (tmp_path / "examples.jsonl").write_text(json.dumps(line) + "\n\n" + json.dumps(line) + "\n")
    r = run_bench(scorer, "winoground", str(tmp_path))
    assert [i for i, _, _ in r.items] == ["line:1", "line:3"]
    assert compare_items({"a": {"w": r.items}, "b": {"w": r.items}})[0]["n"] == 2     # both pairs compared
    (tmp_path / "examples.jsonl").write_text(json.dumps({**line, "id": 7}) + "\n" + json.dumps({**line, "id": 7}) + "\n")
    with pytest.raises(B.BenchFileError, match="examples.jsonl: line 2: id '7' repeats line 1"):
        B.load_winoground(tmp_path)


# ------------------------------------------------------------------ item 22: --compare names by file
def test_compare_of_two_results_files_of_the_same_model_keeps_both(tmp_path):
    runs = []
    for name, correct in (("a", [True, False]), ("b", [True, True])):
        items = {"w": [("1", "x", correct[0]), ("2", "x", correct[1])]}
        files = write_reports({"ckpt": {"w": {"acc": float(np.mean(correct))}}}, tmp_path / name, items={"ckpt": items})
        runs.append(str(files["json"]))
    r = subprocess.run([sys.executable, "-m", "cfgen.cli", "eval", "--compare", runs[0], "--compare", runs[1],
                        "--out", str(tmp_path / "cmp")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert got == {f"ckpt ({runs[0]})": {"w": {"acc": 0.5}}, f"ckpt ({runs[1]})": {"w": {"acc": 1.0}}}
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [(c["category"], c["n"], c["diff"]) for c in cmp] == [("x", 2, 0.5)]
    results, _, paths = merge_results([("a.json", {"m": {}}, {}), ("b.json", {"m": {}, "n": {}}, {})])
    assert list(results) == ["m (a.json)", "m (b.json)", "n"] and paths == {"m (a.json)": "m", "m (b.json)": "m"}


# ------------------------------------------------------------------ tracebacks become one line
def test_json_and_yaml_nested_too_deeply_are_one_line(tmp_path):
    (tmp_path / "visual_genome_relation.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(B.BenchFileError, match="visual_genome_relation.json: JSON nested too deeply"):
        B.load_vg_relation(tmp_path)
    (tmp_path / "deep.yaml").write_text("[" * 5_000 + "]" * 5_000)
    with pytest.raises(B.BenchFileError, match="deep.yaml: YAML nested too deeply"):
        B.read_yaml(tmp_path / "deep.yaml")
    (tmp_path / "results.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(B.BenchFileError, match="results.json: JSON nested too deeply"):
        read_results(tmp_path / "results.json")


def test_a_malformed_benchmark_entry_names_its_file_and_entry(tmp_path):
    (tmp_path / "visual_genome_relation.json").write_text(json.dumps([1]))
    with pytest.raises(B.BenchFileError, match=r"visual_genome_relation.json: entry 0: malformed"):
        B.load_vg_relation(tmp_path)
    (tmp_path / "visual_genome_relation.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(B.BenchFileError, match="want a JSON list"):
        B.load_vg_relation(tmp_path)
    (tmp_path / "visual_genome_relation.json").write_text(json.dumps([
        {"image_path": "1.jpg", "relation_name": "on", "bbox_x": 0, "bbox_y": 0, "bbox_w": 8, "bbox_h": 8,
         "true_caption": 7, "false_caption": "a cup"}]))
    with pytest.raises(B.BenchFileError, match="entry 0: malformed .*captions must be strings"):
        B.load_vg_relation(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"m": {"b": {"acc": "high"}}}))
    with pytest.raises(B.BenchFileError, match="b: acc is not a number"):
        read_results(tmp_path / "results.json")
    vlc = tmp_path / "vlc" / "data" / "Attribute" / "x.json"
    vlc.parent.mkdir(parents=True)
    vlc.write_text(json.dumps([["1.jpg", {"POS": "a red sky", "NEG": ["a blue sky"]}],     # a string, not a list
                               ["1.jpg", {"POS": ["a red sky"], "NEG": ["a blue sky"]}]]))
    skipped = {}
    assert len(B.load_vl_checklist(tmp_path / "vlc", skipped=skipped)) == 1 and skipped == {"malformed_entry": 1}


# ------------------------------------------------------------------ item 1 (eval): a model folder's own code
def test_a_generative_model_folder_with_auto_map_is_refused_before_loading(tmp_path, monkeypatch):
    """transformers would ask "Do you wish to run the custom code? [y/N]" mid-run, and a yes runs
    the folder's Python: the folder is refused, and every load says trust_remote_code=False."""
    import transformers
    from cfgen.eval.generative import GenerativeScorer
    from cfgen.hub import RemoteCodeRefused
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava", "auto_map": {
        "AutoModelForImageTextToText": "modeling_evil.Evil"}}))
    (tmp_path / "modeling_evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    with pytest.raises(RemoteCodeRefused, match="auto_map"):
        GenerativeScorer(str(tmp_path))
    assert not (tmp_path / "ran").exists()
    seen = {}

    def spy(path, **kw):
        seen.update(kw)
        raise RuntimeError("stop here")
    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", spy)
    monkeypatch.setattr("cfgen.train.vlm.load_processor", lambda path: None)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(RuntimeError, match="stop here"):
        GenerativeScorer(str(tmp_path))
    assert seen["trust_remote_code"] is False


def test_cfgen_eval_ends_in_one_line_on_a_deep_json_and_a_conme_file_without_options(tmp_path, world_clip):
    """The tracebacks of this round, through the command: a benchmark JSON nested 100,000 deep
    (RecursionError) and a ConMe file whose only row has text_options=1 (TypeError)."""
    aro = tmp_path / "aro"
    aro.mkdir()
    (aro / "visual_genome_relation.json").write_text("[" * 100_000 + "]" * 100_000)
    _csv(tmp_path / "conme" / "replace-att_HUMAN_FILTER.csv", ["image", "text_options", "answer"], [["i.jpg", "1", "A"]])
    from click.testing import CliRunner
    from cfgen.cli import main
    for bench, line in ((f"aro-vg-relation={aro}", "visual_genome_relation.json: JSON nested too deeply"),
                        (f"conme={tmp_path / 'conme'}", "no ConMe row with parseable options")):
        r = CliRunner().invoke(main, ["eval", "--model", str(world_clip), "--bench", bench, "--out", str(tmp_path / "o")])
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit) and line in r.output, r.output

