"""Faults: failing writes, permanently failing units, fuzzed bad input. Nothing is lost silently."""
import errno
import io
import json
import random
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cfgen.captions.stage import CaptionsConfig, run_captions
from tests.conftest import caption_shards, jpeg_bytes, write_tar
from tests.helpers import digest as _digest


def _tars(root: Path, n_shards=3, per=20):
    caption_shards(root, ["a red car on a road"] * per, n_shards)


def test_disk_full_once_is_retried_and_output_is_unchanged(tmp_path, monkeypatch):
    import cfgen.io.writer as w
    _tars(tmp_path / "in")
    run_captions(CaptionsConfig(input=[str(tmp_path / "in")], out=str(tmp_path / "ref")))
    real_open = open
    state = {"failed": 0}

    class FullFile(io.FileIO):
        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    def flaky_open(path, mode="r", *a, **k):
        if "w" in mode and ".tmp" in str(path) and "part-00001.parquet" in str(path) and not state["failed"]:
            state["failed"] += 1
            return FullFile(path, "w")
        return real_open(path, mode, *a, **k)
    monkeypatch.setattr(w, "open", flaky_open, raising=False)
    s = run_captions(CaptionsConfig(input=[str(tmp_path / "in")], out=str(tmp_path / "run"), distributor="sequential"))
    assert state["failed"] == 1 and s["units_failed"] == {} and s["units_done"] == 3
    assert _digest(tmp_path / "ref" / "captions") .keys() == _digest(tmp_path / "run" / "captions").keys()
    ref, got = _digest(tmp_path / "ref" / "captions"), _digest(tmp_path / "run" / "captions")
    assert {k: v for k, v in ref.items() if k.endswith(".parquet")} == {k: v for k, v in got.items() if k.endswith(".parquet")}
    assert not list((tmp_path / "run").rglob("*.tmp*"))


def test_a_unit_that_always_fails_is_listed_and_the_run_finishes(tmp_path, monkeypatch):
    import cfgen.captions.stage as st
    _tars(tmp_path / "in")
    real = st.read_unit

    def broken(unit, cfg):
        if unit.index == 1:
            raise OSError(errno.EIO, "Input/output error")
        return real(unit, cfg)
    monkeypatch.setattr(st, "read_unit", broken)
    s = run_captions(CaptionsConfig(input=[str(tmp_path / "in")], out=str(tmp_path / "run"), retries=1))
    assert s["units_done"] == 2 and "part-00001" in s["units_failed"]
    assert "Input/output error" in s["units_failed"]["part-00001"]
    assert json.loads((tmp_path / "run" / "captions" / "failed.json").read_text())["part-00001"]
    monkeypatch.setattr(st, "read_unit", real)                  # the fault goes away: a rerun completes
    s = run_captions(CaptionsConfig(input=[str(tmp_path / "in")], out=str(tmp_path / "run")))
    assert s["units_done"] == 3 and s["units_failed"] == {}


def _fuzz_tar(path: Path, rng: random.Random) -> int:
    """A tar of random good and bad samples; returns how many samples it holds."""
    members = []
    n = rng.randint(5, 25)
    for i in range(n):
        key = rng.choice([f"{i:09d}", f"../x{i}", f"a.b.{i}", f"we ird {i}", f"dup{i % 3}"])
        img = rng.choice([jpeg_bytes(), bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))),
                          jpeg_bytes()[: rng.randint(1, 200)]])
        cap = rng.choice([b"a red car", b"", b"\xff\xfe\xfa", ("word " * 600).encode(), b"two dogs on grass",
                          "\u00e9l\u00e8ve \u8d64".encode()])
        members.append((f"{key}.jpg", img))
        if rng.random() < 0.9:
            members.append((f"{key}.txt", cap))
    write_tar(path, members)
    # samples as webdataset groups them: consecutive members sharing the key before the first dot
    keys = [str(Path(name).parent / Path(name).name.split(".", 1)[0]) for name, _ in members]
    return sum(1 for j, k in enumerate(keys) if j == 0 or k != keys[j - 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fuzzed_inputs_every_sample_accounted_for(tmp_path, seed):
    rng = random.Random(seed)
    total = 0
    for s in range(4):
        total += _fuzz_tar(tmp_path / "in" / f"{s:05d}.tar", rng)
    trunc = tmp_path / "in" / "00004.tar"
    n5 = _fuzz_tar(trunc, rng)
    with tarfile.open(trunc) as tf:
        cut = tf.getmembers()[-2].offset_data + 5                # inside a member's data
    trunc.write_bytes(trunc.read_bytes()[:cut])
    (tmp_path / "in" / "00005.tar").write_bytes(bytes(rng.getrandbits(8) for _ in range(5000)))
    s = run_captions(CaptionsConfig(input=[str(tmp_path / "in")], out=str(tmp_path / "run")))
    assert s["units_done"] == 6 and s["units_failed"] == {}
    assert s["in"] == s["kept"] + sum(s["rejected"].values()) + sum(s["failed"].values())
    per = {json.loads(p.read_text())["unit"]: json.loads(p.read_text())
           for p in (tmp_path / "run" / "captions").glob("*.stats.json")}
    assert sum(per[u]["in"] for u in range(4)) == total           # whole tars: exactly every sample
    assert 1 <= per[4]["in"] <= n5 + 1 and per[4]["failed"]      # truncated: what was readable + a failure
    assert per[5]["in"] == 1 and per[5]["failed"]                # not a tar at all
    rows = pq.read_table(sorted((tmp_path / "run" / "captions").glob("*.parquet"))).to_pylist()
    keys = {r["key"] for r in rows}
    assert all("/" not in k and "." not in k for k in keys)
