"""`cfgen eval` against the official evaluation code (issue #24, "Benchmarks" items 3-8).

Fixtures are laid out as the upstream releases are; every expected number comes from running the
official script named beside it on the same tiny case (in a scratch folder, outside this
repository) and is kept here as a literal.
"""
import csv
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from cfgen.eval import benchmarks as B
from cfgen.eval.scoring import Scorer
from cfgen.eval.report import markdown, rows, write_reports
from cfgen.eval.run import run_bench
from tests.helpers import COLORS, ColorEncoder


def _img(path, rgb=(128, 128, 128)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), rgb).save(path)


class _Colors(ColorEncoder):
    """ColorEncoder that records the largest batch of images it was given."""

    def __init__(self):
        self.largest = 0

    def embed_images(self, imgs, batch_size=64):
        self.largest = max(self.largest, len(imgs))
        return super().embed_images(imgs, batch_size)


# ------------------------------------------------------------------ item 3: MME
# The release's layout, as LLaVA's get_gt reads it (haotian-liu/LLaVA @ 32cebc38,
# playground/data/eval/MME/convert_answer_to_mme.py lines 24-30): a subtask with `images/` keeps its
# question files in `questions_answers_YN/` (artwork, celebrity, landmark, posters, scene), the
# others keep `<image stem>.txt` beside the images. Image names are the release's (eval_tool/
# Your_Results/*.txt). Each image: its Yes question and its No question, and the model's answers.
MME = {
    "existence": [("000000006040.jpg", ("yes", "no")), ("000000006471.jpg", ("yes", "yes"))],
    "count": [("000000006040.jpg", ("no", "no"))],
    "position": [("000000006471.jpg", ("yes", "no"))],
    "color": [("000000006723.jpg", ("no", "yes"))],
    "posters": [("tt0048028.jpg", ("yes", "no"))],
    "celebrity": [("tt0032138_shot_0395_img_0.jpg", ("yes", "yes"))],
    "scene": [("Places365_val_00000001.jpg", ("yes", "no"))],
    "landmark": [("0006adf999ccc899.jpg", ("no", "no"))],
    "artwork": [("10002.jpg", ("yes", "no")), ("10049.jpg", ("yes", "no")), ("10173.jpg", ("no", "no"))],
    "OCR": [("0001.jpg", ("yes", "no"))],
    "commonsense_reasoning": [("0001.png", ("yes", "no"))],
    "numerical_calculation": [("0001.png", ("no", "no"))],
    "text_translation": [("0001.png", ("yes", "yes"))],
    "code_reasoning": [("0001.png", ("yes", "no")), ("0002.png", ("no", "yes"))],
}
# BradyFU/Awesome-Multimodal-Large-Language-Models, branch Evaluation, tools/eval_tool.zip:
# eval_tool/calculation.py (lines 136-147: acc and acc_plus per subtask, score = 100 * (acc + acc+),
# summed per type) run on the same answers.
MME_SCORES = {"existence": 125.0, "count": 50.0, "position": 200.0, "color": 0.0, "posters": 200.0,
              "celebrity": 50.0, "scene": 200.0, "landmark": 50.0, "artwork": 150.0, "OCR": 200.0,
              "commonsense_reasoning": 200.0, "numerical_calculation": 50.0, "text_translation": 50.0,
              "code_reasoning": 100.0}
MME_PERCEPTION, MME_COGNITION = 1225.0, 400.0


def _mme_release(root, qdir="questions_answers_YN"):
    for task, imgs in MME.items():
        split = task in ("artwork", "celebrity", "landmark", "posters", "scene")
        idir, tdir = (root / task / "images", root / task / qdir) if split else (root / task, root / task)
        tdir.mkdir(parents=True, exist_ok=True)
        for name, _ in imgs:
            _img(idir / name)
            stem = name.rsplit(".", 1)[0]
            (tdir / f"{stem}.txt").write_text(f"Is this {task} {name} true? Please answer yes or no.\tYes\n"
                                              f"Is this {task} {name} false? Please answer yes or no.\tNo\n")
    return root


