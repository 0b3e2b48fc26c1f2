"""One contract, every masker (issue #28 item 3): `cfgen.images.masks.Masker`.

Each implementation (the grounded masker on tiny OWLv2 + SAM, OWLv2 alone and CLIPSeg, and a
masker with only `__call__`, which inherits the protocol's `many`) gives one mask or None per
phrase, in the phrases' order, the size of the image, the same mask for a repeated phrase; and
`__call__` gives what `many` gives one phrase. (The SDXL editor grounds all of an anchor's phrases
with one `many`; OWLv2 gives each box to its best phrase, so a phrase's mask may depend on the
others asked with it.)"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cfgen.images.masks import GroundedMasker, MaskConfig, Masker, MaskResult


class _Corner(Masker):
    """A masker that declares only `__call__`: finds phrases with "dog" in the top-left quarter."""

    def __call__(self, image: Image.Image, phrase: str) -> MaskResult | None:
        if "dog" not in phrase:
            return None
        w, h = image.size
        m = Image.new("L", image.size, 0)
        m.paste(255, (0, 0, w // 2, h // 2))
        return MaskResult(m, [0, 0, w // 2, h // 2], 1.0, phrase)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from cfgen.testing import build_grounding
    d = tmp_path_factory.mktemp("grounding")
    return {kind: str(build_grounding(d / kind, kind)) for kind in ("owlv2", "sam", "clipseg")}


@pytest.fixture(scope="module", params=["owlv2+sam", "owlv2", "clipseg", "call-only"])
def masker(request, tiny) -> Masker:
    if request.param == "call-only":
        return _Corner()
    if request.param == "clipseg":
        return GroundedMasker(MaskConfig(detector=tiny["clipseg"], kind="clipseg", sam=None, clipseg_threshold=0.0))
    sam = tiny["sam"] if request.param == "owlv2+sam" else None
    return GroundedMasker(MaskConfig(detector=tiny["owlv2"], kind="owlv2", sam=sam, box_threshold=0.0))


def _image() -> Image.Image:
    buf = io.BytesIO()
    Image.fromarray((np.random.RandomState(1).rand(48, 64, 3) * 255).astype("uint8")).save(buf, "PNG")
    return Image.open(buf).convert("RGB")


PHRASES = ["red dog", "wooden table", "red dog"]


def test_names_the_masker_protocol_as_its_base(masker):
    assert Masker in type(masker).__mro__ and callable(type(masker).many)


def test_one_mask_or_none_per_phrase_in_order_the_size_of_the_image(masker):
    img = _image()
    out = masker.many(img, PHRASES)
    assert len(out) == len(PHRASES) and any(m is not None for m in out)
    for m, p in zip(out, PHRASES):
        if m is not None:
            assert m.phrase == p and m.mask.mode == "L" and m.mask.size == img.size
            x0, y0, x1, y1 = m.box
            assert 0 <= x0 <= x1 <= img.width and 0 <= y0 <= y1 <= img.height


def _key(m: MaskResult | None):
    return None if m is None else (m.box, m.phrase, np.asarray(m.mask).tobytes())


def test_call_gives_what_many_gives_one_phrase(masker):
    img = _image()
    assert [_key(masker(img, p)) for p in PHRASES] == [_key(masker.many(img, [p])[0]) for p in PHRASES]


def test_a_repeated_phrase_gets_the_same_mask(masker):
    out = masker.many(_image(), PHRASES)
    assert _key(out[0]) == _key(out[2])
