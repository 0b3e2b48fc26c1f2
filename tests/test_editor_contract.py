"""One contract, every image editor (issue #28 item 3): `cfgen.images.editors.Editor`.

Each implementation (the scene renderer, SDXL on the tiny pipelines) must declare `name` and
`batch_size`, give one EditResult per rewrite in the rewrites' order with the seed it was given,
and give through `edit_many` exactly what `edit` gives anchor by anchor."""
from __future__ import annotations

import pytest

from cfgen.datamodel import Anchor, Edit, Rewrite, Status
from cfgen.images.editors import Editor, SceneEditor
from cfgen.images.masks import Masker


class _Box(Masker):
    """A masker that finds every phrase in the middle quarter of the image."""

    def __call__(self, img, phrase):
        from PIL import Image
        from cfgen.images.masks import MaskResult
        w, h = img.size
        box = [w // 4, h // 4, 3 * w // 4, 3 * h // 4]
        m = Image.new("L", img.size, 0)
        m.paste(255, tuple(box))
        return MaskResult(m, box, 1.0, phrase)


def _world_jobs(tmp_path):
    from cfgen.captions.stage import CaptionsConfig, run_captions
    from cfgen.datamodel import table_to_rewrites
    from cfgen.io.reader import read_unit
    from cfgen.run import plan_units
    from cfgen.world import world_vocab
    from cfgen.world.generate import WorldConfig, generate_world
    import pyarrow.parquet as pq
    generate_world(tmp_path / "w", WorldConfig(n=6, n_test=2, per_shard=6, seed=2))
    run_captions(CaptionsConfig(input=[str(tmp_path / "w" / "train")], out=str(tmp_path / "r"), k=2,
                                rules_vocab=world_vocab()))
    rw = table_to_rewrites(pq.read_table(tmp_path / "r" / "captions" / "part-00000.parquet"))
    (unit,) = plan_units([str(p) for p in sorted((tmp_path / "w" / "train").glob("*.tar"))])
    jobs = []
    for rec in read_unit(unit):
        kept = [r for r in rw.get(rec.anchor.key, []) if r.status == Status.KEPT]
        if kept:
            jobs.append((rec.anchor, kept, [100 + r.i for r in kept]))
    assert len(jobs) >= 2
    return jobs[:3]


def _photo_jobs():
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (48, 40), (200, 30, 30)).save(buf, format="PNG")
    a = Anchor("a", "a red car on a street", buf.getvalue(), image_ext="png")
    b = Anchor("b", "a red car on a street", buf.getvalue(), image_ext="png")
    rws = [Rewrite("a", 0, "a blue car on a street", Status.KEPT, edit=Edit("color", "red", "blue", "local")),
           Rewrite("a", 1, "a red truck on a street", Status.KEPT, edit=Edit("category", "car", "truck", "local"))]
    return [(a, rws, [7, 8]), (b, [Rewrite("b", 0, "a blue car on a street", "kept",
                                             edit=Edit("color", "red", "blue", "local"))], [9])]


@pytest.fixture(scope="module", params=["scene", "sdxl"])
def editor_and_jobs(request, tmp_path_factory) -> tuple[Editor, list]:
    d = tmp_path_factory.mktemp(request.param)
    if request.param == "scene":
        return SceneEditor(image_format="png"), _world_jobs(d)
    from cfgen.images.sdxl import SDXLConfig, SDXLEditor
    from cfgen.testing import build_sdxl
    base, ref = build_sdxl(d / "base", d / "ref")
    ed = SDXLEditor(SDXLConfig(base=str(base), refiner=str(ref), base_steps=2, refiner_steps=1, resolution=32,
                               batch_size=4), masker=_Box(), image_format="png")
    return ed, _photo_jobs()


def test_declares_name_and_batch_size(editor_and_jobs):
    ed, _ = editor_and_jobs
    assert isinstance(ed.name, str) and ed.name and isinstance(ed.batch_size, int) and ed.batch_size >= 1


def test_one_result_per_rewrite_in_order_with_its_seed(editor_and_jobs):
    ed, jobs = editor_and_jobs
    for anchor, rws, seeds in jobs:
        out = ed.edit(anchor, rws, seeds)
        assert [r.i for r in out] == [r.i for r in rws] and [r.seed for r in out] == seeds
        assert all(r.status in (Status.GENERATED, Status.REJECTED, Status.FAILED) for r in out)
        assert all((r.image is not None) == (r.status == Status.GENERATED) for r in out)


def test_edit_many_gives_what_edit_gives_anchor_by_anchor(editor_and_jobs):
    ed, jobs = editor_and_jobs
    many = ed.edit_many(jobs)
    alone = [ed.edit(a, rws, seeds) for a, rws, seeds in jobs]
    assert [[(r.i, r.status, r.image) for r in rs] for rs in many] == \
        [[(r.i, r.status, r.image) for r in rs] for rs in alone]
