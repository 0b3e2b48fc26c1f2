"""An img2dataset output folder, laid out as img2dataset's own writer lays it out, is a valid
input (issue #24 item 1), and every sample of its tars is accounted for.

Upstream: rom1504/img2dataset @ 95523bc7579745a1749b8132d408b9fea89a338e
- img2dataset/writer.py:107-115  WebDatasetSampleWriter: `{shard:05d}.tar` through webdataset's
  TarWriter, and `{shard:05d}.parquet` (BufferedParquetWriter) in the same folder;
- img2dataset/writer.py:118-130  each successful sample: `__key__`, `jpg`, `txt`, `json`
  (json.dumps(meta, indent=4)); EVERY sample, failed downloads included, is a parquet row;
- img2dataset/downloader.py:88-93  keys: 10**oom_sample_per_shard * shard_id + index, zero-padded
  to oom_sample_per_shard + oom_shard_count digits;
- img2dataset/downloader.py:168-176  parquet columns: the input columns + key, status,
  error_message, width, height, original_width, original_height;
- img2dataset/logger.py:162-191  write_stats: `{shard:05d}_stats.json` with count, successes, ...
"""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from click.testing import CliRunner

from cfgen.cli import main
from cfgen.errors import InputError
from cfgen.io.reader import expand_inputs
from tests.conftest import jpeg_bytes

CAPTIONS = ["a red car parked on a street", "a brown dog lying on the grass", "a man riding a horse",
            "two cats sleeping on a sofa", "a blue boat on a lake"]


def _key(shard: int, index: int, oom_sample_per_shard: int = 4, oom_shard_count: int = 5) -> str:
    # downloader.py:88-93 (compute_key)
    return f"{10 ** oom_sample_per_shard * shard + index:0{oom_sample_per_shard + oom_shard_count}d}"


def write_img2dataset_folder(out, shards: int = 2, per_shard: int = 5, failed_every: int = 3) -> int:
    """Write what `img2dataset --output_format webdataset` leaves in its output folder; returns
    the number of samples in the tars (the successes)."""
    out.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("url", pa.string()), ("caption", pa.string()), ("key", pa.string()),
                        ("status", pa.string()), ("error_message", pa.string()), ("width", pa.int32()),
                        ("height", pa.int32()), ("original_width", pa.int32()), ("original_height", pa.int32())])
    successes_total = 0
    for shard in range(shards):
        name = f"{shard:05d}"
        rows = []
        successes = 0
        with open(out / f"{name}.tar", "wb") as fd:
            tw = wds.TarWriter(fd)
            for i in range(per_shard):
                key = _key(shard, i)
                ok = i % failed_every != failed_every - 1
                meta = {"url": f"http://example.com/{key}.jpg", "caption": CAPTIONS[i % len(CAPTIONS)], "key": key,
                        "status": "success" if ok else "failed_to_download",
                        "error_message": None if ok else "HTTP Error 404: Not Found",
                        "width": 32 if ok else None, "height": 32 if ok else None,
                        "original_width": 64 if ok else None, "original_height": 64 if ok else None}
                if ok:
                    tw.write({"__key__": key, "jpg": jpeg_bytes(size=32), "txt": meta["caption"],
                              "json": json.dumps(meta, indent=4)})
                    successes += 1
                rows.append(meta)
            tw.close()
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / f"{name}.parquet")
        (out / f"{name}_stats.json").write_text(json.dumps(
            {"count": per_shard, "successes": successes, "failed_to_download": per_shard - successes,
             "failed_to_resize": 0, "duration": 1.0, "start_time": 0.0, "end_time": 1.0,
             "status_dict": {"success": successes, "HTTP Error 404: Not Found": per_shard - successes}}, indent=4))
        successes_total += successes
    return successes_total


def test_img2dataset_folder_reads_the_tars_and_ignores_side_files(tmp_path):
    folder = tmp_path / "cc3m"
    write_img2dataset_folder(folder)
    assert sorted(p.rsplit("/", 1)[1] for p in expand_inputs(str(folder))) == ["00000.tar", "00001.tar"]
    assert sorted(p.rsplit("/", 1)[1] for p in expand_inputs(str(folder / "*"))) == ["00000.tar", "00001.tar"]


def test_captions_on_an_img2dataset_folder_accounts_for_every_sample(tmp_path):
    folder = tmp_path / "cc3m"
    n = write_img2dataset_folder(folder)
    assert n == 8      # 2 shards x 5 URLs, every third one failed to download: 4 + 4 in the tars
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["captions", "--input", str(folder), "--out", str(run), "--k", "2"])
    assert r.exit_code == 0, r.output
    stats = [json.loads(p.read_text()) for p in sorted((run / "captions").glob("part-*.stats.json"))]
    assert len(stats) == 2
    assert sum(s["in"] for s in stats) == n
    assert all(s["in"] == s["kept"] + sum(s["rejected"].values()) + sum(s["failed"].values()) for s in stats)
    keys = set(pq.read_table(run / "captions" / "part-00000.parquet").column("key").to_pylist())
    assert {_key(0, i) for i in (0, 1, 3, 4)} <= keys


def test_a_folder_mixing_shards_and_other_tables_is_refused(tmp_path):
    folder = tmp_path / "mixed"
    write_img2dataset_folder(folder, shards=1)
    (folder / "extra.csv").write_text("image,caption\nx.jpg,a cat\n")
    with pytest.raises(InputError, match="mixes WebDataset shards"):
        expand_inputs(str(folder))
    r = CliRunner().invoke(main, ["captions", "--input", str(folder), "--out", str(tmp_path / "run")])
    assert r.exit_code != 0 and "mixes WebDataset shards" in r.output and "Traceback" not in r.output
