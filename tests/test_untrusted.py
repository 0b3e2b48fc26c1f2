"""Untrusted model folders, run folders and training inputs (issue #25): no code runs from a model
folder, nothing is written or deleted through a symlink, two trainings never share an --out, a
resume with other settings is refused, huge images never reach a batch, every skip is counted."""
from __future__ import annotations

import io
import os
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import train_cfg


# ------------------------------------------------------------------------------ item 1
@pytest.mark.parametrize("file", ["config.json", "processor_config.json"])
def test_a_model_folder_with_auto_map_is_refused_without_a_prompt(world_clip, tmp_path, file):
    """transformers asks "Do you wish to run the custom code? [y/N]" when a folder's config has
    `auto_map` and trust_remote_code is not given (transformers dynamic_module_utils.py,
    resolve_trust_remote_code). cfgen must refuse in one line and never prompt, even with a `y`
    waiting on stdin."""
    evil = tmp_path / "evil"
    shutil.copytree(world_clip, evil)
    (evil / "payload.py").write_text("open(__file__ + '.RAN', 'w').write('x')\nfrom transformers import CLIPConfig as C\n")
    cfg = json.loads((evil / file).read_text())
    cfg["auto_map"] = {"AutoConfig": "payload.C", "AutoProcessor": "payload.C"}
    (evil / file).write_text(json.dumps(cfg))
    r = subprocess.run([sys.executable, "-m", "cfgen.cli", "eval", "--model", str(evil), "--bench",
                        f"world={tmp_path}", "--out", str(tmp_path / "o")], input="y\ny\n", capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0
    assert "auto_map" in r.stderr + r.stdout and str(evil) in r.stderr + r.stdout
    assert "Traceback" not in r.stderr and "[y/N]" not in r.stdout + r.stderr
    assert not (evil / "payload.py.RAN").exists()


def test_every_transformers_load_in_the_package_passes_trust_remote_code_false():
    """A static check, so a new loader cannot forget it: every `.from_pretrained(` call on a
    transformers class in cfgen/ names trust_remote_code=False (diffusers pipelines have no
    prompt: custom pipelines load only with `custom_pipeline=`)."""
    import re
    root = Path(__file__).resolve().parents[1] / "cfgen"
    missing = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"(\w+)\.from_pretrained\(", text):
            cls = m.group(1)
            if cls in ("cls", "QwenVLInputs") or "Pipeline" in cls or cls in ("AutoencoderKL",):
                continue
            depth, i = 1, m.end()
            while depth and i < len(text):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            if "trust_remote_code=False" not in text[m.end():i]:
                missing.append(f"{path.relative_to(root)}: {cls}.from_pretrained")
    assert not missing, missing


# ------------------------------------------------------------------------------ items 4, 5
def test_a_stage_folder_that_is_a_symlink_is_refused_and_nothing_outside_is_deleted(world_final, tmp_path):
    from cfgen.run import Ledger
    from cfgen.io.writer import SymlinkRefused
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.tmp1").write_text("mine")
    (elsewhere / "x.tar.tmp123").write_text("mine too")
    run = tmp_path / "run"
    run.mkdir()
    (run / "final").symlink_to(elsewhere)
    with pytest.raises(SymlinkRefused, match="symlink"):
        Ledger(run, "final")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["notes.tmp1", "x.tar.tmp123"]


def test_stale_temp_cleanup_removes_only_the_writers_own_names(tmp_path):
    from cfgen.io.writer import remove_stale_tmp
    d = tmp_path / "stage"
    (d / "sub").mkdir(parents=True)
    for name in ("part-00000.tar.tmp4242", "part-00001.parquet.tmp7", "user.tmp", "draft.tmpl", "a.tmp12x",
                 "sub/part-00002.tar.tmp9"):
        (d / name).write_text("x")
    assert remove_stale_tmp(d) == 2
    assert sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()) == \
        ["a.tmp12x", "draft.tmpl", "sub/part-00002.tar.tmp9", "user.tmp"]


@pytest.mark.parametrize("name", ["train_log.jsonl", "train_config.json"])
def test_training_never_writes_through_a_symlinked_log_or_config(world_final, world_clip, tmp_path, name):
    from cfgen.io.writer import append_line
    from cfgen.train.trainer import train
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(target)
    with pytest.raises(ValueError, match="symlink"):
        train(train_cfg(world_final, world_clip, out, max_steps=2))
    with pytest.raises(OSError):                       # the log's appends: O_NOFOLLOW
        append_line(out / name, "{}")
    assert target.read_text() == "precious\n"


