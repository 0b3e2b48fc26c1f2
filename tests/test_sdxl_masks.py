"""The GPU editor's code path on CPU with tiny random-weight models saved locally."""
import io

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from cfgen.captions.stage import CaptionsConfig, run_captions
from cfgen.datamodel import Sample
from cfgen.io.images import decode_rgb
from cfgen.images.masks import MaskConfig
from cfgen.images.sdxl import SDXLConfig
from cfgen.images.stage import ImagesConfig, run_images
from tests.conftest import write_tar


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from cfgen.testing import build_grounding, build_sdxl
    d = tmp_path_factory.mktemp("tiny")
    base, ref = build_sdxl(d / "base", d / "refiner")
    return {"base": str(base), "refiner": str(ref), "owlv2": str(build_grounding(d / "owlv2", "owlv2")),
            "sam": str(build_grounding(d / "sam", "sam")), "clipseg": str(build_grounding(d / "clipseg", "clipseg"))}


def _png(seed: int, w=64, h=48) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8")).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def photo_run(tmp_path):
    caps = ["a frisbee to the left of a dog", "a dog sitting under a wooden table"]   # a relation: one global edit
    members = []
    for i, c in enumerate(caps):
        members += [(f"{i:09d}.png", _png(i)), (f"{i:09d}.txt", c.encode())]
    write_tar(tmp_path / "in" / "00000.tar", members)
    run = tmp_path / "run"
    run_captions(CaptionsConfig(input=[str(tmp_path / "in")], out=str(run), k=2))
    return run


def _cfg(run, tiny, **masks) -> ImagesConfig:
    return ImagesConfig(run=str(run), editor="sdxl", filter=False, image_format="png",
                        sdxl=SDXLConfig(base=tiny["base"], refiner=tiny["refiner"], base_steps=2, refiner_steps=1,
                                        resolution=64, crop=True, batch_size=2),
                        masks=MaskConfig(detector=tiny["owlv2"], kind="owlv2", sam=tiny["sam"], box_threshold=0.0,
                                         **masks))


def test_sdxl_inpaint_and_img2img_end_to_end(photo_run, tiny):
    s = run_images(_cfg(photo_run, tiny, dilate=0.0, feather=0.0))
    assert s["in"] == 2 and s["kept"] == 2
    rows = pq.read_table(photo_run / "images" / "part-00000.parquet").to_pylist()
    assert {r["scope_used"] for r in rows} == {"local", "global"}
    tars = [str(photo_run / "final" / "part-00000.tar")]
    samples = [Sample.from_wds(x) for x in wds.WebDataset(tars, shardshuffle=False)]
    n_local = 0
    for smp in samples:
        a = np.asarray(decode_rgb(smp.image)).astype(int)
        for cf in smp.cfs:
            c = np.asarray(decode_rgb(cf.image)).astype(int)
            assert c.shape == a.shape
            if cf.edit.scope == "local":
                n_local += 1
                x0, y0, x1, y1 = cf.mask_box
                outside = np.ones(a.shape[:2], bool)
                outside[y0:y1, x0:x1] = False
                assert (a[outside] == c[outside]).all()        # pasted into the untouched original
    assert n_local >= 1
    pairs = list(wds.WebDataset(tars, shardshuffle=False).decode("pil").to_tuple("png", "txt"))
    assert len(pairs) == 2


def test_local_edit_without_a_mask_becomes_global(photo_run, tiny):
    cfg = _cfg(photo_run, tiny)
    cfg.masks.box_threshold = 1.01          # nothing is ever found
    run_images(cfg)
    rows = pq.read_table(photo_run / "images" / "part-00000.parquet").to_pylist()
    local = [r for r in rows if r["edit_scope"] == "local"]
    assert local and all(r["scope_used"] == "global" and r["status"] == "generated" for r in local)


def test_base_refiner_handoff_and_seeded_reproduction(tiny):
    from cfgen.datamodel import Anchor, Edit, Rewrite
    from cfgen.images.masks import Masker, MaskResult
    from cfgen.images.sdxl import SDXLConfig, SDXLEditor

    class BoxMasker(Masker):
        def __call__(self, img, phrase):
            m = Image.new("L", img.size, 0)
            m.paste(255, (10, 10, 30, 30))
            return MaskResult(m, [10, 10, 30, 30], 0.9, phrase)

    ed = SDXLEditor(SDXLConfig(base=tiny["base"], refiner=tiny["refiner"], base_steps=4, refiner_steps=2,
                               resolution=64), masker=BoxMasker(), image_format="png")
    calls = {"base": 0, "refiner": 0}
    ed.inpaint.unet.register_forward_hook(lambda *a: calls.__setitem__("base", calls["base"] + 1))
    ed.ref_inpaint.unet.register_forward_hook(lambda *a: calls.__setitem__("refiner", calls["refiner"] + 1))
    a = Anchor("k", "a red dog", _png(3), "png")
    rw = Rewrite("k", 0, "a blue dog", "kept", edit=Edit("color", "red", "blue", "local"))
    first = ed.edit(a, [rw], [7])[0]
    assert calls["base"] > 0 and calls["refiner"] > 0
    assert (calls["base"], calls["refiner"]) == (4, 2)          # 4 + 2 steps of one schedule
    assert ed.edit(a, [rw], [7])[0].image == first.image               # same seed, same image
    assert ed.edit(a, [rw], [8])[0].image != first.image
    out = np.asarray(decode_rgb(first.image)).astype(int)
    src = np.asarray(decode_rgb(a.image)).astype(int)
    keep = np.ones(src.shape[:2], bool)
    keep[10:30, 10:30] = False
    assert (out[keep] == src[keep]).all()


