"""Formulas checked against numbers worked out by hand in each test (issue #26).

Every expected value below comes from the arithmetic written next to it, never from the code
under test, and each case is built so that the plausible wrong formula gives a different number
(weights swapped, the wrong mask, the wrong similarity, the wrong threshold, ...).
`bench/mutants.py` plants those wrong formulas and checks that these tests fail.
"""
import copy
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from cfgen.train.losses import CFVLMLoss
from cfgen.train.trainer import TrainConfig


def t64(rows):
    return torch.tensor(rows, dtype=torch.float64)


def lse(*xs):
    """log(sum(exp(x))), written out."""
    return math.log(sum(math.exp(x) for x in xs))


# --------------------------------------------------------------------------- compute_losses
# Two anchors, K = 2 slots. Anchor 0 has one LOCAL counterfactual in slot 0; anchor 1 has one
# GLOBAL counterfactual in slot 1 (slot 0 empty). Unit vectors with 3-4-5 components, so every
# cosine is a short decimal:
I_A = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]            # anchor images
T_A = [[0.8, 0.6, 0.0], [0.0, 0.6, 0.8]]            # anchor captions
I_CF = [[0.6, 0.8, 0.0], [0.0, 0.8, 0.6]]           # cf images: (anchor 0, slot 0), (anchor 1, slot 1)
T_CF = [[0.0, 0.8, 0.6], [0.6, 0.8, 0.0]]           # cf captions, same order
# S(I_a, T_a):       anchor 0: 1*0.8 = 0.8      anchor 1: 1*0.6 = 0.6
# S(I_cf, T_cf):     cf 0: 0.8*0.8 = 0.64       cf 1: 0.8*0.8 = 0.64
# S(I_cf, T_a):      cf 0 vs T_a0: 0.48 + 0.48 = 0.96     cf 1 vs T_a1: 0.48 + 0.48 = 0.96
# align, image i vs caption j (S): [[0.8, 0.0], [0.6, 0.6]]
# extra captions T_cf vs images:   I_a0: [0.0, 0.6]   I_a1: [0.8, 0.8]
# extra images I_cf vs captions:   T_a0: [0.96, 0.48] T_a1: [0.48, 0.96]


def _batch():
    img = t64(I_A + I_CF).requires_grad_()
    txt = t64(T_A + T_CF).requires_grad_()
    owner, slot = torch.tensor([0, 1]), torch.tensor([0, 1])
    mask = torch.tensor([[True, False], [False, True]])
    local = torch.tensor([[True, False], [False, False]])
    return img, txt, owner, slot, mask, local


def _losses(scale, **cfg):
    img, txt, owner, slot, mask, local = _batch()
    ls = torch.tensor(math.log(scale), dtype=torch.float64, requires_grad=True)
    out = CFVLMLoss(TrainConfig(**cfg))(img, txt, 2, owner, slot, mask, local, ls)
    return {k: float(v.detach()) for k, v in out.items()}, out, ls


def _infonce(rows_i, rows_t, s):
    """Eq. 1 by hand: rows_i[i] = S of image i against (caption i first, then every other
    candidate caption); rows_t[i] the same for caption i against images."""
    li = -sum(s * r[0] - lse(*[s * x for x in r]) for r in rows_i) / len(rows_i)
    lt = -sum(s * r[0] - lse(*[s * x for x in r]) for r in rows_t) / len(rows_t)
    return (li + lt) / 2


def test_compute_losses_cosine_every_weight_and_mask():
    """The weighted total and both masks: csd over every valid counterfactual (m1), fcd over the
    local ones only (m2), each with its own weight."""
    got, _, _ = _losses(10.0, alpha=0.7, beta=0.2, gamma=0.9, m1=0.25, m2=0.30)
    s = 10.0
    # align (1/tau = 10): image rows (own caption first), caption rows (own image first)
    align = _infonce([[0.8, 0.0], [0.6, 0.6]], [[0.8, 0.6], [0.6, 0.0]], s)
    # csd: anchor 0: max(0, 0.64 - 0.8 + 0.25) = 0.09; anchor 1: max(0, 0.64 - 0.6 + 0.25) = 0.29
    csd = (0.09 + 0.29) / 2                                             # = 0.19
    # fcd: only anchor 0 has a local edit: max(0, 0.96 - 0.8 + 0.30) = 0.46
    # (counting anchor 1's global edit too would give (0.46 + 0.66) / 2 = 0.56)
    fcd = 0.46
    assert got["align"] == pytest.approx(align, abs=1e-9)
    assert got["csd"] == pytest.approx(csd, abs=1e-9)
    assert got["fcd"] == pytest.approx(fcd, abs=1e-9)
    # total = 0.7 * align + 0.2 * 0.19 + 0.9 * 0.46   (beta and gamma swapped: 0.2 * 0.46 + 0.9 * 0.19)
    assert got["total"] == pytest.approx(0.7 * align + 0.2 * 0.19 + 0.9 * 0.46, abs=1e-9)


