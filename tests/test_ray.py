"""The Ray distributor on a real local Ray cluster (loopback, CPU)."""
import hashlib
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow          # starts a Ray cluster: CI runs these in its second step


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob("*.parquet"))}


def test_ray_captions_equal_local(ray_cluster, small_world, tmp_path):
    from cfgen.captions.stage import CaptionsConfig, run_captions
    local = run_captions(CaptionsConfig(input=[str(small_world / "train")], out=str(tmp_path / "local")))
    dist = run_captions(CaptionsConfig(input=[str(small_world / "train")], out=str(tmp_path / "ray"),
                                       distributor="ray", workers=2))
    assert _digest(tmp_path / "local" / "captions") == _digest(tmp_path / "ray" / "captions")
    assert dist["in"] == local["in"] and dist["units_done"] == 3


def test_ray_finishes_a_run_started_locally(ray_cluster, small_world, tmp_path):
    from cfgen.captions.stage import CaptionsConfig, run_captions
    from cfgen.run import Ledger
    cfg = CaptionsConfig(input=[str(small_world / "train")], out=str(tmp_path / "r"))
    run_captions(cfg)
    led = Ledger(tmp_path / "r", "captions")
    first = led.stats_path(__import__("cfgen.run", fromlist=["Unit"]).Unit(0, "", "wds"))
    mtime = first.stat().st_mtime_ns
    (tmp_path / "r" / "captions" / "part-00002.stats.json").unlink()          # one unit left to do
    cfg.distributor = "ray"
    run_captions(cfg)
    assert first.stat().st_mtime_ns == mtime                                # finished units not redone
    assert (tmp_path / "r" / "captions" / "part-00002.stats.json").exists()


def test_ray_retries_a_dead_actor(ray_cluster, tmp_path):
    from cfgen.run.distribute_ray import distribute_ray
    from cfgen.run import Unit
    from tests.helpers import DieOnceJob
    units = [Unit(i, f"in-{i}.tar", "wds") for i in range(4)]
    failures = distribute_ray(DieOnceJob(str(tmp_path), die_on=2), units, workers=2, retries=2)
    assert failures == {}
    assert sorted((tmp_path / "completions.log").read_text().split()) == ["0", "1", "2", "3"]
    assert (tmp_path / "died-2").exists()