class _Answers:
    """Generative stand-in (an ItemScorer) answering each question as MME says above (P(yes) 0.9 or 0.1)."""
    bs, enc, generative = 8, None, True

    def __init__(self):
        self.unreadable = {}
        self.said = {f"Is this {t} {n} {w}? Please answer yes or no.": a
                     for t, imgs in MME.items() for n, pair in imgs for w, a in zip(("true", "false"), pair)}

    def p_yes(self, images, questions):
        return np.array([0.9 if self.said[q] == "yes" else 0.1 for q in questions])


def test_mme_reads_both_release_layouts_and_scores_like_the_official_tool(tmp_path):
    res = run_bench(_Answers(), "mme", str(_mme_release(tmp_path / "MME_Benchmark_release_version")))
    for task, score in MME_SCORES.items():
        assert res.metrics[f"{task}:score"] == pytest.approx(score), task
    assert res.metrics["perception"] == pytest.approx(MME_PERCEPTION)
    assert res.metrics["cognition"] == pytest.approx(MME_COGNITION)
    t = res.table()
    assert t["n_subtasks:perception"] == 10 and t["n_subtasks:cognition"] == 4
    assert t["n_images:artwork:acc+"] == 3 and t["n_questions:artwork:acc"] == 6
    assert "| mme | perception | 1225.0 |" in markdown(rows({"m": {"mme": t}}))


def test_an_mme_subtask_that_yields_nothing_is_named_or_skipped_and_counted(tmp_path):
    root = _mme_release(tmp_path / "mme")
    (root / "scene" / "questions_answers_YN").rename(root / "scene" / "questions_answer_YN")
    with pytest.raises(B.BenchFileError, match="subtask 'scene' yields no question"):
        run_bench(_Answers(), "mme", str(root))
    res = run_bench(_Answers(), "mme", str(root), skip_missing=True)
    assert res.skipped == {"empty_subtask:scene": 1}
    assert res.table()["n_subtasks:perception"] == 9
    assert res.metrics["perception"] == pytest.approx(MME_PERCEPTION - MME_SCORES["scene"])


# ------------------------------------------------------------------ item 4: COCO-Order / Flickr30k-Order
def test_order_counts_a_tie_with_the_true_caption_as_right_as_aros_evaluate_scores():
    # mertyg/vision-language-models-are-bows @ 81fdd20d, dataset_zoo/aro_datasets.py lines 269-281
    # (COCO_Order.evaluate_scores: np.argmax over [true caption, 4 perturbations], correct if 0),
    # run on these scores: Precision@1 = 0.75.
    scores = np.array([[0.5, 0.5, 0.2, 0.1, 0.5], [0.3, 0.6, 0.1, 0.1, 0.1], [0.9, 0.1, 0.1, 0.1, 0.1],
                       [0.4, 0.4, 0.4, 0.4, 0.4]])
    assert np.mean([B.is_correct(s, 0, argmax=True) for s in scores]) == pytest.approx(0.75)
    assert not B.is_correct(np.array([0.5, 0.5]), 0)          # elsewhere a tie stays wrong


# ARO's TextShuffler (dataset_zoo/perturbations.py lines 50-118) and pre_caption (dataset_zoo/
# retrieval.py lines 15-35) in COCO_Order's loop (aro_datasets.py lines 232-240), after seed_all(1)
# (misc/__init__.py; main_aro.py line 18, default --seed 1), on this Karpathy-format file. Offline
# stand-ins in that run: spacy.load("en_core_web_sm") loaded the installed en_core_web_sm 3.8
# mirror, and Punkt's sentence split was the identity (every caption here is one sentence).
KARPATHY = [{"image": "val2014/COCO_val2014_000000391895.jpg", "image_id": "391895", "caption": [
    "A large brown dog's toy is lying on the green grass, next to a small red ball.",
    "Two men ride bikes down a busy city street."]},
    {"image": "val2014/COCO_val2014_000000522418.jpg", "image_id": "522418", "caption": [
        "A man is surfing.", "An old woman in a blue coat holds an umbrella near the Eiffel Tower."]}]