def test_compute_losses_paper_defaults():
    """With the paper's weights (alpha 1, beta 0.45, gamma 0.55, m1 0.25, m2 0.30)."""
    got, _, _ = _losses(10.0)
    align = _infonce([[0.8, 0.0], [0.6, 0.6]], [[0.8, 0.6], [0.6, 0.0]], 10.0)
    assert got["total"] == pytest.approx(1.0 * align + 0.45 * 0.19 + 0.55 * 0.46, abs=1e-9)


def test_compute_losses_logit_hinge_space():
    """hinge_space=logit: hinges on S / tau with the margins in logits, and tau is not trained
    through them (its gradient from csd + fcd is zero)."""
    got, out, ls = _losses(10.0, hinge_space="logit", alpha=1.0, beta=0.45, gamma=0.55)
    # csd: anchor 0: max(0, 10*(0.64 - 0.8) + 0.25) = max(0, -1.35) = 0
    #      anchor 1: max(0, 10*(0.64 - 0.6) + 0.25) = 0.65             -> mean 0.325
    # fcd: anchor 0: max(0, 10*(0.96 - 0.8) + 0.30) = 1.9
    assert got["csd"] == pytest.approx(0.325, abs=1e-9)
    assert got["fcd"] == pytest.approx(1.9, abs=1e-9)
    align = _infonce([[0.8, 0.0], [0.6, 0.6]], [[0.8, 0.6], [0.6, 0.0]], 10.0)
    assert got["total"] == pytest.approx(align + 0.45 * 0.325 + 0.55 * 1.9, abs=1e-9)
    g, = torch.autograd.grad(out["csd"] + out["fcd"], ls, allow_unused=True)
    assert g is None or float(g) == 0.0


@pytest.mark.parametrize("mode", ["one", "all"])
def test_compute_losses_text_negatives(mode):
    """Counterfactual captions as extra candidates for every image: `one` = slot 0 of each
    anchor only (anchor 1's caption sits in slot 1, so it is left out), `all` = every valid one."""
    got, _, _ = _losses(10.0, text_negatives=mode)
    # image 0 row: own caption 0.8, other caption 0.0, extras T_cf0 0.0 (+ T_cf1 0.6 with `all`)
    # image 1 row: own caption 0.6, other caption 0.6, extras T_cf0 0.8 (+ T_cf1 0.8 with `all`)
    extra = {"one": [[0.0], [0.8]], "all": [[0.0, 0.6], [0.8, 0.8]]}[mode]
    rows_i = [[0.8, 0.0] + extra[0], [0.6, 0.6] + extra[1]]
    align = _infonce(rows_i, [[0.8, 0.6], [0.6, 0.0]], 10.0)       # caption side unchanged
    assert got["align"] == pytest.approx(align, abs=1e-9)
    assert got["total"] == pytest.approx(align + 0.45 * 0.19 + 0.55 * 0.46, abs=1e-9)


def test_compute_losses_image_negatives():
    """Counterfactual images as extra candidates for every anchor caption."""
    got, _, _ = _losses(10.0, image_negatives=True)
    # caption 0 row: own image 0.8, other image 0.6, extras I_cf0 0.96, I_cf1 0.48
    # caption 1 row: own image 0.6, other image 0.0, extras I_cf0 0.48, I_cf1 0.96
    align = _infonce([[0.8, 0.0], [0.6, 0.6]], [[0.8, 0.6, 0.96, 0.48], [0.6, 0.0, 0.48, 0.96]], 10.0)
    assert got["align"] == pytest.approx(align, abs=1e-9)


