import subprocess
import sys

import pandas as pd
import pytest

from cfgen.io.keys import sanitize_key
from cfgen.errors import InputError
from cfgen.io.reader import InputConfig, expand_inputs, read_unit
from cfgen.run import UnitStats, plan_units
from tests.conftest import jpeg_bytes, write_tar


def test_sanitize_key_removes_path_and_dots():
    for raw in ["../../etc/passwd", "a.b.c", "x/y", "ü ñ", "...", ""]:
        k = sanitize_key(raw)
        assert k and "/" not in k and "." not in k and all(c.isalnum() or c in "_-" for c in k)
    assert sanitize_key("a.b") != sanitize_key("") and sanitize_key("000000001") == "000000001"
    assert len(sanitize_key("x" * 1000)) <= 120


def test_expand_brace_glob_dir_and_errors(tmp_path):
    for i in range(3):
        write_tar(tmp_path / "s" / f"{i:05d}.tar", [])
    assert len(expand_inputs(str(tmp_path / "s" / "{00000..00002}.tar"))) == 3
    assert len(expand_inputs(str(tmp_path / "s" / "*.tar"))) == 3
    assert len(expand_inputs(str(tmp_path / "s"))) == 3
    with pytest.raises(InputError, match="not found"):
        expand_inputs(str(tmp_path / "nope.tar"))
    with pytest.raises(InputError, match="glob matched no files"):
        expand_inputs(str(tmp_path / "s" / "*.parquet"))


def test_bad_samples_are_counted_with_reasons(tmp_path):
    good = jpeg_bytes()
    members = [
        ("000000000.jpg", good), ("000000000.txt", b"a red car"), ("000000000.json", b'{"url": "u"}'),
        ("000000001.jpg", b"not an image"), ("000000001.txt", b"broken image"),
        ("000000002.jpg", good),
        ("000000003.jpg", good), ("000000003.txt", b"\xff\xfe bad utf8"),
        ("000000004.jpg", good), ("000000004.txt", b"   "),
        ("000000005.jpg", good), ("000000005.txt", b"x" * 2001),
        ("../ev il%x.jpg", good), ("../ev il%x.txt", b"a dog"),
        ("000000006.txt", b"no image"),
        ("dup.jpg", good), ("dup.txt", b"first"), ("other.jpg", good), ("other.txt", b"mid"),
        ("dup.jpg", good), ("dup.txt", b"second"),
        ("000000007.png", good[:50]), ("000000007.txt", b"truncated"),
    ]
    path = write_tar(tmp_path / "00000.tar", members)
    unit = plan_units([str(path)])[0]
    recs = list(read_unit(unit))
    reasons = {r.source_id: r.reason for r in recs}
    assert reasons["000000000"] == "" and reasons["000000001"] == "corrupt_image"
    assert reasons["000000002"] == "missing_caption" and reasons["000000003"] == "non_utf8_caption"
    assert reasons["000000004"] == "empty_caption" and reasons["000000005"] == "caption_too_long"
    assert reasons["000000006"] == "missing_image" and reasons["000000007"] == "corrupt_image"
    evil = next(r for r in recs if r.source_id == "../ev il%x")
    assert evil.anchor is not None and "/" not in evil.anchor.key and "." not in evil.anchor.key
    dups = [r for r in recs if r.source_id == "dup"]
    assert [d.reason for d in dups] == ["", "duplicate_key"]
    st = UnitStats(0)
    for r in recs:
        st.add("kept" if r.anchor else r.status, r.reason)
    assert st.balanced() and st.n_in == len(recs) == 12


def test_truncated_and_garbage_tars_fail_with_reason(tmp_path):
    good = jpeg_bytes()
    path = write_tar(tmp_path / "a.tar", [(f"{i:09d}.{e}", good if e == "jpg" else b"cap")
                                          for i in range(20) for e in ("jpg", "txt")])
    data = path.read_bytes()
    (tmp_path / "t.tar").write_bytes(data[: len(data) // 2])
    recs = list(read_unit(plan_units([str(tmp_path / "t.tar")])[0]))
    assert any(r.status == "failed" and r.reason.startswith("unreadable_tar") for r in recs)
    assert 5 < sum(r.anchor is not None for r in recs) < 20
    (tmp_path / "g.tar").write_bytes(b"\x00garbage" * 100)
    recs = list(read_unit(plan_units([str(tmp_path / "g.tar")])[0]))
    assert len(recs) == 1 and recs[0].status == "failed"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_tables_with_configurable_columns(tmp_path, fmt):
    (tmp_path / "img").mkdir()
    for i in range(5):
        (tmp_path / "img" / f"{i}.jpg").write_bytes(jpeg_bytes())
    df = pd.DataFrame({"path": [f"img/{i}.jpg" for i in range(5)] + ["img/missing.jpg"],
                       "text": [f"caption {i}" for i in range(5)] + ["lost"],
                       "uid": [f"id.{i}" for i in range(6)]})
    p = tmp_path / f"t.{fmt}"
    {"csv": lambda: df.to_csv(p, index=False), "jsonl": lambda: df.to_json(p, orient="records", lines=True),
     "parquet": lambda: df.to_parquet(p)}[fmt]()
    cfg = InputConfig(image_col="path", caption_col="text", id_col="uid", rows_per_unit=4)
    units = plan_units(expand_inputs(str(p)), cfg)
    assert [(u.start, u.stop) for u in units] == [(0, 4), (4, 6)]
    recs = [r for u in units for r in read_unit(u, cfg)]
    assert [r.anchor.caption for r in recs if r.anchor] == [f"caption {i}" for i in range(5)]
    assert recs[-1].reason == "missing_image" and recs[0].anchor.key == "id_0"
    with pytest.raises(InputError, match="no column"):
        list(read_unit(units[0], InputConfig(image_col="nope")))


def test_cli_missing_input_is_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cfgen.cli", "captions", "--input", str(tmp_path / "x/*.tar"),
                        "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and "glob matched no files" in r.stderr