ARO_OPTIONS = [
    ["a large brown dog's toy is lying on the green grass, next to a small red ball",
     "a large green ball 's grass is lying on the red dog , next to a small brown toy",
     ", large brown dog lying toy a is to next green grass the on 's small red ball a",
     "large brown a toy dog 's is on lying the grass green next to , red a small ball",
     "is lying on a small red dog 's toy ball a large brown , next to the green grass"],
    ["two men ride bikes down a busy city street", "two street ride men down a busy city bikes",
     "ride men bikes down two busy city street a", "men two ride a bikes down city street busy",
     "busy city street bikes down a two men ride"],
    ["a man is surfing", "a man is surfing", "man a surfing is", "is a man surfing", "a man is surfing"],
    ["an old woman in a blue coat holds an umbrella near the eiffel tower",
     "an old woman in a blue umbrella holds an coat near the eiffel tower",
     "a old woman holds blue coat an in umbrella near an eiffel tower the",
     "woman an old blue in a holds coat an umbrella the near tower eiffel",
     "coat holds an in a blue umbrella near the an old woman eiffel tower"]]


def test_order_perturbations_are_aros_own_draws(tmp_path):
    f = tmp_path / "coco_karpathy_test.json"
    f.write_text(json.dumps(KARPATHY))
    items = B.load_order(f, seed=1)
    assert [it.texts for it in items] == ARO_OPTIONS
    assert all(it.image.endswith(k["image"]) for it, k in zip(items, [KARPATHY[0]] * 2 + [KARPATHY[1]] * 2))
    # a perturbation identical to its caption ties it, and the caption wins, as in ARO
    _img(tmp_path / KARPATHY[1]["image"])
    assert run_bench(Scorer(_Colors()), "coco-order", str(f), skip_missing=True).metrics["precision@1"] == 1.0


# ------------------------------------------------------------------ item 5: ConMe
def _conme_csv(path, header, rows_):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows_)


def conme_release(root):
    """The release's six files (huggingface.co/conme/ConMe: replace-{att,obj,rel}.csv and their
    _HUMAN_FILTER versions); columns as cfgen reads them (not checked against a real file)."""
    _img(root / "i.jpg", COLORS["red"])
    gen = ["image", "question", "answer", "base_question", "correct_option", "incorrect_option", "question_format"]
    hf = ["id", "image", "text_options", "correct_option"]
    right = ["i.jpg", "Which caption fits the image?", "A", "q", "a red kite", "a blue kite", "binary"]
    wrong = ["i.jpg", "Which caption fits the image?", "A", "q", "a blue kite", "a red kite", "binary"]
    _conme_csv(root / "replace-att.csv", gen, [right, right])
    _conme_csv(root / "replace-obj.csv", gen, [wrong, right])
    _conme_csv(root / "replace-rel.csv", gen, [wrong, wrong])
    _conme_csv(root / "replace-att_HUMAN_FILTER.csv", hf, [["1", "i.jpg", "['a blue kite', 'a red kite']", "a red kite"]])
    _conme_csv(root / "replace-obj_HUMAN_FILTER.csv", hf, [["2", "i.jpg", "['a red kite', 'a blue kite']", "a red kite"]])
    _conme_csv(root / "replace-rel_HUMAN_FILTER.csv", hf, [["3", "i.jpg", "['a red kite', 'a blue kite']", "a blue kite"]])
    return root


def test_conme_reports_the_generated_and_the_human_filtered_files_apart(tmp_path):
    r = run_bench(Scorer(_Colors()), "conme", str(conme_release(tmp_path)))
    assert (r.metrics["replace-att"], r.metrics["replace-obj"], r.metrics["replace-rel"]) == (1.0, 0.5, 0.0)
    assert r.metrics["avg"] == pytest.approx(0.5) and r.n["avg"] == 6
    assert r.metrics["avg_HUMAN_FILTER"] == pytest.approx(2 / 3) and r.n["avg_HUMAN_FILTER"] == 3
    items = B.load_conme(tmp_path)
    assert {it.question for it in items} == {"Which caption fits the image?", B.CONME_QUESTION}
    assert {it.correct for it in items} == {0, 1}                 # options shuffled per row, as ConMe does