# ------------------------------------------------------------------------------ item 7
def test_two_trainings_into_one_out_the_second_is_refused(world_final, world_clip, tmp_path):
    from cfgen.run import run_lock
    from cfgen.errors import InputError
    from cfgen.train.trainer import train
    out = tmp_path / "out"
    with run_lock(out):                       # another cfgen process holds --out
        with pytest.raises(InputError, match="being written by another cfgen process"):
            train(train_cfg(world_final, world_clip, out, max_steps=2))
    assert not (out / "train_log.jsonl").exists()


def test_a_resume_with_another_recipe_or_data_is_refused_naming_what_differs(world_final, world_clip, tmp_path):
    from cfgen.train.trainer import train
    out = tmp_path / "out"
    train(train_cfg(world_final, world_clip, out, max_steps=2, save_every=2))
    with pytest.raises(ValueError, match=r"beta 0\.45 -> 0\.9"):
        train(train_cfg(world_final, world_clip, out, max_steps=4, save_every=2, resume=True, beta=0.9))
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(sorted((world_final / "final").glob("*.tar"))[0], one)
    with pytest.raises(ValueError, match=r"shards \(3 -> 1 files\)"):
        train(train_cfg(world_final, world_clip, out, max_steps=2, save_every=2, resume=True, shards=[str(one)]))
    # what does not change the computation may differ
    assert train(train_cfg(world_final, world_clip, out, max_steps=2, save_every=2, resume=True, log_every=5))["step"] == 2


# ------------------------------------------------------------------------------ item 14
def test_a_huge_training_image_is_brought_to_training_resolution_as_it_is_decoded():
    from cfgen.io.images import decode_rgb
    buf = io.BytesIO()
    Image.new("RGB", (4000, 3000), (200, 10, 10)).save(buf, format="JPEG")
    im = decode_rgb(buf.getvalue(), short_side=224)
    assert im.size == (299, 224)                       # 4000 x 224/3000 = 298.7 -> 299
    buf = io.BytesIO()
    Image.new("RGB", (100, 80)).save(buf, format="PNG")
    assert decode_rgb(buf.getvalue(), short_side=224).size == (100, 80)      # smaller: untouched


def test_the_training_loader_decodes_to_the_processors_short_side(world_final, world_clip):
    from cfgen.train.data import Decoder, make_loader
    from cfgen.train.model import DualEncoder
    enc = DualEncoder.load(world_clip)
    assert enc.pre.short_side == 32
    seen = []
    real = Decoder.__call__

    def spy(self, s):
        ex = real(self, s)
        seen.append(ex["image"].size)
        return ex
    Decoder.__call__ = spy
    try:
        next(iter(make_loader([str(sorted((world_final / "final").glob("*.tar"))[0])], enc.pre, k=1,
                              micro_batch=2, shuffle_buffer=1)))
    finally:
        Decoder.__call__ = real
    assert seen and all(min(s) == 32 for s in seen), seen         # the world's images are 64 px


# ------------------------------------------------------------------------------ item 16
def test_skipped_corrupt_is_counted_with_dataloader_workers(world_final, world_clip, tmp_path):
    """Each of 4 shards starts with a sample whose image is corrupt; 2 DataLoader workers each read
    2 shards in order (no shuffle), so each worker skips its first shard's sample before its
    first batch: at least 2 skips reach the main process (it saw 0 before batches carried them)."""
    import webdataset as wds
    from cfgen.train.trainer import train
    samples = list(wds.WebDataset(sorted(str(p) for p in (world_final / "final").glob("*.tar")), shardshuffle=False))
    d = tmp_path / "shards"
    d.mkdir()
    for i in range(4):
        with wds.TarWriter(str(d / f"part-{i:05d}.tar")) as w:
            for j, s in enumerate(samples[i * 60:(i + 1) * 60]):
                s = {k: v for k, v in s.items() if k not in ("__url__", "__local_path__")}
                w.write({**s, "jpg": b"not an image"} if j == 0 else s)
    r = train(train_cfg(world_final, world_clip, tmp_path / "c", shards=[str(d)], max_steps=4, num_workers=2,
                        batch_size=16, micro_batch=16, shuffle_buffer=1))
    assert r["skipped_corrupt"] >= 2