def test_compute_losses_cf_in_batch():
    """cf_in_batch: each (I_cf, T_cf) joins InfoNCE as a pair of its own (4 x 4)."""
    got, _, _ = _losses(10.0, cf_in_batch=True)
    # images [I_a0, I_a1, I_cf0, I_cf1] x captions [T_a0, T_a1, T_cf0, T_cf1]:
    #   I_a0:  0.8   0.0   0.0   0.6
    #   I_a1:  0.6   0.6   0.8   0.8
    #   I_cf0: 0.96  0.48  0.64  1.0     (I_cf0 . T_cf1 = 0.36 + 0.64)
    #   I_cf1: 0.48  0.96  1.0   0.64    (I_cf1 . T_cf0 = 0.64 + 0.36)
    S = [[0.8, 0.0, 0.0, 0.6], [0.6, 0.6, 0.8, 0.8], [0.96, 0.48, 0.64, 1.0], [0.48, 0.96, 1.0, 0.64]]
    rows_i = [[S[i][i]] + [S[i][j] for j in range(4) if j != i] for i in range(4)]
    rows_t = [[S[i][i]] + [S[j][i] for j in range(4) if j != i] for i in range(4)]
    assert got["align"] == pytest.approx(_infonce(rows_i, rows_t, 10.0), abs=1e-9)


def test_collator_masks_valid_slots_and_local_edits():
    """mask marks every counterfactual a sample has, local only those with a local edit; features
    are laid out anchors first, then counterfactuals with their owner and slot."""
    from cfgen.train.data import Collator

    class Pre:
        def pixels(self, imgs):
            return torch.tensor([[float(x)] for x in imgs])

        def tokens(self, txts):
            return {"input_ids": torch.tensor([[len(x)] for x in txts])}

    ex = [{"key": "a", "image": 0, "caption": "a0", "cfs": [(1, "c-a-0", True), (2, "c-a-1x", False)]},
          {"key": "b", "image": 3, "caption": "b00", "cfs": []},
          {"key": "c", "image": 4, "caption": "c000", "cfs": [(5, "c-c-0xx", False)]}]
    b = Collator(Pre(), k=3)(ex)
    assert b.n == 3 and b.keys == ["a", "b", "c"]
    assert b.pixel_values.flatten().tolist() == [0, 3, 4, 1, 2, 5]
    assert b.input_ids.flatten().tolist() == [2, 3, 4, 5, 6, 7]
    assert b.cf_owner.tolist() == [0, 0, 2] and b.cf_slot.tolist() == [0, 1, 0]
    assert b.mask.tolist() == [[True, True, False], [False, False, False], [True, False, False]]
    assert b.local.tolist() == [[True, False, False], [False, False, False], [False, False, False]]