# ------------------------------------------------------------------ item 6: VL-CheckList
def test_vl_checklist_category_figures_are_the_mean_over_corpus_files(tmp_path):
    # om-ai-lab/VL-CheckList @ 6f8d6a32, vl_checklist/evaluate.py lines 93-125: one accuracy per
    # corpus file (a pair is right when POS scores strictly above NEG, line 117). Layout: data/<Type>/
    # <source>/<file>.json lists of [image, {"POS", "NEG"}], image roots from corpus/ YAMLs.
    root = tmp_path / "vlc"
    _img(root / "imgs" / "1.jpg", COLORS["blue"])
    right = ["1.jpg", {"POS": ["a blue sky"], "NEG": ["a red sky"]}]
    wrong = ["1.jpg", {"POS": ["a red sky"], "NEG": ["a blue sky"]}]
    for typ, name, entries in [("Attribute", "color", [right]), ("Attribute", "material", [wrong] * 3),
                               ("Object", "size", [right, wrong])]:
        f = root / "data" / typ / "vg" / f"{name}.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(entries))
        y = root / "corpus" / "v1" / typ / name / "vg.yaml"
        y.parent.mkdir(parents=True, exist_ok=True)
        y.write_text(yaml.safe_dump({"ANNO_PATH": f"data/{typ}/vg/{name}.json", "IMG_ROOT": "imgs/"}))
    r = run_bench(Scorer(_Colors()), "vl-checklist", str(root))
    t = r.table()
    assert r.metrics["file:data/Attribute/vg/color.json"] == 1.0 and t["n_items:file:data/Attribute/vg/material.json"] == 3
    assert r.metrics["Attribute:mean_of_files"] == pytest.approx(0.5)           # pooled would be 1/4
    assert t["n_files:Attribute:mean_of_files"] == 2 and r.metrics["Object:mean_of_files"] == 0.5
    assert r.metrics["avg"] == pytest.approx(0.5) and t["n_categories:avg"] == 2


# ------------------------------------------------------------------ item 7: zero-shot and retrieval
# LAION-AI/CLIP_benchmark @ 48de38c1, clip_benchmark/metrics/zeroshot_classification.py: lines 16-57
# (zero_shot_classifier: each template's text embedding normalised, averaged, renormalised) and
# 60-82 (accuracy, top-k), run with a stand-in encode_text that looks the prompts up in TEXT and
# these unit image features: acc1 = 1/3, acc5 = 1.0 (one template would give acc1 0; the mean of
# unnormalised embeddings 1/6 and 5/6).
TEXT = {"a photo of a tench.": [0.03, -0.03, 0.16], "a drawing of a tench.": [-1.2, 0.81, 2.92],
        "a photo of a goldfish.": [-0.15, -0.26, -0.13], "a drawing of a goldfish.": [-1.61, -0.15, -0.86],
        "a photo of a shark.": [-0.75, -0.44, 0.57], "a drawing of a shark.": [-0.26, 2.75, -1.34],
        "a photo of a rooster.": [2.66, 0.28, -2.19], "a drawing of a rooster.": [-0.59, 0.28, -1.3],
        "a photo of a hen.": [-0.17, 0.58, 0.23], "a drawing of a hen.": [-0.79, -0.16, 0.94],
        "a photo of a ostrich.": [-1.44, 1.74, 1.54], "a drawing of a ostrich.": [0.51, -0.61, 2.84]}
IMG = [[1.8, 1.32, 0.36], [-1.21, -0.0, 0.66], [-1.29, 0.4, 0.43], [0.7, -1.18, -0.66], [-0.44, -1.17, 1.74],
       [-0.5, 0.33, -0.26]]


