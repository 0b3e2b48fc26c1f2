"""One contract, every eval scorer (issue #28 item 3): `cfgen.eval.scoring.ItemScorer`.

Each implementation is built from a tiny saved model and must: declare `bs`, `enc`,
`unreadable` and `generative` from the start; give one score per option of each item; record an
image it cannot read in `unreadable` with a reason instead of raising; answer yes/no through
`p_yes` exactly when it says it is generative; have embeddings (`enc`) exactly when it is not."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cfgen.eval.benchmarks import Item, _img_key
from cfgen.eval.scoring import ItemScorer, Scorer


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    from cfgen.demo.clip import build_clip
    from cfgen.testing import build_llava
    from cfgen.world import world_words
    clip = build_clip(tmp_path_factory.mktemp("clip"), words=world_words(), image_size=32, patch_size=8,
                      width=32, layers=1, text_width=32, text_layers=1, heads=2, embed_dim=32)
    return {"contrastive": clip, "generative": build_llava(tmp_path_factory.mktemp("llava") / "m")}


@pytest.fixture(params=["contrastive", "generative"])
def scorer(request, models) -> ItemScorer:
    """A fresh scorer per test (its `unreadable` is state), over models built once."""
    if request.param == "contrastive":
        from cfgen.train.model import DualEncoder
        return Scorer(DualEncoder.load(models["contrastive"]), batch_size=2)
    from cfgen.eval.generative import GenerativeScorer
    return GenerativeScorer(str(models["generative"]), batch_size=2)


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buf, format="PNG")
    return buf.getvalue()


def test_declares_the_contract_from_the_start(scorer):
    for name in ("bs", "enc", "unreadable", "generative", "item_scores"):
        assert hasattr(scorer, name), name
    assert scorer.unreadable == {} and scorer.bs >= 1
    assert scorer.generative == hasattr(scorer, "p_yes")
    assert (scorer.enc is None) == scorer.generative


def test_one_score_per_option_and_unreadable_images_recorded_not_raised(scorer):
    items = [Item(_png((200, 20, 20)), ["a red square", "a blue square"], id="a"),
             Item(b"not an image", ["a red circle", "a blue circle", "a green circle"], id="b"),
             Item(_png((20, 20, 200)), ["a blue ring", "a red ring"], id="c")]
    scores = scorer.item_scores(items)
    assert [np.asarray(s).shape for s in scores] == [(2,), (3,), (2,)]
    assert all(np.isfinite(np.asarray(s)).all() for s in (scores[0], scores[2]))
    assert set(scorer.unreadable) == {_img_key(items[1])} and all(scorer.unreadable.values())
