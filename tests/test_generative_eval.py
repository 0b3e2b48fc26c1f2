"""Generative VLMs (tiny random LLaVA-1.5 and Qwen2-VL built here): E5-V embeddings for training
and contrastive eval, LoRA, generative-likelihood scoring (S_gen = P(yes)), and the hallucination
benchmarks POPE and MME read from their released layouts."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cfgen.eval import benchmarks as B
from cfgen.eval.scoring import Scorer
from cfgen.eval.run import run_bench
from tests.helpers import ColorEncoder


@pytest.fixture(scope="module", params=["llava", "qwen2-vl", "qwen2.5-vl"])
def vlm(request, tmp_path_factory):
    from cfgen.testing import build_llava, build_qwen2_vl
    out = tmp_path_factory.mktemp(request.param) / "m"
    if request.param == "llava":
        return build_llava(out)
    return build_qwen2_vl(out, v25=request.param == "qwen2.5-vl")


def test_pope_metrics_by_hand():
    pred = [True, True, False, False, True, False]
    truth = [True, False, False, True, True, False]
    m = B.pope_metrics(pred, truth)
    # tp 2, fp 1, fn 1, tn 2
    assert m["accuracy"] == pytest.approx(4 / 6) and m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3) and m["yes_ratio"] == 0.5
    assert B.pope_metrics([False, False], [True, False])["precision"] == 0.0        # no yes answered


def test_mme_metrics_by_hand():
    mk = lambda g, img, a: B.YesNo("x.jpg", "q", a, f"{g}{img}", g, image_id=f"{g}:{img}")  # noqa: E731
    items = [mk("existence", 1, True), mk("existence", 1, False), mk("existence", 2, True), mk("existence", 2, False),
             mk("count", 1, True), mk("count", 1, False), mk("code_reasoning", 1, True), mk("code_reasoning", 1, False)]
    correct = [True, True, True, False, False, False, True, True]
    m, n = B.mme_metrics(items, correct)
    assert m["existence:acc"] == 0.75 and m["existence:acc+"] == 0.5 and m["existence:score"] == pytest.approx(125.0)
    assert m["count:score"] == 0.0 and m["perception"] == pytest.approx(125.0)
    assert m["cognition"] == pytest.approx(200.0)
    assert n["existence:acc"] == (4, "questions") and n["existence:acc+"] == (2, "images")
    assert n["perception"] == (2, "subtasks") and n["cognition"] == (1, "subtasks")


def _pope_dir(d, n=6):
    (d / "val2014").mkdir(parents=True)
    for split in ("random", "adversarial"):
        with open(d / f"coco_pope_{split}.json", "w") as f:
            for i in range(n):
                name = f"COCO_val2014_{i:012d}.jpg"
                Image.new("RGB", (40, 30), (30 * i, 200, 10)).save(d / "val2014" / name)
                f.write(json.dumps({"question_id": i, "image": name, "text": f"Is there a car {i} in the image?",
                                    "label": "yes" if i % 2 else "no"}) + "\n")
    return d


def _mme_dir(d):
    """Both layouts of the release (LLaVA's convert_answer_to_mme.py, get_gt, lines 24-30)."""
    for sub, layout in (("existence", "flat"), ("artwork", "split")):
        base = d / sub
        idir, qdir = (base, base) if layout == "flat" else (base / "images", base / "questions_answers_YN")
        idir.mkdir(parents=True, exist_ok=True)
        qdir.mkdir(parents=True, exist_ok=True)
        for i in range(3):
            Image.new("RGB", (32, 32), (10, 80 * i, 10)).save(idir / f"{i:04d}.jpg")
            (qdir / f"{i:04d}.txt").write_text("Is there a dog in the image?\tYes\nIs there a cat in the image?\tNo\n")
    return d


def test_pope_and_mme_load_their_released_layouts(tmp_path):
    qs = B.load_pope(_pope_dir(tmp_path / "pope"), str(tmp_path / "pope" / "val2014"))
    assert len(qs) == 12 and {q.group for q in qs} == {"random", "adversarial"}
    assert sum(q.answer for q in qs) == 6 and all(q.image.endswith(".jpg") for q in qs)
    mme = B.load_mme(_mme_dir(tmp_path / "mme"))
    assert len(mme) == 12 and {q.group for q in mme} == {"existence", "artwork"}
    assert len({q.image_id for q in mme}) == 6
    (tmp_path / "bad.json").write_text('{"image": "a.jpg", "text": "q", "label": "maybe"}\n')
    with pytest.raises(B.BenchFileError, match="bad.json: line 1"):
        B.load_pope(tmp_path / "bad.json")


def test_generative_scorer_is_a_probability_and_deterministic(vlm, tmp_path):
    from cfgen.eval.generative import GenerativeScorer
    s = GenerativeScorer(str(vlm), batch_size=3)
    imgs = [Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("RGB", (20, 50), (10, 10, 200))] * 2
    qs = ["Is it red?", "Does this image show a long caption about a blue thing?", "No?", "Yes"]
    p = s.p_yes(imgs, qs)
    assert p.shape == (4,) and np.all((p > 0) & (p < 1))
    # batching and padding do not change a score
    alone = np.concatenate([s.p_yes([im], [q]) for im, q in zip(imgs, qs)])
    assert np.allclose(p, alone, atol=1e-5)
    red = Image.new("RGB", (40, 30), (200, 10, 10))
    red.save(tmp_path / "red.png")
    scores = s.item_scores([B.Item(str(tmp_path / "red.png"), ["a red car", "a blue dog", "two rings"])])
    assert scores[0].shape == (3,) and np.allclose(scores[0], s.p_yes([red] * 3, [
        "Does this image show: a red car? Answer yes or no.", "Does this image show: a blue dog? Answer yes or no.",
        "Does this image show: two rings? Answer yes or no."]), atol=1e-5)


def test_p_yes_and_conme_ask_the_model_only_for_the_logits_they_read(vlm, tmp_path, monkeypatch):
    """P(yes) reads each row's last real token, ConMe's rule the positions that predict the letter:
    the model computes logits only from there on (logits_to_keep), and P(yes) equals what the full
    logits give by hand, whichever side the processor pads."""
    import torch
    from cfgen.eval.generative import GenerativeScorer
    s = GenerativeScorer(str(vlm), batch_size=2)
    imgs = [Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("RGB", (20, 50), (10, 10, 200))]
    qs = ["Is it red?", "Does this image show a long caption about a blue thing?"]
    enc = s.processor(images=imgs, text=[s.prompt(q) for q in qs], return_tensors="pt", padding=True)
    with torch.no_grad():
        full = s.model(**enc).logits.float()
    last = [max(j for j, m in enumerate(row) if m) for row in enc["attention_mask"].tolist()]
    want = []
    for i, pos in enumerate(last):
        lp = torch.log_softmax(full[i, pos], -1)
        want.append(float(torch.sigmoid(torch.logsumexp(lp[s.yes], -1) - torch.logsumexp(lp[s.no], -1))))
    asked = []
    forward = s.model.forward

    def spy(*a, **kw):
        asked.append(kw.get("logits_to_keep"))
        return forward(*a, **kw)
    monkeypatch.setattr(s.model, "forward", spy)
    assert np.allclose(s.p_yes(imgs, qs), want, atol=1e-5)
    assert asked == [full.shape[1] - min(last)] and asked[0] < full.shape[1]
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "i.jpg")
    asked.clear()
    s.conme_scores([B.Item(str(tmp_path / "i.jpg"), ["a red kite", "a blue kite"], question="Which fits?")])
    letters = [len(s.processor.tokenizer.encode(L, add_special_tokens=False)) for L in "AB"]
    assert asked == [n + 1 for n in letters]


