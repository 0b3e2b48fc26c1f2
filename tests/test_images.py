import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from cfgen.captions.stage import CaptionsConfig, run_captions
from cfgen.datamodel import Sample
from cfgen.io.images import decode_rgb
from cfgen.images.stage import ImagesConfig, run_filter, run_images
from cfgen.world.scene import COLORS, SHAPES, SIZES

WORLD_VOCAB = {"color": list(COLORS), "shape": list(SHAPES), "size": list(SIZES)}


@pytest.fixture(scope="module")
def world_run(small_world, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    run_captions(CaptionsConfig(input=[str(small_world / "train")], out=str(run), rules_vocab=WORLD_VOCAB))
    return run


@pytest.fixture(scope="module")
def world_images(world_run):
    """world_run through the images stage (scene editor, no filter): (run, stats). Every test that
    reads world_run/final asks for this, so each passes alone and in any order."""
    return world_run, run_images(ImagesConfig(run=str(world_run), filter=False, image_format="png"))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from cfgen.demo.clip import build_clip
    return build_clip(tmp_path_factory.mktemp("clip"), words=list(COLORS) + list(SHAPES), image_size=32)


def _final(run: Path) -> list[Sample]:
    tars = sorted(str(p) for p in (run / "final").glob("part-*.tar"))
    return [Sample.from_wds(s) for s in wds.WebDataset(tars, shardshuffle=False)]


def test_scene_edits_are_renders_of_their_captions_changed_only_inside_the_mask(world_images, small_world):
    """Each counterfactual (PNG here) is the world's render of its caption's scene, pixel for pixel
    (#29: no pixels of the JPEG anchor, so no ghost of a removed object); the clean renders of
    anchor and counterfactual differ only inside mask_box, and do inside it."""
    import random
    from cfgen.world.scene import Scene, apply_caption, caption, caption_of, parse_caption, render
    world_run, s = world_images
    assert s["in"] == 300 and s["in"] == s["kept"] + sum(s["rejected"].values()) + sum(s["failed"].values())
    samples = _final(world_run)
    assert len(samples) == s["kept"] > 200
    scenes = {json.loads(w["json"])["key"]: Scene.from_dict(json.loads(w["json"])["scene"]) for w in
              wds.WebDataset(sorted(str(p) for p in (small_world / "train").glob("*.tar")), shardshuffle=False)}
    n = 0
    types = set()
    for smp in samples:
        scene = scenes[smp.meta["source"]]
        a = render(scene, 64).astype(int)
        for cf in smp.cfs:
            new = apply_caption(scene, cf.text, random.Random(cf.seed))     # the editor's own draw
            assert caption(new) == caption_of(parse_caption(cf.text))
            c = np.asarray(decode_rgb(cf.image)).astype(int)
            assert (c == render(new, 64)).all()
            x0, y0, x1, y1 = cf.mask_box
            outside = np.ones(a.shape[:2], bool)
            outside[y0:y1, x0:x1] = False
            assert (a[outside] == c[outside]).all()
            assert (a[y0:y1, x0:x1] != c[y0:y1, x0:x1]).any()
            types.add(cf.edit.type)
            n += 1
    assert n > 400 and {"color", "shape", "size", "position", "quantity"} <= types
    # held-out colour-shape pairs never appear in a training counterfactual
    rej = json.loads((world_run / "images" / "part-00000.stats.json").read_text())["cf_rejected"]
    assert rej.get("heldout_combination", 0) > 0


def test_final_shards_read_with_plain_webdataset(world_images):
    world_run, _ = world_images
    tars = sorted(str(p) for p in (world_run / "final").glob("part-*.tar"))
    pairs = list(wds.WebDataset(tars, shardshuffle=False).decode("pil").to_tuple("png", "txt"))
    assert len(pairs) == len(_final(world_run)) and all(isinstance(t, str) for _, t in pairs)


def test_filter_scores_stored_and_refilter_without_regenerating(world_run, tiny_clip, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(world_run / "captions", run / "captions")
    shutil.copy(world_run / "manifest.json", run / "manifest.json")
    cfg = ImagesConfig(run=str(run), filter=True, filter_model=str(tiny_clip), min_cf_score=-1.0,
                       min_margin=-1.0, min_img_sim=-1.0, max_img_sim=1.0)
    loose = run_images(cfg)
    kept_cf = loose["extra"]["cf_kept"]
    assert kept_cf == loose["extra"]["cf_generated"] > 0
    for smp in _final(run):
        for cf in smp.cfs:
            assert set(cf.scores) >= {"s_cf_tcf", "s_cf_ta", "margin", "s_img"}
            assert abs(cf.scores["margin"] - (cf.scores["s_cf_tcf"] - cf.scores["s_cf_ta"])) < 1e-3
    tar = run / "images" / "part-00000.tar"
    before = tar.stat().st_mtime_ns
    margins = sorted(c.scores["margin"] for smp in _final(run) for c in smp.cfs)
    cfg.min_margin = margins[len(margins) // 2]
    strict = run_filter(cfg, redo=True)
    assert tar.stat().st_mtime_ns == before
    assert 0 < strict["extra"]["cf_kept"] < kept_cf
    assert strict["extra"]["cf_filtered.filter_low_margin"] == kept_cf - strict["extra"]["cf_kept"]
    assert strict["in"] == loose["in"]
    assert all(c.scores["margin"] >= cfg.min_margin for smp in _final(run) for c in smp.cfs)


def test_worker_killed_mid_shard_is_redone_once(tmp_path):
    from cfgen.run.distribute import distribute_local
    from cfgen.run import Unit
    from tests.helpers import SlowJob
    units = [Unit(i, f"in-{i}.tar", "wds") for i in range(6)]
    killed = []

    def killer():
        t0 = time.time()
        while time.time() - t0 < 60 and not killed:
            started = list(tmp_path.glob("started-3-*"))
            if started:
                pid = int(started[0].name.split("-")[2])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.01)

    th = threading.Thread(target=killer)
    th.start()
    failures = distribute_local(SlowJob(str(tmp_path)), units, workers=2, retries=2)
    th.join()
    assert killed and failures == {}
    assert sorted((tmp_path / "out").glob("part-*.txt")) == [tmp_path / "out" / f"part-{i:05d}.txt" for i in range(6)]
    done = (tmp_path / "completions.log").read_text().split()
    assert sorted(done) == [str(i) for i in range(6)]           # every unit finished exactly once
    assert len(list(tmp_path.glob("started-3-*"))) == 2          # unit 3 was started twice


def test_cpu_workers_give_the_same_shards_as_one_process(world_images, tmp_path):
    world_run, _ = world_images
    import hashlib
    import shutil
    run = tmp_path / "run"
    shutil.copytree(world_run / "captions", run / "captions")
    shutil.copy(world_run / "manifest.json", run / "manifest.json")
    run_images(ImagesConfig(run=str(run), filter=False, image_format="png", workers=2))
    digest = lambda d: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob("*.tar"))}
    assert digest(run / "final") == digest(world_run / "final")


