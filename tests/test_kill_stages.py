"""SIGKILL the images stage at random moments (several seeds), rerun, and compare with an
uninterrupted run: same keys, same bytes, no duplicates, no temp file left visible. Each kill
is asserted to land while the stage is still running (a kill after the end proves nothing)."""
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import webdataset as wds

pytestmark = pytest.mark.slow


def _tars(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob("*.tar"))}


@pytest.fixture(scope="module")
def captioned(tmp_path_factory):
    from cfgen.captions.stage import CaptionsConfig, run_captions
    from cfgen.world import world_vocab
    from cfgen.world.generate import WorldConfig, generate_world
    d = tmp_path_factory.mktemp("k")
    generate_world(d / "w", WorldConfig(n=1200, n_test=10, per_shard=100))
    run_captions(CaptionsConfig(input=[str(d / "w" / "train")], out=str(d / "run"), rules_vocab=world_vocab()))
    return d / "run"


def _copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    shutil.copytree(src / "captions", dst / "captions")
    shutil.copy(src / "manifest.json", dst / "manifest.json")
    return dst


def _done(run: Path) -> int:
    """Units the stage has finished so far: edit parts and final parts (12 + 12 here)."""
    return len(list(run.glob("images/part-*.stats.json"))) + len(list(run.glob("final/part-*.stats.json")))


TOTAL = 24


def _kill_mid_run(cmd: list[str], run: Path, target: int, delay: float) -> int:
    """Start the stage, wait until `target` units are done, wait `delay` more (the kill lands
    inside the next unit), then SIGKILL it, asserting it was still running. Returns the units
    done at the kill."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while _done(run) < target and p.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        assert p.poll() is None, f"the stage ended (rc {p.returncode}) before the kill at {target} units + {delay:.2f} s"
        at_kill = _done(run)
        os.kill(p.pid, signal.SIGKILL)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
    assert p.returncode == -signal.SIGKILL
    assert at_kill < TOTAL and _done(run) < TOTAL, "the kill landed after the stage had finished"
    return at_kill


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_images_stage_sigkill_at_random_moments(captioned, tmp_path, seed):
    """Two kills per seed, each at a random point of progress (after a random number of finished
    units, plus up to 50 ms into the next); both must land while the stage is still running."""
    cmd = [sys.executable, "-m", "cfgen.cli", "images", "--no-filter"]
    ref = _copy_run(captioned, tmp_path / "ref")
    subprocess.run(cmd + ["--run", str(ref)], check=True, capture_output=True)
    assert _done(ref) == TOTAL
    run = _copy_run(captioned, tmp_path / "run")
    rng = random.Random(seed)
    progress = []
    for _ in range(2):
        done0 = _done(run)
        target = rng.randint(min(done0 + 1, TOTAL - 4), TOTAL - 4)   # >= 4 units (>= 0.3 s) left to run
        progress.append(_kill_mid_run(cmd + ["--run", str(run)], run, target, rng.uniform(0.0, 0.05)))
    assert 0 < progress[0] <= progress[1] < TOTAL
    subprocess.run(cmd + ["--run", str(run)], check=True, capture_output=True)
    assert _tars(run / "final") == _tars(ref / "final")
    assert _tars(run / "images") == _tars(ref / "images")
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]
    keys = [s["__key__"] for s in wds.WebDataset(sorted(str(p) for p in (run / "final").glob("*.tar")),
                                                  shardshuffle=False)]
    assert len(keys) == len(set(keys))