def test_eval_in_both_scoring_modes(vlm, tmp_path, world_clip):
    from cfgen.eval.generative import GenerativeScorer
    from cfgen.eval.run import evaluate
    gen = GenerativeScorer(str(vlm))
    pope = _pope_dir(tmp_path / "pope")
    r = run_bench(gen, "pope", str(pope), str(pope / "val2014"))
    for split in ("random", "adversarial", "all"):
        assert 0.0 <= r.metrics[f"{split}:accuracy"] <= 1.0 and r.n[f"{split}:accuracy"] == (12 if split == "all" else 6)
    mme = run_bench(gen, "mme", str(_mme_dir(tmp_path / "mme")))
    assert 0.0 <= mme.metrics["existence:score"] <= 200.0 and "perception" in mme.metrics
    assert mme.n["existence:acc"] == 6 and mme.table()["n_subtasks:perception"] == 2
    # a multiple-choice benchmark scored generatively, and contrastively, through the same entry point
    world = tmp_path / "w"
    from cfgen.world.generate import WorldConfig, generate_world
    generate_world(world, WorldConfig(n=10, n_test=6, per_shard=10, seed=2))
    g = evaluate(str(vlm), {"world": str(world)}, scoring="generative")["world"]
    c = evaluate(str(world_clip), {"world": str(world)}, scoring="contrastive")["world"]
    assert set(g.metrics) == set(c.metrics) and all(0 <= v <= 1 for v in g.metrics.values())
    with pytest.raises(ValueError, match="generative model"):
        run_bench(Scorer(ColorEncoder()), "pope", str(pope), str(pope / "val2014"))
    with pytest.raises(ValueError, match="contrastive"):
        run_bench(gen, "winoground", str(tmp_path))