# --------------------------------------------------------------------------- accumulation
class _Toy(torch.nn.Module):
    """A dual encoder small enough to differentiate by hand-free autograd: pixels [B, 4] -> a
    linear map; token ids -> mean embedding; both L2-normalised."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.vis = torch.nn.Parameter(torch.randn(4, 3, generator=g))
        self.emb = torch.nn.Parameter(torch.randn(7, 3, generator=g))
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, pixel_values, input_ids, attention_mask):
        img = torch.nn.functional.normalize(pixel_values @ self.vis, dim=-1)
        txt = torch.nn.functional.normalize(self.emb[input_ids].mean(1), dim=-1)
        return img, txt


def _micro(seed, n=2):
    """A micro-batch of n anchors, each with one local counterfactual in slot 0."""
    from cfgen.train.data import Batch
    g = torch.Generator().manual_seed(seed)
    return Batch(pixel_values=torch.randn(2 * n, 4, generator=g),
                 input_ids=torch.randint(0, 7, (2 * n, 3), generator=g),
                 attention_mask=torch.ones(2 * n, 3, dtype=torch.long), n=n,
                 cf_owner=torch.arange(n), cf_slot=torch.zeros(n, dtype=torch.long),
                 mask=torch.tensor([[True, False]] * n), local=torch.tensor([[True, False]] * n))


def _cat(b1, b2):
    """One batch of the anchors of b1 and b2 (anchors first, then their counterfactuals)."""
    from cfgen.train.data import Batch
    n1, n2 = b1.n, b2.n
    cat = lambda f: torch.cat([f(b1)[:n1], f(b2)[:n2], f(b1)[n1:], f(b2)[n2:]])  # noqa: E731
    return Batch(pixel_values=cat(lambda b: b.pixel_values), input_ids=cat(lambda b: b.input_ids),
                 attention_mask=cat(lambda b: b.attention_mask), n=n1 + n2,
                 cf_owner=torch.cat([b1.cf_owner, b2.cf_owner + n1]), cf_slot=torch.cat([b1.cf_slot, b2.cf_slot]),
                 mask=torch.cat([b1.mask, b2.mask]), local=torch.cat([b1.local, b2.local]))


def _step(batches, accum, cfg, lr=0.1):
    """One optimiser step of the trainer's own accumulate + update with plain SGD, no clipping,
    a constant schedule. Returns (model before, model after)."""
    from accelerate import Accelerator
    from cfgen.train import trainer as tr
    from cfgen.train.data import SkipCounter
    acc = Accelerator(cpu=True)
    model = _Toy().to(acc.device)         # the device an earlier Accelerator in this process chose
    before = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    enc = SimpleNamespace(pre=SimpleNamespace(on_device=lambda x: x))    # pixels are already features
    run = tr.Run(cfg=cfg, accelerator=acc, encoder=enc, features=model, model=model, loss=CFVLMLoss(cfg), opt=opt,
                 sched=sched, state={"step": 0, "epoch": 0, "batches_in_epoch": 0, "anchors_seen": 0}, urls=[],
                 micro=batches[0].n, accum=accum, skipped=SkipCounter())
    sums = tr.accumulate(run, iter(batches))
    tr.update(run, sums)
    return before.cpu(), model.cpu(), {k: v.cpu() for k, v in sums.items()}


def _grads(model, batch, cfg):
    """d total / d params of one micro-batch, by plain autograd (no trainer code)."""
    img, txt = model(batch.pixel_values, batch.input_ids, batch.attention_mask)
    out = CFVLMLoss(cfg)(img, txt, batch.n, batch.cf_owner, batch.cf_slot, batch.mask, batch.local,
                         model.logit_scale)
    return torch.autograd.grad(out["total"], [model.vis, model.emb])


def test_accumulation_two_micro_batches_equal_one_full_batch():
    """The hinge losses are means over anchors, so with alpha = 0 two micro-batches of 2
    (accumulated) and one batch of 4 must take exactly the same SGD step."""
    cfg = TrainConfig(alpha=0.0, beta=0.45, gamma=0.55, m1=3.0, m2=3.0, grad_clip=0.0)   # margins > 2: every hinge active
    b1, b2 = _micro(1), _micro(2)
    _, two, _ = _step([b1, b2], 2, cfg)
    _, one, _ = _step([_cat(b1, b2)], 1, cfg)
    assert not torch.allclose(two.vis, _Toy().vis)                      # it moved
    assert torch.allclose(two.vis, one.vis, atol=1e-6) and torch.allclose(two.emb, one.emb, atol=1e-6)


def test_accumulation_step_is_the_mean_of_the_micro_batch_gradients():
    """With the contrastive term on (not decomposable over anchors), the step is
    -lr * (g1 + g2) / 2, where g_i is each micro-batch's gradient by plain autograd."""
    cfg = TrainConfig(grad_clip=0.0, m1=3.0, m2=3.0)
    b1, b2 = _micro(3), _micro(4)
    before, after, sums = _step([b1, b2], 2, cfg, lr=0.1)
    g1, g2 = _grads(copy.deepcopy(before), b1, cfg), _grads(copy.deepcopy(before), b2, cfg)
    for p0, p1, a, b in zip([before.vis, before.emb], [after.vis, after.emb], g1, g2):
        assert torch.allclose(p1 - p0, -0.1 * (a + b) / 2, atol=1e-6)
    # the logged total is the mean of the two micro-batch totals too
    tot = lambda b: float(CFVLMLoss(cfg)(*before(b.pixel_values, b.input_ids, b.attention_mask), b.n,  # noqa: E731
                                         b.cf_owner, b.cf_slot, b.mask, b.local, before.logit_scale)
                          ["total"].detach())
    assert float(sums["total"]) == pytest.approx((tot(b1) + tot(b2)) / 2, abs=1e-5)


# --------------------------------------------------------------------------- metrics
def test_pope_metrics_with_tp_fp_fn_all_different():
    """tp 3, fp 1, fn 2, tn 4: precision, recall and F1 are three different numbers."""
    from cfgen.eval.benchmarks import pope_metrics
    truth = [True, True, True, False, True, True, False, False, False, False]
    pred = [True, True, True, True, False, False, False, False, False, False]
    m = pope_metrics(pred, truth)
    assert m["precision"] == pytest.approx(3 / 4)          # tp / (tp + fp)
    assert m["recall"] == pytest.approx(3 / 5)             # tp / (tp + fn)
    assert m["f1"] == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))   # = 2/3
    assert m["accuracy"] == pytest.approx(7 / 10)          # (tp + tn) / 10
    assert m["yes_ratio"] == pytest.approx(4 / 10)         # (tp + fp) / 10


