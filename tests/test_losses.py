"""The losses against values computed by hand."""
import math

import torch

from cfgen.train.losses import align_loss, clamp_logit_scale, csd_loss, fcd_loss, siglip_loss


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_align_loss_two_pairs_by_hand():
    img = t([[1.0, 0.0], [0.0, 1.0]])
    txt = t([[0.6, 0.8], [0.0, 1.0]])
    scale = t(math.log(10.0))                 # 1/tau = 10
    # logits = 10 * S: image rows [[6, 0], [8, 10]]; caption rows = transpose [[6, 8], [0, 10]]
    li = -(6 - math.log(math.exp(6) + math.exp(0))) - (10 - math.log(math.exp(8) + math.exp(10)))
    lt = -(6 - math.log(math.exp(6) + math.exp(8))) - (10 - math.log(math.exp(0) + math.exp(10)))
    expected = (li / 2 + lt / 2) / 2
    assert abs(float(align_loss(img, txt, scale)) - expected) < 1e-9


def test_align_loss_extra_text_negatives_and_mask():
    img = t([[1.0, 0.0], [0.0, 1.0]])
    txt = t([[1.0, 0.0], [0.0, 1.0]])
    scale = t(0.0)                            # 1/tau = 1
    extra = t([[1.0, 0.0], [0.0, 1.0]])       # a counterfactual caption identical to each true one
    base = float(align_loss(img, txt, scale))
    both = float(align_loss(img, txt, scale, extra, torch.tensor([True, True])))
    # image 0 row: [1, 0 | 1, 0] -> -log(e/(2e+2)); same for image 1; caption side unchanged
    li = -math.log(math.e / (2 * math.e + 2))
    lt = -math.log(math.e / (math.e + 1))
    assert abs(both - (li + lt) / 2) < 1e-9
    masked = float(align_loss(img, txt, scale, extra, torch.tensor([False, False])))
    assert abs(masked - base) < 1e-12


def test_csd_loss_masks_missing_counterfactuals():
    s_anchor = t([0.5, 0.2, 0.9])
    s_cf = t([[0.6, 0.1], [0.4, 123.0], [0.0, 0.0]])
    mask = torch.tensor([[True, True], [True, False], [False, False]])
    # sample 0: mean(max(0, .6-.5+.25), max(0, .1-.5+.25)) = mean(.35, 0) = .175
    # sample 1: only k=0 valid: max(0, .4-.2+.25) = .45 (the 123.0 in a masked slot never counts)
    # sample 2: no counterfactual -> excluded from the mean over samples
    assert abs(float(csd_loss(s_cf, s_anchor, mask, 0.25)) - (0.175 + 0.45) / 2) < 1e-12
    assert float(csd_loss(s_cf, s_anchor, torch.zeros_like(mask), 0.25)) == 0.0


def test_fcd_loss_takes_only_the_hardest_valid_edit():
    s_anchor = t([0.5, 0.5])
    s_cf_ta = t([[0.1, 0.4, 0.9], [0.3, 0.2, 0.95]])
    local = torch.tensor([[True, True, False], [True, True, True]])
    # sample 0: hardest valid is 0.4 (0.9 is masked): max(0, .4-.5+.3) = .2
    # sample 1: hardest is 0.95: .95-.5+.3 = .75
    assert abs(float(fcd_loss(s_cf_ta, s_anchor, local, 0.30)) - (0.2 + 0.75) / 2) < 1e-12
    # a sample whose hardest negative is far below the anchor contributes 0
    assert float(fcd_loss(t([[-0.5]]), t([0.5]), torch.tensor([[True]]), 0.3)) == 0.0


def test_siglip_loss_by_hand():
    img = t([[1.0, 0.0], [0.0, 1.0]])
    txt = t([[1.0, 0.0], [0.0, 1.0]])
    scale, bias = t(math.log(2.0)), t(-1.0)
    # logits = 2*I - 1 = [[1, -1], [-1, 1]], z = [[1,-1],[-1,1]] -> all z*l = 1
    expected = -4 * math.log(1 / (1 + math.exp(-1))) / 2
    assert abs(float(siglip_loss(img, txt, scale, bias)) - expected) < 1e-12


def test_temperature_clamp():
    p = torch.nn.Parameter(torch.tensor(7.0))
    clamp_logit_scale(p)
    assert abs(float(p) - math.log(100)) < 1e-6