def test_the_images_stage_edits_every_kept_rewrite_up_to_the_runs_k(tmp_path):
    """K is set once, by captions (issue #28 item 2): with K = 6 the images stage edits up to 6
    counterfactuals per anchor (it stopped at 4, a second K of its own, before)."""
    import json
    import webdataset as wds
    from cfgen.captions.stage import CaptionsConfig, run_captions
    from cfgen.images.stage import ImagesConfig, run_images
    from cfgen.world import world_vocab
    from cfgen.world.generate import WorldConfig, generate_world
    generate_world(tmp_path / "w", WorldConfig(n=40, n_test=4, per_shard=40, seed=5))
    run_captions(CaptionsConfig(input=[str(tmp_path / "w" / "train")], out=str(tmp_path / "r"), k=6,
                                rules_vocab=world_vocab()))
    run_images(ImagesConfig(run=str(tmp_path / "r"), filter=False))
    per_anchor = [len(json.loads(s["json"])["cf"]) for s in
                  wds.WebDataset(sorted(str(p) for p in (tmp_path / "r" / "final").glob("*.tar")), shardshuffle=False)]
    assert max(per_anchor) == 6 and sum(n > 4 for n in per_anchor) >= 5, per_anchor
    # ... and training reads it from the manifest: unset -> 6, smaller is a choice, larger is refused
    from cfgen.train.trainer import recipe_config, with_run_k
    final = str(tmp_path / "r" / "final")
    assert with_run_k(recipe_config("cf-vlm", {"shards": [final]})).k == 6
    assert with_run_k(recipe_config("cf-vlm", {"shards": [final + "/*.tar"], "k": 2})).k == 2
    with pytest.raises(ValueError, match="at most 6"):
        with_run_k(recipe_config("cf-vlm", {"shards": [final], "k": 8}))
    assert with_run_k(recipe_config("cf-vlm", {"shards": sorted(str(p) for p in (tmp_path / "w" / "train").glob("*.tar"))})).k == 4
