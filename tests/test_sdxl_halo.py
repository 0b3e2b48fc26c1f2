"""#23 item 6: a local SDXL edit (Base + Refiner inpainting, then a feathered paste) takes no
pixel from latents that the passes did not denoise, and leaves every other pixel untouched.

What the inpaint pipeline does with its mask (diffusers, upstream HEAD 58eb52c, the same in the
installed 0.42.1), src/diffusers/pipelines/stable_diffusion_xl/pipeline_stable_diffusion_xl_inpaint.py:
  l.323   mask_processor = VaeImageProcessor(..., do_binarize=True)  (image_processor.py l.535-536:
          values < 0.5 become 0, the rest 1)
  l.860   the mask is resized to the latents by `interpolate` (nearest)
  l.1591  Base (`denoising_end`) stops at the hand-off timestep
  l.1647-1659  after each step the latents outside the mask are put back from `image_latents`
          (the Refiner's are the hand-off latents it was given as `image`), without noise at the
          last step: so the Refiner's output outside its mask IS the hand-off latents.
"""
import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from cfgen.datamodel import Anchor, Edit, Rewrite
from cfgen.images.masks import Masker, MaskResult
from cfgen.io.images import decode_rgb


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from cfgen.testing import build_sdxl
    d = tmp_path_factory.mktemp("tiny_sdxl")
    base, ref = build_sdxl(d / "base", d / "refiner")
    return str(base), str(ref)


class FeatheredBox(Masker):
    """A grounded mask as masks.py makes it: a box, dilated and Gaussian-feathered (a fringe
    where 0 < mask < 0.5 and one where 0.5 <= mask < 1)."""

    def __call__(self, img, phrase):
        m = Image.new("L", img.size, 0)
        m.paste(255, (22, 22, 42, 42))
        return MaskResult(m.filter(ImageFilter.GaussianBlur(4)), [22, 22, 42, 42], 0.9, phrase)


class Spy:
    """A pipeline that records the arguments of each call (and is otherwise the pipeline)."""

    def __init__(self, pipe, calls, name):
        self._pipe, self._calls, self._name = pipe, calls, name

    def __getattr__(self, k):
        return getattr(self._pipe, k)

    def __call__(self, **kw):
        self._calls[self._name] = kw
        return self._pipe(**kw)


def test_every_pasted_pixel_comes_from_fully_denoised_latents(tiny):
    from cfgen.images.sdxl import SDXLConfig, SDXLEditor
    base, ref = tiny
    # resolution = image size and no crop: generation pixels, latent cells and anchor pixels align
    ed = SDXLEditor(SDXLConfig(base=base, refiner=ref, base_steps=2, refiner_steps=1, resolution=64),
                    masker=FeatheredBox(), image_format="png")
    calls: dict = {}
    ed.inpaint, ed.ref_inpaint = Spy(ed.inpaint, calls, "base"), Spy(ed.ref_inpaint, calls, "refiner")
    decoded = []
    vae = ed.inpaint.vae                       # shared by Base and Refiner; only the Refiner decodes
    real_decode = vae.decode
    vae.decode = lambda z, *a, **k: (decoded.append(z.clone()), real_decode(z, *a, **k))[1]

    src = Image.fromarray((np.random.RandomState(5).rand(64, 64, 3) * 255).astype("uint8"))
    buf = io.BytesIO()
    src.save(buf, "PNG")
    anchor = Anchor("k", "a red dog", buf.getvalue(), "png")
    rw = Rewrite("k", 0, "a blue dog", "kept", edit=Edit("color", "red", "blue", "local"))
    out = np.asarray(decode_rgb(ed.edit(anchor, [rw], [3])[0].image)).astype(int)
    orig = np.asarray(src).astype(int)

    paste = np.asarray(FeatheredBox()(src, "").mask) > 0          # every pixel the paste can take
    assert (out[~paste] == orig[~paste]).all()                     # outside it: the anchor, exactly
    assert (out[paste] != orig[paste]).any()

    cell = ed.inpaint.vae_scale_factor
    under = paste.reshape(32, cell, 32, cell).any(axis=(1, 3))       # latent cells under the paste area
    fringe = (np.asarray(FeatheredBox()(src, "").mask) < 128) & paste
    assert fringe.any()                                              # the case of the issue is present
    for name in ("base", "refiner"):                                 # what each pass inpaints (binarised)
        inpainted = np.asarray(calls[name]["mask_image"][0]) / 255 >= 0.5
        assert inpainted.reshape(32, cell, 32, cell).all(axis=(1, 3))[under].all(), name
    handoff = calls["refiner"]["image"]                              # Base's latents at the hand-off
    final = decoded[-1] * vae.config.scaling_factor                  # what the Refiner decoded
    copied = torch.isclose(final, handoff, rtol=1e-5, atol=1e-6).all(dim=1)[0].numpy()
    assert copied.any()                                              # outside the mask: the hand-off kept
    assert not copied[under].any()                                   # under the paste: all denoised