# ------------------------------------------------------------------------------ item 20
def test_a_run_folder_trains_on_final_only_and_a_world_test_split_is_refused(world_final, small_world):
    from cfgen.train.data import shard_urls
    urls = shard_urls([str(world_final)])
    assert urls and all(Path(u).parent == world_final / "final" for u in urls)
    with pytest.raises(ValueError, match="held-out test split"):
        shard_urls([str(small_world)])
    with pytest.raises(ValueError, match="held-out test split"):
        shard_urls([str(small_world / "test")])
    assert shard_urls([str(small_world / "train")])


# ------------------------------------------------------------------------------ item 11 (inputs)
def test_oversized_captions_and_members_are_rejected_before_they_are_decoded(tmp_path, monkeypatch):
    """A 50 MB caption is refused by its byte length (UTF-8: at most 4 bytes a character), never
    decoded or cleaned; a text member over 1 MB is never even read; the sample still counts."""
    from cfgen.io import reader
    from cfgen.io.reader import read_unit
    from cfgen.run import plan_units
    from tests.conftest import jpeg_bytes, write_tar
    cleaned = []
    monkeypatch.setattr(reader, "clean_text", lambda t: cleaned.append(len(t)) or (t, False))
    path = write_tar(tmp_path / "00000.tar", [
        ("a.jpg", jpeg_bytes()), ("a.txt", b"x" * 8_001),             # 4 x 2,000 chars + 1 byte
        ("b.jpg", jpeg_bytes()), ("b.txt", b"y" * 2_000_000),
        ("c.jpg", jpeg_bytes()), ("c.txt", b"a red car")])
    recs = {r.source_id: r.reason for r in read_unit(plan_units([str(path)])[0])}
    assert recs == {"a": "caption_too_long", "b": "member_too_large", "c": ""}
    assert cleaned == [9]                                # only the good caption was cleaned


def test_a_csv_or_parquet_with_too_many_columns_is_refused_before_parsing(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from cfgen.errors import InputError
    from cfgen.io.reader import MAX_COLUMNS, read_unit
    from cfgen.run import plan_units
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(MAX_COLUMNS + 1)) + "\n" + ",".join("1" * (MAX_COLUMNS + 1)) + "\n")
    pq.write_table(pa.table({f"c{i}": [1] for i in range(MAX_COLUMNS + 1)}), tmp_path / "wide.parquet")
    for path in (wide, tmp_path / "wide.parquet"):       # a bad table fails its own unit, naming why
        (unit,) = plan_units([str(path)])
        with pytest.raises(InputError, match=f"{MAX_COLUMNS + 1} columns"):
            list(read_unit(unit))


def test_an_input_fingerprint_never_opens_a_fifo(tmp_path):
    """A run's manifest can name any path (a shared run folder); fingerprinting a FIFO would block."""
    from cfgen.errors import InputError
    from cfgen.run.manifest import fingerprint
    import signal
    fifo = tmp_path / "in.tar"
    os.mkfifo(fifo)
    signal.alarm(10)                                   # a regression fails here instead of hanging the suite
    try:
        with pytest.raises(InputError, match="not a regular file"):
            fingerprint(str(fifo))
    finally:
        signal.alarm(0)


def test_a_full_disk_while_saving_a_checkpoint_is_one_line(world_final, world_clip, tmp_path, monkeypatch):
    """ENOSPC in the middle of a checkpoint: one line naming the problem, exit 1, no traceback;
    the half-written checkpoint stays a .tmp folder that a resume never takes."""
    import errno
    from click.testing import CliRunner
    from cfgen.cli import main
    from cfgen.train import checkpoint as ck

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(ck, "save_checkpoint", full)
    monkeypatch.setattr("cfgen.train.trainer.save_checkpoint", full)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["train", "--shards", str(world_final / "final"), "--model", str(world_clip),
                                  "--out", str(out), "--max-steps", "2", "--save-every", "1", "--batch-size", "16",
                                  "--micro-batch", "16", "--num-workers", "0"])
    assert r.exit_code == 1 and "No space left on device" in r.output
    assert "Traceback" not in r.output and r.output.count("Error") == 1      # progress bars aside: one line
    assert not [p for p in (out / "checkpoints").glob("step-*") if not p.name.endswith(".tmp")]