def test_mme_metrics_acc_and_acc_plus_by_hand():
    """acc per question, acc+ per image (both of its questions right), score 100 * (acc + acc+)."""
    from cfgen.eval.benchmarks import YesNo, mme_metrics
    q = lambda g, img: YesNo("x.jpg", "q", True, f"{g}{img}", g, image_id=f"{g}:{img}")  # noqa: E731
    items = [q("existence", 1), q("existence", 1), q("existence", 2), q("existence", 2),
             q("existence", 3), q("existence", 3), q("OCR", 1), q("OCR", 1)]
    correct = [True, True, True, False, False, False, True, False]
    res = mme_metrics(items, correct)
    m = res[0] if isinstance(res, tuple) else res          # (metrics, counts) or metrics
    # existence: 3 of 6 questions right -> acc 0.5; image 1 only has both right -> acc+ 1/3
    assert m["existence:acc"] == pytest.approx(0.5) and m["existence:acc+"] == pytest.approx(1 / 3)
    assert m["existence:score"] == pytest.approx(100 * (0.5 + 1 / 3))
    # OCR: 1 of 2 -> acc 0.5, acc+ 0 -> score 50; perception = 83.33 + 50
    assert m["OCR:score"] == pytest.approx(50.0)
    assert m["perception"] == pytest.approx(100 * (0.5 + 1 / 3) + 50.0) and "cognition" not in m


def _binom_quantile(n, p, q):
    """The q-quantile of Binomial(n, p) / n: the smallest x / n with P(X <= x) >= q."""
    c = 0.0
    for x in range(n + 1):
        c += math.comb(n, x) * p ** x * (1 - p) ** (n - x)
        if c >= q:
            return x / n
    return 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_paired_bootstrap_is_a_95_percent_percentile_interval(seed):
    """40 paired items, the second model right on 20 more: a bootstrap mean is Binomial(40, 1/2) / 40,
    whose 2.5% and 97.5% quantiles are 14/40 and 26/40 (P(X<=13) = .019, P(X<=14) = .040);
    a 90% interval would give 15/40 and 25/40. With 20,000 resamples the empirical percentiles
    land on those atoms whatever the seed (the counts are > 6 sigma from the interpolation point)."""
    from cfgen.eval.stats import paired_bootstrap
    a = np.zeros(40)
    b = np.array([1.0] * 20 + [0.0] * 20)
    assert (_binom_quantile(40, 0.5, 0.025), _binom_quantile(40, 0.5, 0.975)) == (14 / 40, 26 / 40)
    assert (_binom_quantile(40, 0.5, 0.05), _binom_quantile(40, 0.5, 0.95)) == (15 / 40, 25 / 40)
    diff, lo, hi = paired_bootstrap(a, b, n_boot=20000, seed=seed)
    assert diff == 0.5
    assert (lo, hi) == (pytest.approx(14 / 40), pytest.approx(26 / 40))


class _StubYesNo:
    """A generative scorer (an ItemScorer) whose P(yes) for each question is written in the question."""

    bs, enc, generative = 8, None, True

    def __init__(self):
        self.calls = 0
        self.unreadable = {}

    def p_yes(self, images, questions):
        self.calls += 1
        assert len(images) == len(questions) and all(isinstance(im, Image.Image) for im in images)
        return np.array([float(q.split("p=")[1].rstrip("?")) for q in questions])