def test_clipseg_and_grounding_phrase(tiny):
    from cfgen.datamodel import Edit
    from cfgen.images.masks import GroundedMasker, MaskConfig, grounding_phrase
    assert grounding_phrase("a red frisbee in the park", Edit("color", "red", "blue", "local")) == "red frisbee"
    assert grounding_phrase("a dog on a couch", Edit("quantity", "a", "two", "local")) == "dog"
    assert grounding_phrase("two dogs playing", Edit("category", "dogs", "cats", "local")) == "dogs"
    img = decode_rgb(_png(1))
    m = GroundedMasker(MaskConfig(detector=tiny["clipseg"], kind="clipseg", clipseg_threshold=0.0))(img, "red dog")
    assert m is not None and m.mask.size == img.size and np.asarray(m.mask).max() > 0
    assert GroundedMasker(MaskConfig(detector=tiny["clipseg"], kind="clipseg", clipseg_threshold=1.01))(img, "x") is None


def test_integral_image_dilation_equals_pil_maxfilter():
    import numpy as np
    from PIL import Image, ImageFilter
    from cfgen.images.masks import dilate
    rng = np.random.default_rng(0)
    for h, w, d in [(40, 60, 3), (33, 17, 5), (64, 64, 0), (20, 20, 12)]:
        b = rng.random((h, w)) < 0.02
        b[0, 0] = b[-1, -1] = True                     # borders too
        ref = np.asarray(Image.fromarray(b.astype(np.uint8) * 255, "L").filter(ImageFilter.MaxFilter(2 * d + 1))) > 0
        assert np.array_equal(dilate(b, d), ref), (h, w, d)


def test_base_and_refiner_run_exactly_40_and_15_steps_under_sdxl_leading_spacing():
    from diffusers import EulerDiscreteScheduler
    from cfgen.images.sdxl import exact_handoff
    sched = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                   beta_schedule="scaled_linear", timestep_spacing="leading", steps_offset=1)

    def split(fraction):          # diffusers' own cut: timesteps >= round(T * (1 - fraction)) go to Base
        sched.set_timesteps(55)
        cut = int(round(1000 - fraction * 1000))
        base = sum(1 for t in sched.timesteps if t >= cut)
        return base, 55 - base
    assert split(40 / 55) == (39, 16)                  # the nominal fraction: one step off
    assert split(exact_handoff(sched, 55, 40)) == (40, 15)


def test_grounding_runs_once_per_anchor_for_all_its_phrases(tiny):
    from cfgen.images.masks import GroundedMasker, MaskConfig
    m = GroundedMasker(MaskConfig(detector=tiny["owlv2"], kind="owlv2", sam=tiny["sam"], box_threshold=0.0))
    calls = {"det": 0, "sam": 0}
    m.model.register_forward_hook(lambda *a: calls.__setitem__("det", calls["det"] + 1))
    m.sam.register_forward_hook(lambda *a: calls.__setitem__("sam", calls["sam"] + 1))
    img = decode_rgb(_png(2))
    out = m.many(img, ["red dog", "wooden table", "red dog"])
    assert calls == {"det": 1, "sam": 1}
    assert len(out) == 3 and out[0] is not None and out[0].phrase == "red dog" and out[1].phrase == "wooden table"
    assert np.array_equal(np.asarray(out[0].mask), np.asarray(out[2].mask))
    single = m(img, "wooden table")                       # the one-phrase path gives the same mask
    assert np.array_equal(np.asarray(single.mask), np.asarray(out[1].mask))


