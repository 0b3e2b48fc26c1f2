import pyarrow.parquet as pq
import pytest
import webdataset as wds

from cfgen.datamodel import (Anchor, Counterfactual, Edit, Rewrite, Sample, rewrites_to_table,
                             table_to_rewrites)
from cfgen.io.writer import AtomicTarWriter
from tests.conftest import jpeg_bytes


def _sample() -> Sample:
    cfs = [Counterfactual(i=0, text="a blue circle", edit=Edit("color", "red", "blue", "local"),
                          image=jpeg_bytes((0, 0, 200)), mask_box=[1, 2, 10, 12],
                          scores={"s_cf_tcf": 0.31}, seed=7, rewrite=2),
           Counterfactual(i=1, text="two red circles", edit=Edit("quantity", "a", "two", "local"),
                          image=jpeg_bytes((200, 0, 0)), seed=8, rewrite=3)]
    return Sample(key="000010002", caption="a red circle", image=jpeg_bytes(),
                  meta={"source": {"id": "x/y.z"}}, cfs=cfs)


def test_edit_rejects_unknown_type_and_scope():
    with pytest.raises(ValueError):
        Edit("smell", "a", "b", "local")
    with pytest.raises(ValueError):
        Edit("color", "a", "b", "sideways")
    assert Edit.from_dict(Edit("color", "red", "blue", "local").to_dict()) == Edit("color", "red", "blue", "local")


def test_sample_round_trip_through_a_tar(tmp_path):
    s = _sample()
    path = tmp_path / "00000.tar"
    with AtomicTarWriter(path) as w:
        w.write(s.to_wds())
    raw = next(iter(wds.WebDataset(str(path), shardshuffle=False)))
    back = Sample.from_wds(raw)
    assert back.key == s.key and back.caption == s.caption and back.image == s.image
    assert [c.meta() for c in back.cfs] == [c.meta() for c in s.cfs]
    assert [c.image for c in back.cfs] == [c.image for c in s.cfs]
    assert back.meta == s.meta


def test_shard_members_are_plain_ustar_headers_with_fixed_mtime(tmp_path):
    """One 512-byte ustar header per member (typeflag '0', magic 'ustar', mtime 0), no PAX
    extended header before it (typeflag 'x', which a float mtime makes tarfile write): readers
    parse half the headers. Read from the raw bytes as CPython's writer lays a header out
    (Lib/tarfile.py 3.11, TarInfo._create_header lines 1123-1136: name 0-100, mode, uid, gid,
    size 124-136 octal, mtime 136-148 octal, checksum, typeflag 156, linkname, magic 257-262; a
    float mtime is what sends it to a PAX header, _create_pax_header lines 1052-1058)."""
    path = tmp_path / "00000.tar"
    with AtomicTarWriter(path) as w:
        w.write(_sample().to_wds())
    raw, off, flags = path.read_bytes(), 0, []
    while raw[off:off + 512].strip(b"\0"):
        h = raw[off:off + 512]
        flags.append(h[156:157])
        assert h[257:262] == b"ustar" and int(h[136:148].strip(b"\0 ") or b"0", 8) == 0
        off += 512 + -(-int(h[124:136].strip(b"\0 "), 8) // 512) * 512
    assert flags and set(flags) == {b"0"}, flags
    assert len(flags) == len(_sample().to_wds()) - 1         # every entry but __key__ is one member


def test_plain_webdataset_reads_final_shards_as_pairs(tmp_path):
    path = tmp_path / "00000.tar"
    with AtomicTarWriter(path) as w:
        w.write(_sample().to_wds())
    pairs = list(wds.WebDataset(str(path), shardshuffle=False).decode("pil").to_tuple("jpg", "txt"))
    assert len(pairs) == 1 and pairs[0][1] == "a red circle" and pairs[0][0].size == (32, 32)
    full = next(iter(wds.WebDataset(str(path), shardshuffle=False).decode("pil")))
    assert full["cf0.txt"] == "a blue circle" and full["cf1.jpg"].size == (32, 32)
    assert full["json"]["cf"][0]["edit"] == {"type": "color", "from": "red", "to": "blue", "scope": "local"}


def test_rewrites_table_round_trip(tmp_path):
    a = Anchor(key="k1", caption="a red car", source_id="orig/1")
    b = Anchor(key="k2", caption="", source_id="orig/2")
    rows = [(a, Rewrite("k1", 0, "a blue car", "kept", edit=Edit("color", "red", "blue", "local")), "kept", ""),
            (a, Rewrite("k1", 1, "a red car", "rejected", "no_change"), "rejected", "no_change"),
            (b, None, "rejected", "empty_caption")]
    t = rewrites_to_table(rows)
    pq.write_table(t, tmp_path / "p.parquet")
    back = table_to_rewrites(pq.read_table(tmp_path / "p.parquet"))
    assert back["k2"] == []
    assert back["k1"][0].edit == Edit("color", "red", "blue", "local") and back["k1"][0].status == "kept"
    assert back["k1"][1].reason == "no_change" and back["k1"][1].edit is None


def test_outcomes_are_enum_members_stored_as_plain_words():
    import json
    from cfgen.captions.backends import Generation
    from cfgen.datamodel import Anchor, Rewrite, Status, rewrites_to_table, table_to_rewrites
    assert json.dumps({"s": Status.KEPT}) == '{"s": "kept"}' and f"{Status.FAILED}" == "failed"
    a = Anchor("k", "a red car")
    t = rewrites_to_table([(a, Rewrite("k", 0, "a blue car", Status.REJECTED, "multi_edit"), Status.REJECTED, "x")])
    assert t.column("status").to_pylist() == ["rejected"]
    assert table_to_rewrites(t)["k"][0].status is Status.REJECTED
    assert Generation.failed("http_503: busy").status is Status.FAILED
    assert Generation(error="unparseable").status is Status.REJECTED


def test_generated_sample_round_trips_through_its_tar_encoding():
    from cfgen.datamodel import Generated
    g = Generated("k1", "a red car", b"\xff\xd8anchor", "png", "src-1", {"row": {"a": 1}},
                  cf_images={0: b"img0", 3: b"img3"}, cf_ext="jpg")
    d = g.to_wds()
    assert set(d) == {"__key__", "png", "txt", "json", "cf0.jpg", "cf3.jpg"}
    assert Generated.from_wds(d, "jpg") == g