def test_generative_pope_end_to_end_with_known_p_yes(tmp_path):
    """POPE through run_bench: answers are P(yes) > 0.5 (0.5 itself is "no"), metrics per split
    and over all, with tp, fp, fn different in each."""
    from cfgen.eval.run import run_bench
    (tmp_path / "val2014").mkdir()
    #        split        label  P(yes)   -> answer  outcome
    rows = {"random": [("yes", 0.90), ("yes", 0.70), ("yes", 0.51), ("yes", 0.20),      # tp tp tp fn
                       ("no", 0.60), ("no", 0.10), ("no", 0.50)],                      # fp tn tn (0.5 -> no)
            "adversarial": [("yes", 0.80), ("yes", 0.49), ("yes", 0.30),               # tp fn fn
                            ("no", 0.99), ("no", 0.55), ("no", 0.05)]}                 # fp fp tn
    for split, qs in rows.items():
        with open(tmp_path / f"coco_pope_{split}.json", "w") as f:
            for i, (label, p) in enumerate(qs):
                name = f"COCO_val2014_{i:012d}.jpg"
                Image.new("RGB", (16, 16), (20 * i, 90, 9)).save(tmp_path / "val2014" / name)
                f.write(json.dumps({"question_id": i, "image": name, "text": f"Is there a thing p={p}?",
                                    "label": label}) + "\n")
    r = run_bench(_StubYesNo(), "pope", str(tmp_path), str(tmp_path / "val2014"))
    # random:      tp 3, fp 1, fn 1, tn 2  -> acc 5/7, prec 3/4, rec 3/4, yes 4/7
    # adversarial: tp 1, fp 2, fn 2, tn 1  -> acc 2/6, prec 1/3, rec 1/3, yes 3/6
    # all:         tp 4, fp 3, fn 3, tn 3  -> acc 7/13, prec 4/7, rec 4/7, yes 7/13
    # (precision = recall in each, so F1 = precision; the precision/recall formulas are told
    #  apart in test_pope_metrics_with_tp_fp_fn_all_different)
    want = {"random": (5 / 7, 3 / 4, 3 / 4, 4 / 7, 7), "adversarial": (2 / 6, 1 / 3, 1 / 3, 3 / 6, 6),
            "all": (7 / 13, 4 / 7, 4 / 7, 7 / 13, 13)}
    for split, (acc, prec, rec, yes, n) in want.items():
        assert r.metrics[f"{split}:accuracy"] == pytest.approx(acc), split
        assert r.metrics[f"{split}:precision"] == pytest.approx(prec), split
        assert r.metrics[f"{split}:recall"] == pytest.approx(rec), split
        assert r.metrics[f"{split}:f1"] == pytest.approx(2 * prec * rec / (prec + rec)), split
        assert r.metrics[f"{split}:yes_ratio"] == pytest.approx(yes), split
        assert r.n[f"{split}:accuracy"] == n
    right = {i for i, (_, _, ok) in enumerate(r.items) if ok}
    assert len(r.items) == 13 and len(right) == 7


class _Tok:
    pad_token_id = 0


class _StubProcessor:
    """Token ids: the question's P(yes) as a token (id 3 + index in P_TABLE), prompts of different
    lengths padded on `side`."""

    chat_template = None
    tokenizer = _Tok()

    def __init__(self, side):
        self.side = side

    def __call__(self, images, text, return_tensors, padding):
        from transformers import BatchEncoding
        ids = [[3 + P_TABLE.index(float(q.split("p=")[1].split("?")[0]))] * (1 + i) for i, q in enumerate(text)]
        width = max(len(x) for x in ids)
        pad = lambda x, v: [v] * (width - len(x)) + x if self.side == "left" else x + [v] * (width - len(x))  # noqa: E731
        return BatchEncoding({"input_ids": torch.tensor([pad(x, 0) for x in ids]),
                              "attention_mask": torch.tensor([pad([1] * len(x), 0) for x in ids])})


P_TABLE = [0.9, 0.2, 0.5, 0.75]


class _StubLM(torch.nn.Module):
    """Next-token logits at a position holding token 3 + j: log P_TABLE[j] on token 1 ("yes"),
    log(1 - P_TABLE[j]) on token 2 ("no"), and a large 'other' mass on token 0; like a transformers
    model, only the last `logits_to_keep` positions (0: all)."""

    def forward(self, input_ids, attention_mask, logits_to_keep=0):
        p = torch.tensor([P_TABLE[max(int(t) - 3, 0)] for t in input_ids.flatten()]).view(input_ids.shape)
        p = torch.where(attention_mask.bool(), p, torch.full_like(p, 0.01))      # padding predicts "no"
        logits = torch.full(input_ids.shape + (8,), -30.0)
        logits[..., 0] = 5.0
        logits[..., 1], logits[..., 2] = p.log(), (1 - p).log()

        class Out:
            pass
        o = Out()
        o.logits = logits[:, -logits_to_keep:] if logits_to_keep else logits
        return o


@pytest.mark.parametrize("side", ["left", "right"])
def test_generative_p_yes_is_yes_over_yes_plus_no(side):
    """S_gen = P(yes) / (P(yes) + P(no)) at the last real token, whatever else the model predicts,
    with the padding on either side."""
    from cfgen.eval.generative import GenerativeScorer
    s = GenerativeScorer.__new__(GenerativeScorer)
    s.processor, s.model, s.device, s.bs, s.yes, s.no = _StubProcessor(side), _StubLM(), "cpu", 3, [1], [2]
    img = Image.new("RGB", (8, 8))
    qs = [f"q p={p}?" for p in P_TABLE]
    # yes-mass p, no-mass 1 - p  ->  p / (p + 1 - p) = p
    assert np.allclose(s.p_yes([img] * 4, qs), P_TABLE, atol=1e-6)


