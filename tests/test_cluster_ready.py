"""What a first cluster run trips on: exit codes, fail-fast model checks, errors that name the
file or option, device slots under an existing CUDA_VISIBLE_DEVICES, config typos."""
import subprocess
import sys
import time

import pytest

from cfgen.run import parse_gpus


def _cli(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "cfgen.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_images_with_an_unloadable_filter_model_fails_fast_naming_it(world_final, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(world_final, run, ignore=shutil.ignore_patterns("images", "final"))
    t = time.time()
    r = _cli("images", "--run", str(run), "--filter", "--filter-model", "no-such-org/no-such-clip")
    assert time.time() - t < 30
    assert r.returncode != 0
    assert "no-such-org/no-such-clip" in r.stderr and "filter_model" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_failed_unit_makes_the_stage_exit_non_zero_and_is_listed(world_final, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(world_final, run, ignore=shutil.ignore_patterns("images", "final"))
    (run / "captions" / "part-00001.parquet").write_bytes(b"not a parquet file")   # this unit cannot be read
    r = _cli("images", "--run", str(run), "--no-filter", "--workers", "1")
    assert r.returncode == 1
    assert "captions/part-00001" in r.stdout and "part-00001" in r.stderr
    assert "unit(s) failed" in r.stderr
    assert (run / "final" / "part-00000.tar").exists() and not (run / "final" / "part-00001.tar").exists()


def test_missing_input_names_the_file(tmp_path):
    r = _cli("captions", "--input", str(tmp_path / "nope.tar"), "--out", str(tmp_path / "run"))
    assert r.returncode != 0 and "nope.tar" in r.stderr and "Error: 2" not in r.stderr


def test_a_typo_in_a_nested_images_section_names_key_and_file(tmp_path):
    from cfgen.config import build, load_yaml
    from cfgen.images.stage import ImagesConfig
    bad = tmp_path / "bad.yaml"
    bad.write_text("images:\n  editor: sdxl\n  sdxl:\n    base_stepz: 3\n")
    with pytest.raises(ValueError, match=r"base_stepz.*bad\.yaml.*sdxl"):
        build(ImagesConfig, load_yaml(bad, "images"))
    good = build(ImagesConfig, {"sdxl": {"base_steps": 3}, "masks": {"kind": "clipseg"}})
    assert good.sdxl.base_steps == 3 and good.sdxl.refiner_steps == 15 and good.masks.kind == "clipseg"


def test_recipe_over_config_and_the_saved_config_is_the_run(tmp_path):
    from cfgen.config import load_yaml
    from cfgen.resources import pipelines_dir
    from cfgen.train.trainer import recipe_config
    base = load_yaml(pipelines_dir() / "paper.yaml", "train")
    cfg = recipe_config("std-ft", {}, config=base)
    assert (cfg.recipe, cfg.use_cf, cfg.beta, cfg.gamma) == ("std-ft", False, 0.0, 0.0)
    assert cfg.model == "openai/clip-vit-base-patch32" and cfg.lr == 1e-5       # the run settings stay
    assert recipe_config(None, {}, config=base).recipe == "cf-vlm"


def test_gpu_slots_map_through_the_jobs_visible_devices(monkeypatch):
    assert parse_gpus("0-1", "3,5,7") == ["3", "5"]
    assert parse_gpus("all", "GPU-aa,GPU-bb") == ["GPU-aa", "GPU-bb"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "6,7")
    assert parse_gpus("1") == ["7"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert parse_gpus("0,2") == ["0", "2"]
    with pytest.raises(ValueError, match="no index 2"):
        parse_gpus("0-3", "3,5")


def test_vllm_with_several_workers_is_refused(tmp_path):
    from cfgen.captions.stage import CaptionsConfig, preflight
    with pytest.raises(ValueError, match="tensor-parallel-size"):
        preflight(CaptionsConfig(backend="vllm", workers=4))


class _FlakyEditor:
    """Raises the given error on the first call with the full batch, then edits one by one."""

    def __init__(self, error):
        self.error, self.calls = error, []

    def edit(self, anchor, rewrites, seeds, batch_size=None):
        self.calls.append(batch_size)
        if batch_size is None:
            raise self.error
        return ["ok"] * len(rewrites)


def test_oom_retries_one_by_one_and_a_sticky_cuda_error_breaks_the_worker():
    from cfgen.run import WorkerBroken
    from cfgen.images.stage import edit_anchors

    class OutOfMemoryError(RuntimeError):
        pass
    ed = _FlakyEditor(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert edit_anchors(ed, [(None, [1, 2], [0, 0])]) == ([["ok", "ok"]], 1)      # 1 anchor redone
    assert ed.calls == [None, 1]
    with pytest.raises(WorkerBroken):
        edit_anchors(_FlakyEditor(RuntimeError("CUDA error: an illegal memory access was encountered")), [(None, [1], [0])])
    out, _ = edit_anchors(_FlakyEditor(ValueError("bad prompt")), [(None, [1], [0])])
    assert isinstance(out[0], ValueError)                 # one anchor's error fails that anchor alone


class _BatchingEditor(_FlakyEditor):
    """edit_many fails for the group (e.g. out of memory): each anchor is then redone alone."""

    def edit_many(self, jobs, batch_size=None):
        raise self.error


def test_a_failing_cross_anchor_batch_falls_back_to_anchor_by_anchor():
    from cfgen.images.stage import edit_anchors

    class OutOfMemoryError(RuntimeError):
        pass
    ed = _BatchingEditor(OutOfMemoryError("CUDA out of memory"))
    assert edit_anchors(ed, [(None, [1], [0]), (None, [2, 3], [0, 0])]) == ([["ok"], ["ok", "ok"]], 2)
    assert ed.calls == [None, 1, None, 1]


def _broken_job(unit, device):
    from cfgen.run import WorkerBroken
    import os
    marker = os.environ["CFGEN_TEST_MARKER"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise WorkerBroken("CUDA error: illegal memory access")
    return {"unit": unit.index, "in": 1, "kept": 1, "rejected": {}, "failed": {}}


def test_a_broken_worker_is_replaced_and_its_unit_retried(tmp_path, monkeypatch):
    from cfgen.run.distribute import distribute_local
    from cfgen.run import Unit
    monkeypatch.setenv("CFGEN_TEST_MARKER", str(tmp_path / "broken-once"))
    units = [Unit(index=0, path="x", kind="wds")]
    failures = distribute_local(_broken_job, units, gpus=["0"], retries=2)     # a worker process (one slot)
    assert failures == {} and (tmp_path / "broken-once").exists()
