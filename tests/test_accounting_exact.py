"""Exact input accounting for tars cut short (issue #26): every sample the tar still holds,
whole or in part, is one record, plus one failure for the cut; no range of plausible counts."""
import json
import tarfile

from cfgen.io.reader import read_unit
from cfgen.run import plan_units
from tests.conftest import jpeg_bytes, write_tar

N = 6          # samples 000..005, each <key>.jpg then <key>.txt


def _tar(tmp_path):
    path = write_tar(tmp_path / "full.tar", [(f"{i:03d}.{e}", jpeg_bytes() if e == "jpg" else f"cap {i}".encode())
                                             for i in range(N) for e in ("jpg", "txt")])
    with tarfile.open(path) as tf:
        members = {m.name: m for m in tf.getmembers()}
    return path.read_bytes(), members


def _read(tmp_path, data, name="cut.tar"):
    (tmp_path / name).write_bytes(data)
    recs = list(read_unit(plan_units([str(tmp_path / name)])[0]))
    kept = [r.source_id for r in recs if r.anchor is not None]
    other = [(r.source_id, r.status, r.reason.split(":")[0]) for r in recs if r.anchor is None]
    return kept, other


def _end(m):
    """Offset just past a member's data, padded to the 512-byte block as tar writes it."""
    return m.offset_data + (m.size + 511) // 512 * 512


def test_whole_tar_every_sample_no_failure(tmp_path):
    data, _ = _tar(tmp_path)
    assert _read(tmp_path, data) == ([f"{i:03d}" for i in range(N)], [])


def test_cut_at_a_member_boundary(tmp_path):
    """Cut right after sample 003's caption: 000-003 are whole (4 kept), and the missing
    end-of-archive marker is the one failure."""
    data, m = _tar(tmp_path)
    kept, other = _read(tmp_path, data[:_end(m["003.txt"])])
    assert kept == ["000", "001", "002", "003"]
    assert other == [("cut.tar#unreadable", "failed", "unreadable_tar")]


def test_cut_between_a_samples_members(tmp_path):
    """Cut after 004.jpg, before 004.txt: 004 was partly read, so it is a record of its own
    (rejected: missing_caption), never silently dropped."""
    data, m = _tar(tmp_path)
    kept, other = _read(tmp_path, data[:_end(m["004.jpg"])])
    assert kept == ["000", "001", "002", "003"]
    assert other == [("004", "rejected", "missing_caption"), ("cut.tar#unreadable", "failed", "unreadable_tar")]


def test_cut_inside_a_caption_members_data(tmp_path):
    """Cut 3 bytes into 004.txt's data: 004's image was read, its caption is cut short, and the
    failure names the member that was cut (what a user looks for in the stats)."""
    data, m = _tar(tmp_path)
    kept, other = _read(tmp_path, data[:m["004.txt"].offset_data + 3])
    assert kept == ["000", "001", "002", "003"]
    assert other == [("004", "rejected", "missing_caption"), ("cut.tar#unreadable", "failed", "unreadable_tar")]
    fail = [r for r in read_unit(plan_units([str(tmp_path / "cut.tar")])[0]) if r.status == "failed"]
    assert "004.txt" in fail[0].reason


def test_cut_inside_an_image_members_data(tmp_path):
    """Cut 10 bytes into 004.jpg's data: nothing of 004 was read, 003 is whole and still counted."""
    data, m = _tar(tmp_path)
    kept, other = _read(tmp_path, data[:m["004.jpg"].offset_data + 10])
    assert kept == ["000", "001", "002", "003"]
    assert other == [("cut.tar#unreadable", "failed", "unreadable_tar")]


def test_cut_inside_a_header(tmp_path):
    """Cut 100 bytes into 004.jpg's 512-byte header."""
    data, m = _tar(tmp_path)
    kept, other = _read(tmp_path, data[:m["004.jpg"].offset + 100])
    assert kept == ["000", "001", "002", "003"]
    assert other == [("cut.tar#unreadable", "failed", "unreadable_tar")]


def test_captions_stage_counts_a_cut_tar_exactly(tmp_path):
    """Through the captions stage's ledger: in = 6 = the 4 whole samples (kept, or rejected for
    their rewrites) + 004 rejected as missing_caption + 1 failure for the cut."""
    from cfgen.captions.stage import CaptionsConfig, run_captions
    data, m = _tar(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "00000.tar").write_bytes(data[:m["004.txt"].offset_data + 3])
    s = run_captions(CaptionsConfig(input=[str(tmp_path / "in")], out=str(tmp_path / "run")))
    st = json.loads((tmp_path / "run" / "captions" / "part-00000.stats.json").read_text())
    assert st["in"] == 6 and s["in"] == 6
    assert st["rejected"]["missing_caption"] == 1
    assert st["kept"] + sum(st["rejected"].values()) - 1 == 4          # the whole samples 000-003
    assert sum(st["failed"].values()) == 1 and all(k.startswith("unreadable_tar") for k in st["failed"])


def test_a_repeated_member_rejects_its_sample_only(tmp_path):
    """001 has two captions in a row: that sample is rejected (duplicate_member), 000 and 002 kept."""
    members = [("000.jpg", jpeg_bytes()), ("000.txt", b"a"), ("001.jpg", jpeg_bytes()), ("001.txt", b"b"),
               ("001.txt", b"c"), ("002.jpg", jpeg_bytes()), ("002.txt", b"d")]
    data = write_tar(tmp_path / "d.tar", members).read_bytes()
    assert _read(tmp_path, data, "dup.tar") == (["000", "002"], [("001", "rejected", "duplicate_member")])