# --------------------------------------------------------------------------- the CLIP filter
def test_filter_verdict_table_each_threshold_at_its_boundary():
    """Each threshold at its boundary keeps; just past it rejects with that threshold's reason.
    Scores are distinct, so checking the wrong similarity changes a verdict."""
    from cfgen.images.filter import FilterConfig, verdict
    cfg = FilterConfig(min_cf_score=0.25, min_margin=0.05, min_img_sim=0.5, max_img_sim=0.9)
    base = {"s_cf_tcf": 0.3, "s_cf_ta": 0.1, "margin": 0.2, "s_img": 0.7}
    table = [
        ({}, (True, "")),
        ({"s_cf_tcf": 0.25}, (True, "")),                               # min_cf_score: equal keeps
        ({"s_cf_tcf": 0.2499}, (False, "filter_low_score")),
        ({"s_cf_tcf": 0.2, "s_cf_ta": 0.3}, (False, "filter_low_score")),  # T_a scores high: still low
        ({"margin": 0.05}, (True, "")),                                 # min_margin: equal keeps
        ({"margin": 0.0499}, (False, "filter_low_margin")),
        ({"s_img": 0.9}, (True, "")),                                   # max_img_sim: equal keeps
        ({"s_img": 0.9001}, (False, "filter_copy")),
        ({"s_img": 0.5}, (True, "")),                                   # min_img_sim: equal keeps
        ({"s_img": 0.4999}, (False, "filter_far")),
        ({"s_cf_tcf": 0.2, "margin": 0.0, "s_img": 0.95}, (False, "filter_low_score")),  # first failure named
        ({"margin": 0.0, "s_img": 0.95}, (False, "filter_low_margin")),
    ]
    for change, want in table:
        assert verdict({**base, **change}, cfg) == want, change


def test_images_config_passes_each_threshold_to_the_filter():
    from cfgen.images.filter import verdict
    from cfgen.images.stage import ImagesConfig
    f = ImagesConfig(run="r", min_cf_score=0.11, min_margin=0.22, min_img_sim=0.33, max_img_sim=0.44)
    assert (f.min_cf_score, f.min_margin, f.min_img_sim, f.max_img_sim) == (0.11, 0.22, 0.33, 0.44)
    ok = {"s_cf_tcf": 0.11, "margin": 0.22, "s_img": 0.33}                     # each at its threshold: kept
    assert verdict(ok, f) == (True, "") and verdict({**ok, "s_img": 0.44}, f) == (True, "")
    assert verdict({**ok, "s_cf_tcf": 0.109}, f) == (False, "filter_low_score")
    assert verdict({**ok, "margin": 0.219}, f) == (False, "filter_low_margin")
    assert verdict({**ok, "s_img": 0.329}, f) == (False, "filter_far")
    assert verdict({**ok, "s_img": 0.441}, f) == (False, "filter_copy")


