"""SIGKILL the images stage at random moments (several seeds), rerun, and compare with an
uninterrupted run: same keys, same bytes, no duplicates, no temp file left visible."""
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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_images_stage_sigkill_at_random_moments(captioned, tmp_path, seed):
    cmd = [sys.executable, "-m", "cfgen.cli", "images", "--no-filter"]
    ref = _copy_run(captioned, tmp_path / "ref")
    subprocess.run(cmd + ["--run", str(ref)], check=True, capture_output=True)
    run = _copy_run(captioned, tmp_path / "run")
    rng = random.Random(seed)
    for _ in range(2):
        p = subprocess.Popen(cmd + ["--run", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 6.0))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
    subprocess.run(cmd + ["--run", str(run)], check=True, capture_output=True)
    assert _tars(run / "final") == _tars(ref / "final")
    assert _tars(run / "images") == _tars(ref / "images")
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]
    keys = [s["__key__"] for s in wds.WebDataset(sorted(str(p) for p in (run / "final").glob("*.tar")),
                                                  shardshuffle=False)]
    assert len(keys) == len(set(keys))