def test_sdxl_batches_edits_across_anchors_up_to_the_batch_size(photo_run, tiny, tmp_path):
    """Two anchors of K = 2 edits each: with batch_size 4 the image stage fills one batch of 4
    (it was at most one anchor's edits before), and each image matches its one-by-one render."""
    from cfgen.images.sdxl import SDXLEditor
    from cfgen.images.stage import EditJob
    from cfgen.run import Manifest
    cfg = _cfg(photo_run, tiny)
    cfg.sdxl.batch_size = 4
    cfg.masks.box_threshold = 1.01            # no mask found: every edit is global, one generation size
    manifest = Manifest.read(cfg.run)
    units, icfg = manifest.units, manifest.input_config()
    ed = SDXLEditor(cfg.sdxl, cfg.masks, image_format="png")
    job = EditJob(cfg, icfg)
    job.setup("cpu")
    job.editor = ed                           # the job's own editor, instrumented
    stats = job(units[0])
    assert ed.batch_sizes == [4], ed.batch_sizes
    assert stats["in"] == 2 and stats["cf_generated"] == 4
    rows = pq.read_table(photo_run / "images" / "part-00000.parquet").to_pylist()
    batched = {(r["key"], r["i"]): r["seed"] for r in rows}
    tar = {s["__key__"]: s for s in wds.WebDataset(str(photo_run / "images" / "part-00000.tar"), shardshuffle=False)}
    from cfgen.datamodel import table_to_rewrites
    rewrites = table_to_rewrites(pq.read_table(photo_run / "captions" / "part-00000.parquet"))
    from cfgen.io.reader import read_unit
    for rec in read_unit(units[0], icfg):
        kept = [r for r in rewrites[rec.anchor.key] if r.status == "kept"]
        alone = ed.edit(rec.anchor, kept, [batched[(rec.anchor.key, r.i)] for r in kept])
        for r, x in zip(kept, alone):
            got = np.asarray(decode_rgb(tar[rec.anchor.key][f"cf{r.i}.png"])).astype(int)
            assert np.abs(got - np.asarray(decode_rgb(x.image)).astype(int)).max() <= 2


def test_fp16_variant_weights_load_and_sizes_are_bucketed(tiny, tmp_path):
    from diffusers import StableDiffusionXLPipeline, StableDiffusionXLImg2ImgPipeline
    from cfgen.images.sdxl import SDXLConfig, SDXLEditor, gen_size
    StableDiffusionXLPipeline.from_pretrained(tiny["base"]).save_pretrained(tmp_path / "b", variant="fp16")
    StableDiffusionXLImg2ImgPipeline.from_pretrained(tiny["refiner"]).save_pretrained(tmp_path / "r", variant="fp16")
    assert list((tmp_path / "b" / "unet").glob("*.fp16.safetensors"))
    ed = SDXLEditor(SDXLConfig(base=str(tmp_path / "b"), refiner=str(tmp_path / "r"), variant="fp16", resolution=64))
    assert ed.ref_inpaint is not None
    sizes8 = {gen_size(w, 480, 1024) for w in range(400, 1300, 7)}
    sizes64 = {gen_size(w, 480, 1024, 64) for w in range(400, 1300, 7)}
    assert len(sizes64) < len(sizes8) / 4 and all(a % 64 == 0 and b % 64 == 0 for a, b in sizes64)


def test_masker_runs_in_half_precision_with_float32_post_processing(tiny):
    """The GPU path's casting (fp16 there), exercised on the CPU in bfloat16."""
    import torch
    from cfgen.images.masks import GroundedMasker, MaskConfig
    m = GroundedMasker(MaskConfig(detector=tiny["owlv2"], kind="owlv2", sam=tiny["sam"], box_threshold=0.0, dtype="bfloat16"))
    assert m.model.dtype == torch.bfloat16 and m.sam.dtype == torch.bfloat16
    out = m.many(decode_rgb(_png(2)), ["red dog", "wooden table"])
    assert all(r is not None and np.asarray(r.mask).max() > 0 for r in out)
    seg = GroundedMasker(MaskConfig(detector=tiny["clipseg"], kind="clipseg", sam=None, clipseg_threshold=0.0, dtype="bfloat16"))
    assert seg(decode_rgb(_png(1)), "red dog") is not None


def test_after_an_out_of_memory_the_editor_keeps_the_batch_size_that_worked(tiny):
    """#23 item 9: a batch of 2 runs out of memory (the UNet sees 2 x batch rows with CFG), the
    editor halves it, and a later call starts at 1 instead of running out of memory again, with
    the same images (one seeded generator per image)."""
    import torch
    from cfgen.datamodel import Anchor, Edit, Rewrite
    from cfgen.images.sdxl import SDXLConfig, SDXLEditor
    ed = SDXLEditor(SDXLConfig(base=tiny["base"], refiner=tiny["refiner"], base_steps=2, refiner_steps=1,
                               global_strength=1.0, resolution=64, batch_size=2), image_format="png")
    ooms = []

    def tight_memory(module, args):
        if args[0].shape[0] > 2:
            ooms.append(args[0].shape[0])
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    ed.inpaint.unet.register_forward_pre_hook(tight_memory)      # the Base UNet, shared with img2img
    a = Anchor("k", "a red dog", _png(4), "png")
    rws = [Rewrite("k", i, t, "kept", edit=Edit("color", "red", t.split()[1], "global"))
           for i, t in enumerate(["a blue dog", "a green dog"])]
    first = ed.edit(a, rws, [1, 2])
    assert ooms == [4] and ed.batch_sizes == [1, 1]
    again = ed.edit(a, rws, [1, 2])
    assert ooms == [4] and ed.batch_sizes == [1, 1, 1, 1]            # no second out-of-memory
    assert [x.image for x in first] == [x.image for x in again]