def test_clip_scorer_scores_by_hand():
    """The stored scores from known unit embeddings: s_cf_tcf = I_cf . T_cf, s_cf_ta = I_cf . T_a,
    margin = their difference, s_img = I_cf . I_a, s_a_ta = I_a . T_a."""
    from cfgen.images.filter import ClipScorer

    class Enc:
        def embed_images(self, imgs, bs):        # [I_a, I_cf0, I_cf1]
            return torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])

        def embed_texts(self, txts, bs):         # [T_a, T_cf0, T_cf1]
            return torch.tensor([[0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])

    s = ClipScorer.__new__(ClipScorer)
    s.enc, s.batch_size = Enc(), 4
    im = Image.new("RGB", (4, 4))
    sc = s.score(im, "a", [im, im], ["b", "c"])
    # cf0: I_cf.T_cf = 0.8; I_cf.T_a = 0.48 + 0.48 = 0.96; margin -0.16; I_cf.I_a = 0.6
    # cf1: I_cf.T_cf = 0.8; I_cf.T_a = 0.6;                margin  0.2;  I_cf.I_a = 0.0
    want = [{"s_cf_tcf": 0.8, "s_cf_ta": 0.96, "margin": -0.16, "s_img": 0.6, "s_a_ta": 0.8},
            {"s_cf_tcf": 0.8, "s_cf_ta": 0.6, "margin": 0.2, "s_img": 0.0, "s_a_ta": 0.8}]
    for g, w in zip(sc, want):
        assert g == {k: pytest.approx(v, abs=1e-5) for k, v in w.items()}


def test_clip_scorer_scores_several_anchors_in_one_batch_by_hand():
    """Anchors scored together (the images stage batches the filter across anchors): each
    anchor's scores use its own rows of the stacked embeddings, an anchor without
    counterfactuals gets none, and embedding happens once for all of them."""
    from cfgen.images.filter import ClipScorer
    calls = []

    class Enc:
        def embed_images(self, imgs, bs):        # [I_a1, I_cf1] [I_a2, I_cf2a, I_cf2b] (anchor 3: I_a3)
            calls.append(len(imgs))
            return torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8], [0.6, 0.8]])

        def embed_texts(self, txts, bs):
            return torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])

    s = ClipScorer.__new__(ClipScorer)
    s.enc, s.batch_size = Enc(), 4
    im = Image.new("RGB", (4, 4))
    out = s.score_many([(im, "a1", [im], ["c1"]), (im, "a2", [im, im], ["c2a", "c2b"]), (im, "a3", [], [])])
    assert calls == [6]
    # anchor 1: I_cf.T_cf = 0.8, I_cf.T_a = 0, I_cf.I_a = 0, I_a.T_a = 1
    # anchor 2 (I_a = (0,1), T_a = (0.8,0.6)): cf a = (1,0) with T (0,1): 0, 0.8, 0; cf b = (0.6,0.8) with T (1,0): 0.6, 0.96, 0.8
    want = [[{"s_cf_tcf": 0.8, "s_cf_ta": 0.0, "margin": 0.8, "s_img": 0.0, "s_a_ta": 1.0}],
            [{"s_cf_tcf": 0.0, "s_cf_ta": 0.8, "margin": -0.8, "s_img": 0.0, "s_a_ta": 0.6},
             {"s_cf_tcf": 0.6, "s_cf_ta": 0.96, "margin": -0.36, "s_img": 0.8, "s_a_ta": 0.6}], []]
    assert len(out) == 3
    for got, w in zip(out, want):
        assert len(got) == len(w)
        for g, x in zip(got, w):
            assert g == {k: pytest.approx(v, abs=1e-5) for k, v in x.items()}


# --------------------------------------------------------------------------- the validator
def test_validator_span_limit_at_its_boundary():
    """A changed place of max_span words passes the size check; one word more is edit_too_large
    (default max_span 5, and an explicit 2)."""
    from cfgen.captions.validate import Validator, validate
    orig = "a dog near the old brown wooden stone garden wall by the lake"
    five = "a dog near the big green metal glass kitchen wall by the lake"         # 5 words changed
    six = "a dog near the big green metal glass kitchen door roof by the lake"     # 6 words changed
    assert validate(orig, five).reason != "edit_too_large"
    assert validate(orig, six).reason == "edit_too_large"
    v2 = Validator(max_span=2)
    two = "a dog near the big green wooden stone garden wall by the lake"
    three = "a dog near the big green metal stone garden wall by the lake"
    assert v2(orig, two).reason != "edit_too_large"
    assert v2(orig, three).reason == "edit_too_large"


def test_validator_length_limit_at_its_boundary():
    """A rewrite may have up to max_len_ratio * len + 10 words."""
    from cfgen.captions.validate import Validator
    v = Validator(max_len_ratio=2.0)
    orig = "a red car"                                                      # 3 words -> limit 2*3 + 10 = 16
    at = "a green car " + " ".join(["x"] * 13)                              # 16 words
    over = at + " y"                                                        # 17 words
    assert v(orig, at).reason != "too_long"
    assert v(orig, over).reason == "too_long"


def test_world_accuracy_by_hand():
    """The one held-out accuracy of the world benchmark and the stand-in's pretraining profile."""
    from cfgen.eval.benchmarks import world_accuracy
    rows = [("seen", "replace_shape", True), ("unseen", "binding_swap", False), ("seen", "binding_swap", True),
            ("unseen", "binding_swap", True), ("seen", "replace_shape", False), ("seen", "replace_shape", True)]
    got = world_accuracy(rows)
    assert got == {"unseen:binding_swap": (1 / 2, 2), "seen:binding_swap": (1.0, 1), "seen:replace_shape": (2 / 3, 3)}
    assert list(got) == ["unseen:binding_swap", "seen:binding_swap", "seen:replace_shape"]   # unseen first