class _Table:
    """Embeds prompts from TEXT (unnormalised) and the image whose red value is 10 * i as IMG[i]."""

    def __init__(self):
        self.largest = 0

    def embed_texts(self, texts, batch_size=256):
        return torch.tensor([TEXT[t] for t in texts])

    def embed_images(self, imgs, batch_size=64):
        self.largest = max(self.largest, len(imgs))
        return torch.nn.functional.normalize(torch.tensor([IMG[np.asarray(im)[0, 0, 0] // 10] for im in imgs]), dim=-1)


def test_zeroshot_averages_the_template_ensemble_as_clip_benchmark_and_streams_images(tmp_path):
    names = ["tench", "goldfish", "shark", "rooster", "hen", "ostrich"]
    for i, n in enumerate(names):
        _img(tmp_path / f"class{i}" / "1.png", (10 * i, 0, 0))
    (tmp_path / "classnames.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "templates.txt").write_text("a photo of a {c}.\na drawing of a {c}.\n")
    enc = _Table()
    r = run_bench(Scorer(enc, batch_size=4), "zeroshot", str(tmp_path))
    assert r.metrics["top1"] == pytest.approx(1 / 3) and r.metrics["top5"] == pytest.approx(1.0)
    assert r.table()["n_images:top1"] == 6 and enc.largest == 4          # never more than a batch


def test_zeroshot_defaults_to_imagenet_class_names_and_the_80_templates(tmp_path):
    # clip_benchmark/datasets/builder.py lines 140-145 ("imagenet1k-unverified"): ImageFolder over the
    # val split's WordNet-id folders, class i named by en_classnames.json["imagenet1k"][i] (lines
    # 593-1593); templates en_zeroshot_classification_templates.json["imagenet1k"] (lines 42-123),
    # OpenAI CLIP's (notebooks/Prompt_Engineering_for_ImageNet.ipynb).
    for k in range(1000):
        (tmp_path / f"n{k:08d}").mkdir()
    files, labels, names, templates = B.load_image_folder(tmp_path)
    assert len(names) == 1000 and names[:3] == ["tench", "goldfish", "great white shark"] and names[-1] == "toilet paper"
    assert len(templates) == 80 and templates[0] == "a bad photo of a {c}." and "itap of a {c}." in templates
    (tmp_path / "templates.txt").write_text("a {c} with no brace closed {\n")
    with pytest.raises(B.BenchFileError, match="templates.txt"):
        B.load_image_folder(tmp_path)


def test_retrieval_streams_images_and_counts_images_and_captions(tmp_path):
    for c in COLORS:
        _img(tmp_path / "imgs" / f"{c}.jpg", COLORS[c])
    (tmp_path / "test.json").write_text(json.dumps([{"image": f"imgs/{c}.jpg", "caption": [f"a {c} thing", "something"]}
                                                    for c in COLORS]))
    enc = _Colors()
    r = run_bench(Scorer(enc, batch_size=2), "retrieval", str(tmp_path / "test.json"))
    assert r.metrics["i2t_R@1"] == 1.0 and r.metrics["t2i_R@1"] == pytest.approx(0.5) and enc.largest == 2
    t = r.table()
    assert t["n_images:i2t_R@1"] == 3 and t["n_captions:t2i_R@1"] == 6


# ------------------------------------------------------------------ item 8: reporting
def test_counts_say_what_they_count_and_large_values_print_in_full(tmp_path):
    # visual_genome_relation.json as ARO's VG_Relation reads it (aro_datasets.py lines 44-46: image
    # paths under images/; line 57: the bbox crop; lines 63-65: the two captions); evaluate_scores
    # (lines 95-103) reports one record per relation: the count of relations is not a metric row.
    root = tmp_path / "aro"
    rel = []
    for i, r in enumerate(["left of", "left of", "on", "next to"]):
        _img(root / "images" / f"{i}.jpg", COLORS["red"])
        rel.append({"image_id": str(i), "relation_name": r, "image_path": f"{i}.jpg", "bbox_x": 0, "bbox_y": 0,
                    "bbox_w": 8, "bbox_h": 8, "true_caption": "the red cup", "false_caption": "the blue cup"})
    (root / "visual_genome_relation.json").write_text(json.dumps(rel))
    t = run_bench(Scorer(_Colors()), "aro-vg-relation", str(root)).table()
    assert t == {"macro": 1.0, "micro": 1.0, "n_relations:macro": 2, "n_items:micro": 4}
    results = {"m": {"aro": t, "mme": {"perception": 1234.5, "n_subtasks:perception": 10}}}
    md = markdown(rows(results))
    assert "| mme | perception | 1234.5 |" in md and "e+03" not in md
    import pandas as pd
    long = pd.read_csv(write_reports(results, tmp_path / "out")["long_csv"])
    assert set(long.metric) == {"macro", "micro", "perception"}
    assert long.set_index("metric").loc["macro", ["n", "n_of"]].tolist() == [2, "relations"]
    assert long.set_index("metric").loc["perception", ["n", "n_of"]].tolist() == [10, "subtasks"]