def test_conme_is_also_scored_by_its_own_rule_the_letters_language_model_loss(vlm, tmp_path):
    """ConMe's score_options (jmiemirza/ConMe @ fd8b985c, dec_vl_eval/src/models/score.py lines
    84-86 and 113-121, 252, 274): the question, "A. <option>" lines and "Answer with the option's
    letter from the given choices directly." as the prompt; an option scores -loss of its letter as
    the answer (labels masked over the prompt, the model's own loss), the highest wins."""
    import csv
    import torch
    from cfgen.eval.generative import GenerativeScorer
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "i.jpg")
    with open(tmp_path / "replace-att.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "question", "answer", "base_question", "correct_option", "incorrect_option"])
        w.writerow(["i.jpg", "Which caption fits?", "A", "q", "a red kite", "a blue kite"])
        w.writerow(["i.jpg", "Which caption fits?", "A", "q", "two dogs", "a cat"])
    gen = GenerativeScorer(str(vlm))
    items = B.load_conme(tmp_path)
    got = gen.conme_scores(items)
    tok = gen.processor.tokenizer
    for it, scores in zip(items, got):
        q = f"Which caption fits?\nA. {it.texts[0]}\nB. {it.texts[1]}\nAnswer with the option's letter from the given choices directly."
        enc = gen.processor(images=[Image.open(tmp_path / "i.jpg").convert("RGB")], text=[gen.prompt(q)], return_tensors="pt")
        for letter, s in zip("AB", scores):
            ans = torch.tensor([tok.encode(letter, add_special_tokens=False)])
            kw = dict(enc)
            for k in [k for k, v in enc.items() if torch.is_tensor(v) and v.shape == enc["input_ids"].shape]:
                kw[k] = torch.cat([enc[k], ans if k == "input_ids" else (torch.ones_like(ans) if k == "attention_mask"
                                                                          else torch.zeros_like(ans))], 1)
            labels = torch.full_like(kw["input_ids"], -100)
            labels[:, -ans.shape[1]:] = ans
            with torch.no_grad():
                assert s == pytest.approx(-float(gen.model(**kw, labels=labels).loss), abs=1e-4)
    r = run_bench(gen, "conme", str(tmp_path))
    assert {"replace-att", "avg", "loss_score:replace-att", "loss_score:avg"} <= set(r.metrics)
    right = np.mean([int(np.argmax(s)) == it.correct for s, it in zip(got, items)])
    assert r.metrics["loss_score:replace-att"] == pytest.approx(right)


def test_cli_eval_generative_pope(vlm, tmp_path):
    pope = _pope_dir(tmp_path / "pope")
    r = subprocess.run([sys.executable, "-m", "cfgen.cli", "eval", "--model", str(vlm), "--scoring", "generative",
                        "--bench", f"pope={pope}", "--image-root", f"pope={pope / 'val2014'}",
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res[str(vlm)]["pope"]["n_questions:all:f1"] == 12


def test_a_generative_vlm_is_a_dual_encoder_for_training_and_eval(vlm, world_final, small_world, tmp_path):
    """E5-V prompt embeddings: every recipe trains the VLM through the same trainer, the result
    saves and reloads, and the contrastive eval scores it."""
    import torch
    from cfgen.eval.run import evaluate
    from cfgen.train.model import DualEncoder
    from cfgen.train.trainer import recipe_config, train
    enc = DualEncoder.load(vlm)
    assert enc.kind == "vlm"
    ims = [Image.new("RGB", (64, 64), (200, 10, 10)), Image.new("RGB", (50, 40), (10, 10, 200))]
    a, t = enc.embed_images(ims), enc.embed_texts(["a red square", "a blue ring to the left of a red cross"])
    assert a.shape == t.shape == (2, 32) and torch.allclose(a.norm(dim=-1), torch.ones(2), atol=1e-4)
    assert torch.allclose(enc.embed_images(ims[:1]), a[:1], atol=1e-5)            # batch-independent
    assert torch.allclose(enc.embed_texts(["a red square"]), t[:1], atol=1e-5)      # padding-independent
    before = {k: v.clone() for k, v in enc.model.state_dict().items()}
    for recipe in ("std-ft", "cf-vlm", "cf-vlm-plus"):
        out = tmp_path / recipe
        cfg = recipe_config(recipe, {"shards": [str(world_final / "final")], "model": str(vlm), "out": str(out),
                                     "batch_size": 8, "micro_batch": 8, "max_steps": 4, "lr": 1e-3, "warmup_steps": 1,
                                     "num_workers": 0, "log_every": 1, "save_every": 2, "k": 2, "shuffle_buffer": 20})
        assert train(cfg)["step"] == 4
        logs = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
        assert [x["step"] for x in logs] == [1, 2, 3, 4] and all(np.isfinite(x["loss"]) for x in logs)
        if recipe != "std-ft":
            assert any(x["csd"] > 0 or x["fcd"] > 0 for x in logs)
    trained = DualEncoder.load(tmp_path / "cf-vlm-plus")
    assert trained.kind == "vlm"
    after = trained.model.state_dict()
    assert any(not torch.allclose(before[k], after[k]) for k in before if k in after)
    m = evaluate(str(tmp_path / "cf-vlm-plus"), {"world": str(small_world)})["world"].metrics
    assert m and all(0.0 <= v <= 1.0 for v in m.values())


def test_lora_trains_only_adapters_saves_them_for_plain_peft_and_resumes_exactly(vlm, world_final, world_clip,
                                                                                 tmp_path):
    import shutil
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText
    from cfgen.train.trainer import recipe_config, train

    def cfg(out, **kw):
        return recipe_config("cf-vlm-plus", {"shards": [str(world_final / "final")], "model": str(vlm), "out": str(out),
                                             "batch_size": 8, "micro_batch": 8, "max_steps": 4, "lr": 5e-3,
                                             "warmup_steps": 1, "num_workers": 0, "log_every": 1, "save_every": 2,
                                             "k": 2, "shuffle_buffer": 20, "lora_rank": 4, "lora_alpha": 8,
                                             "gradient_checkpointing": True, **kw})
    out = tmp_path / "lora"
    assert train(cfg(out))["step"] == 4
    base = AutoModelForImageTextToText.from_pretrained(vlm).state_dict()
    merged = AutoModelForImageTextToText.from_pretrained(out).state_dict()        # plain transformers
    changed = {k for k in base if not torch.allclose(base[k], merged[k])}
    assert changed and all("language_model" in k and k.split(".")[-2] in ("q_proj", "k_proj", "v_proj", "o_proj")
                           for k in changed), changed
    peft_model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(vlm), out / "adapter")
    remerged = peft_model.merge_and_unload().state_dict()                          # plain peft
    assert all(torch.allclose(remerged[k], merged[k], atol=1e-6) for k in merged)
    # kill after the step-2 checkpoint (here: remove what came later) and resume: the same adapter
    again = tmp_path / "again"
    shutil.copytree(out, again)
    shutil.rmtree(again / "checkpoints" / "step-0000004")
    (again / "adapter" / "adapter_model.safetensors").unlink()
    assert train(cfg(again, resume=True))["step"] == 4
    a, b = load_file(str(out / "adapter" / "adapter_model.safetensors")), \
        load_file(str(again / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    from tests.helpers import train_cfg
    with pytest.raises(ValueError, match="LoRA is for generative VLMs"):
        train(train_cfg(world_final, world_clip, tmp_path / "x", lora_rank=2))


@pytest.mark.parametrize("recipe", ["std-ft", "cf-vlm", "cf-vlm-plus"])
def test_a_few_lora_steps_of_each_recipe_reduce_its_loss(vlm, world_final, tmp_path, recipe):
    import torch
    from cfgen.train.data import make_loader
    from cfgen.train.model import DualEncoder, FeatureModule
    from cfgen.train.losses import CFVLMLoss
    from cfgen.train.trainer import recipe_config, train
    cfg = recipe_config(recipe, {"shards": [str(world_final / "final")], "model": str(vlm), "out": str(tmp_path / "o"),
                                 "batch_size": 16, "micro_batch": 16, "max_steps": 12, "lr": 1e-2, "warmup_steps": 1,
                                 "num_workers": 0, "log_every": 1, "save_every": 0, "k": 2, "shuffle_buffer": 20,
                                 "lora_rank": 8, "lora_alpha": 16})
    shard = sorted((world_final / "final").glob("*.tar"))[0]

    def loss_of(model_dir) -> float:         # the recipe's loss on one fixed batch of its training data
        enc = DualEncoder.load(model_dir)
        b = next(iter(make_loader([str(shard)], enc.pre, k=2, micro_batch=16, seed=0, epoch=0, shuffle_buffer=1,
                                  num_workers=0)))
        with torch.no_grad():
            img, txt = FeatureModule(enc.model)(b.pixel_values, b.input_ids, b.attention_mask)
            return float(CFVLMLoss(cfg)(img, txt, b.n, b.cf_owner, b.cf_slot, b.mask, b.local,
                                        enc.model.logit_scale)["total"])
    before = loss_of(vlm)
    train(cfg)
    assert loss_of(tmp_path / "o") < before - 1e-3


def test_cli_trains_a_vlm_with_its_paper_recipe_and_evals_it_in_both_modes(vlm, world_final, small_world, tmp_path):
    """`cfgen train --model <tiny VLM> --recipe <the paper's recipe for its family>` (LoRA, E5-V
    embeddings), then `cfgen eval` of the result, contrastive and generative."""
    from transformers import AutoConfig
    recipe = {"qwen2_vl": "cf-vlm-qwen2-vl-2b", "qwen2_5_vl": "cf-vlm-qwen2.5-vl-7b",
              "llava": "cf-vlm-llava-7b"}[AutoConfig.from_pretrained(vlm).model_type]
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cfgen.cli", "train", "--model", str(vlm), "--recipe", recipe, "--shards",
           str(world_final / "final"), "--out", str(out), "--max-steps", "2", "--batch-size", "8", "--micro-batch",
           "8", "--k", "2", "--precision", "fp32", "--num-workers", "0", "--save-every", "0", "--warmup-steps", "1",
           "--lora-rank", "4", "--no-gradient-checkpointing"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.loads((out / "train_config.json").read_text())
    assert cfg["lora_rank"] == 4 and cfg["lora_alpha"] == 32 and cfg["beta"] == 0.45 and cfg["model"] == str(vlm)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    for scoring in ("contrastive", "generative"):
        r = subprocess.run([sys.executable, "-m", "cfgen.cli", "eval", "--model", str(out), "--scoring", scoring,
                            "--bench", f"world={small_world}", "--out", str(tmp_path / scoring)],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        res = json.loads((tmp_path / scoring / "results.json").read_text())[str(out)]["world"]
        scores = [v for k, v in res.items() if not k.startswith("n_")]
        assert scores and all(0.0 <= v <= 1.0 for v in scores), res


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from cfgen.testing import build_qwen2_vl
    return build_qwen2_vl(tmp_path_factory.mktemp("qwen") / "m")


def test_qwen_inputs_expand_each_image_to_its_token_count(qwen, tmp_path):
    """Without torchvision, Qwen2-VL inputs come from the image processor and tokenizer: each
    placeholder becomes grid_t*grid_h*grid_w / merge^2 image tokens, marked for M-RoPE."""
    import torch
    from cfgen.train.vlm import QWEN_IMAGE, QwenVLInputs
    p = QwenVLInputs.from_pretrained(qwen)
    ims = [Image.new("RGB", (32, 32)), Image.new("RGB", (16, 24))]       # patch 4: grids 8x8 and 6x4 (h x w)
    enc = p(images=ims, text=[f"{QWEN_IMAGE}a red car", f"two dogs {QWEN_IMAGE}"], padding=True)
    assert enc["image_grid_thw"].tolist() == [[1, 8, 8], [1, 6, 4]]
    assert enc["pixel_values"].shape == (64 + 24, 3 * 2 * 4 * 4)
    n_img = (enc["input_ids"] == p.image_token_id).sum(1).tolist()
    assert n_img == [16, 6]
    assert torch.equal(enc["mm_token_type_ids"], (enc["input_ids"] == p.image_token_id).long())
    with pytest.raises(ValueError, match="1 image"):
        p(images=ims[:1], text=[QWEN_IMAGE * 2])
    with pytest.raises(ValueError, match="2 image"):
        p(images=ims, text=[QWEN_IMAGE])
    p.save_pretrained(tmp_path / "saved")
    q = QwenVLInputs.from_pretrained(tmp_path / "saved")
    again = q(images=ims, text=[f"{QWEN_IMAGE}a red car", f"two dogs {QWEN_IMAGE}"], padding=True)
    assert all(torch.equal(enc[k], again[k]) for k in enc)
    msg = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is it red?"}]}]
    assert q.apply_chat_template(msg, add_generation_prompt=True) == \
        f"<|im_start|>user\n{QWEN_IMAGE}Is it red?<|im_end|>\n<|im_start|>assistant\n"


def test_qwen_inputs_match_the_official_processor_where_torchvision_is_installed(qwen):
    pytest.importorskip("torchvision")
    import torch
    from transformers import AutoProcessor
    from cfgen.train.vlm import QWEN_IMAGE, QwenVLInputs, load_processor
    mine = QwenVLInputs.from_pretrained(qwen)
    official = AutoProcessor.from_pretrained(qwen)
    assert type(load_processor(qwen)).__name__ == "Qwen2VLProcessor"          # the official one where it can be built
    ims, texts = [Image.new("RGB", (32, 32), (200, 0, 0)), Image.new("RGB", (16, 24))], [f"{QWEN_IMAGE}a", f"b {QWEN_IMAGE}"]
    a, b = mine(images=ims, text=texts), official(images=ims, text=texts, return_tensors="pt", padding=True)
    assert all(torch.equal(a[k], b[k]) for k in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw",
                                                 "mm_token_type_ids"))


def test_qwen_embeddings_use_one_square_side_for_every_image(qwen):
    """Every image is resized to one side (448 px for the real model, within the processor's
    bounds), so a batch of any aspect ratios has one token count and one prompt."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from cfgen.train.model import DualEncoder
    from cfgen.train.vlm import qwen_side
    assert qwen_side(Qwen2VLImageProcessorPil()) == 448                   # the released processor's bounds
    enc = DualEncoder.load(qwen)
    assert enc.pre.side == 32                                             # the tiny one's max_pixels = 32 x 32
    ims = [Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("RGB", (20, 50), (10, 10, 200))]
    assert enc.pixels(ims).shape == (2, 64, 96)
    assert int((enc.model.image_ids == enc.model.config.image_token_id).sum()) == 16


def test_mean_pooling_is_saved_with_the_model_and_is_padding_independent(tmp_path):
    """`pooling: mean` (the mean of the final states over the prompt's tokens) survives a save and
    a load, differs from E5-V's last token, and does not depend on the batch's padding."""
    import torch
    from cfgen.train.model import DualEncoder
    from cfgen.world import world_words
    from cfgen.demo.vlm import build_world_vlm
    build_world_vlm(tmp_path / "m", world_words(), image_size=32, patch_size=8, pooling="mean")
    enc = DualEncoder.load(tmp_path / "m")
    assert enc.model.pooling == "mean"
    texts = ["a red square", "a blue ring to the left of a red cross"]
    t = enc.embed_texts(texts)
    assert torch.allclose(enc.embed_texts(texts[:1]), t[:1], atol=1e-5)
    enc.model.pooling = "last"
    assert not torch.allclose(enc.embed_texts(texts), t, atol=1e-3)
    enc.model.pooling = "mean"
    enc.model.save_pretrained(tmp_path / "saved")
    enc.processor.save_pretrained(tmp_path / "saved")
    assert DualEncoder.load(tmp_path / "saved").model.pooling == "mean"
    with pytest.raises(ValueError, match="pooling"):
        build_world_vlm(tmp_path / "x", world_words(), image_size=32, patch_size=8, pooling="max")
