"""Untrusted input (issue 17): each test reproduces one attack and asserts the safe behaviour."""
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from cfgen.captions.stage import CaptionsConfig, run_captions
from cfgen.errors import InputError
from cfgen.io.reader import InputConfig, expand_inputs, read_unit
from cfgen.run import plan_units
from tests.conftest import jpeg_bytes, write_tar
from tests.helpers import train_cfg as _cfg, train_log as _log


def _cli(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "cfgen.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


def _tar(path, n=5, caption=b"a red car on a road", start=0):
    members = []
    for i in range(start, start + n):
        members += [(f"{i:06d}.jpg", jpeg_bytes()), (f"{i:06d}.txt", caption)]
    return write_tar(path, members)


def _records(path, cfg=None):
    return list(read_unit(plan_units([str(path)], cfg)[0], cfg))


# ------------------------------------------------------------------------------ dangerous
def test_a_shard_name_in_a_directory_is_never_run_as_a_command(world_final, world_clip, tmp_path, monkeypatch):
    from cfgen.train.data import shard_urls
    from cfgen.train.trainer import train
    d = tmp_path / "shards"
    d.mkdir()
    for p in (world_final / "final").glob("*.tar"):
        shutil.copy(p, d / p.name)
    evil = d / "pipe:touch PWNED; cat part-00000.tar #.tar"
    shutil.copy(d / "part-00000.tar", evil)
    monkeypatch.chdir(d)                                     # `cfgen train --shards .` lists "pipe:touch ..."
    urls = shard_urls(["."])
    assert len(urls) == 4 and all(u.startswith("/") for u in urls)   # absolute local paths, never URLs
    assert shard_urls(["pipe:cat x.tar"]) == ["pipe:cat x.tar"]   # explicitly given on the command line
    train(_cfg(world_final, world_clip, tmp_path / "out", shards=["."], max_steps=3))
    train(_cfg(world_final, world_clip, tmp_path / "out2", shards=["*.tar"], max_steps=3))
    assert not list(Path.cwd().glob("PWNED")) and not list(d.glob("PWNED")) and not list(tmp_path.rglob("PWNED"))


def test_a_run_continued_from_another_directory_finds_its_inputs(tmp_path):
    _tar(tmp_path / "in" / "00000.tar")
    r = _cli("captions", "--input", "in", "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert all(os.path.isabs(u["path"]) for u in manifest["units"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = _cli("images", "--run", str(tmp_path / "run"), "--no-filter", cwd=elsewhere)
    stats = json.loads((tmp_path / "run" / "images" / "part-00000.stats.json").read_text())
    assert stats["in"] == 5                                   # read its inputs, not one "failed" record


def test_an_unreadable_input_fails_the_unit_and_a_rerun_recovers(tmp_path):
    _tar(tmp_path / "in" / "00000.tar")
    run_captions(CaptionsConfig(input=[str(tmp_path / "in")], out=str(tmp_path / "run")))
    (tmp_path / "in" / "00000.tar").rename(tmp_path / "away.tar")
    r = _cli("images", "--run", str(tmp_path / "run"), "--no-filter")
    assert r.returncode == 1 and "00000.tar" in r.stderr
    assert not (tmp_path / "run" / "images" / "part-00000.stats.json").exists()
    (tmp_path / "away.tar").rename(tmp_path / "in" / "00000.tar")
    r = _cli("images", "--run", str(tmp_path / "run"), "--no-filter")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "run" / "images" / "part-00000.stats.json").read_text())["in"] == 5


def test_a_run_directory_of_other_inputs_is_refused(tmp_path):
    _tar(tmp_path / "a" / "00000.tar")
    _tar(tmp_path / "b" / "00000.tar", caption=b"a blue boat on a lake")
    assert _cli("captions", "--input", str(tmp_path / "a"), "--out", str(tmp_path / "run")).returncode == 0
    r = _cli("captions", "--input", str(tmp_path / "b"), "--out", str(tmp_path / "run"))
    assert r.returncode == 1 and "other inputs" in r.stderr
    # the same path with other contents: refused at captions and at images
    _tar(tmp_path / "a" / "00000.tar", caption=b"a blue boat on a lake")
    r = _cli("captions", "--input", str(tmp_path / "a"), "--out", str(tmp_path / "run"))
    assert r.returncode == 1 and "other inputs" in r.stderr
    r = _cli("images", "--run", str(tmp_path / "run"), "--no-filter")
    assert r.returncode == 1 and "changed since" in r.stderr and "00000.tar" in r.stderr


def test_the_images_stage_checks_each_caption_against_its_anchor(tmp_path):
    from cfgen.images.stage import EditJob, ImagesConfig
    from cfgen.run import Manifest
    from cfgen.world.generate import WorldConfig, generate_world
    from cfgen.world import world_vocab
    generate_world(tmp_path / "w", WorldConfig(n=40, n_test=10, per_shard=40, seed=2))
    run = tmp_path / "run"
    run_captions(CaptionsConfig(input=[str(tmp_path / "w" / "train")], out=str(run), rules_vocab=world_vocab()))
    part = run / "captions" / "part-00000.parquet"
    t = pq.read_table(part).to_pandas()
    first = t["key"].iloc[0]
    t.loc[t["key"] == first, "caption"] = "two yellow squares"
    import pyarrow as pa
    pq.write_table(pa.Table.from_pandas(t, preserve_index=False), part)
    units = Manifest.read(run).units
    stats = EditJob(ImagesConfig(run=str(run), filter=False), InputConfig())(units[0])
    assert stats["failed"].get("caption_mismatch") == 1
    assert stats["in"] == 40 and stats["kept"] + sum(stats["rejected"].values()) + 1 == 40


def test_a_second_writer_of_a_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    from cfgen.run import run_lock
    _tar(tmp_path / "in" / "00000.tar")
    with run_lock(tmp_path / "run"):
        r = _cli("captions", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "run"))
    assert r.returncode == 1 and "another cfgen process" in r.stderr and str(os.getpid()) in r.stderr
    assert _cli("captions", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "run")).returncode == 0


# ------------------------------------------------------------------------------ hangs and resources
def test_an_epoch_without_a_full_step_is_an_error_not_a_loop(world_final, world_clip, tmp_path):
    from cfgen.train.trainer import train
    d = tmp_path / "shards"
    d.mkdir()
    (d / "empty.tar").write_bytes(b"")
    with pytest.raises(ValueError, match="no training step"):
        train(_cfg(world_final, world_clip, tmp_path / "a", shards=[str(d)], max_steps=5))
    small = tmp_path / "small"
    small.mkdir()
    shutil.copy(sorted((world_final / "final").glob("*.tar"))[0], small / "part.tar")
    with pytest.raises(ValueError, match="no training step"):
        train(_cfg(world_final, world_clip, tmp_path / "b", shards=[str(small)], batch_size=512,
                   micro_batch=512, max_steps=5))


def test_a_fifo_or_device_as_an_image_path_is_rejected_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    (tmp_path / "ok.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "t.csv").write_text(f"image,caption\n{fifo},a red car\n/dev/zero,a blue car\nok.jpg,a green car\n")
    t0 = time.time()
    recs = _records(tmp_path / "t.csv")
    assert time.time() - t0 < 10
    assert [r.reason for r in recs] == ["not_a_regular_file", "not_a_regular_file", ""]
    with pytest.raises(InputError, match="not a regular file"):
        expand_inputs(str(fifo))


def test_decompression_bombs_are_rejected_by_pixel_count(tmp_path):
    buf = io.BytesIO()
    Image.new("L", (12_500, 12_500)).save(buf, format="PNG", optimize=True)
    assert len(buf.getvalue()) < 2_000_000
    write_tar(tmp_path / "a.tar", [("big.png", buf.getvalue()), ("big.txt", b"a black square"),
                                   ("ok.jpg", jpeg_bytes()), ("ok.txt", b"a red square")])
    recs = _records(tmp_path / "a.tar")
    assert [r.reason for r in recs] == ["image_too_large", ""]
    from cfgen.io.images import decode_rgb
    with pytest.raises(ValueError, match="image_too_large"):
        decode_rgb(buf.getvalue())


def test_the_scene_editor_trusts_the_image_not_its_metadata(tmp_path):
    from cfgen.datamodel import Anchor, Edit, Rewrite
    from cfgen.images.editors import SceneEditor
    from cfgen.world.scene import Obj, Scene
    scene = Scene([Obj("square", "red", "large", 0.3, 0.5), Obj("ring", "blue", "large", 0.7, 0.5)],
                  rel="to the left of")
    a = Anchor("k", "a red square to the left of a blue ring", jpeg_bytes(size=64),
               meta={"scene": scene.to_dict(), "world": {"image_size": 16000}})
    rw = Rewrite("k", 0, "a green square to the left of a blue ring", "kept", edit=Edit("color", "red", "green", "local"))
    out = SceneEditor().edit(a, [rw], [0])
    assert out[0].status == "rejected" and out[0].reason == "image_size_mismatch"


@pytest.mark.slow
def test_workers_exit_when_their_coordinator_is_killed(tmp_path):
    script = tmp_path / "coord.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(Path(__file__).parents[1])!r})
from cfgen.run.distribute import distribute_local
from cfgen.run import Unit
from tests.helpers import SlowJob
if __name__ == "__main__":
    distribute_local(SlowJob({str(tmp_path)!r}, pause=60), [Unit(i, "x", "wds") for i in range(4)], workers=2)
""")
    coord = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(list(tmp_path.glob("started-*"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    pids = [int(p.name.split("-")[-1]) for p in tmp_path.glob("started-*")]
    assert len(pids) == 2
    os.kill(coord.pid, signal.SIGKILL)
    coord.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:                                      # a zombie (exited, not yet reaped by init) is gone too
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------------------------ wrong but quiet
def test_a_damaged_output_is_noticed_and_its_unit_redone(tmp_path):
    _tar(tmp_path / "in" / "00000.tar")
    _tar(tmp_path / "in" / "00001.tar", start=100)
    cfg = CaptionsConfig(input=[str(tmp_path / "in")], out=str(tmp_path / "run"))
    run_captions(cfg)
    part = tmp_path / "run" / "captions" / "part-00001.parquet"
    ref = part.read_bytes()
    part.write_bytes(ref[: len(ref) // 2])                    # truncated
    (tmp_path / "run" / "captions" / "part-00000.parquet").unlink()  # deleted
    s = run_captions(cfg)
    assert s["units_done"] == 2 and s["in"] == 10 and part.read_bytes() == ref


def test_every_tar_member_is_accounted_for(tmp_path):
    p = write_tar(tmp_path / "a.tar", [
        (".hidden.jpg", jpeg_bytes()), ("noext", b"x"),
        ("a.jpg", jpeg_bytes()), ("a.txt", b"a red car"), ("a.txt", b"a blue car"),     # duplicate member
        ("b.jpg", jpeg_bytes()), ("b.txt", b"a green car")])
    recs = _records(p)
    assert sorted(r.reason for r in recs) == ["", "duplicate_member", "unrecognised_member_name",
                                             "unrecognised_member_name"]
    (tmp_path / "d").mkdir()
    shutil.copy(p, tmp_path / "d" / "a.tar")
    (tmp_path / "d" / "b.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(InputError, match="b.tar.gz"):
        expand_inputs(str(tmp_path / "d"))


@pytest.mark.parametrize("content,expect", [
    (b"", "empty table"),
    (b"image,caption\nok.jpg,a red car\nok.jpg,a \xff car\n", "line 3"),
    (b"image,caption\nok.jpg,a red car\nok.jpg,a,b,c\n", "line 3"),
])
def test_a_bad_table_is_its_own_failed_unit_and_good_inputs_proceed(tmp_path, content, expect):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ok.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "in" / "bad.csv").write_bytes(content)
    (tmp_path / "in" / "good.csv").write_text("image,caption\nok.jpg,a red car\nok.jpg,a blue car\n")
    r = _cli("captions", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "run"))
    assert r.returncode == 1 and "bad.csv" in r.stderr and expect in r.stderr, r.stderr
    assert json.loads((tmp_path / "run" / "captions" / "part-00001.stats.json").read_text())["in"] == 2


def test_a_table_without_the_columns_is_refused_at_planning(tmp_path):
    (tmp_path / "t.csv").write_text("url,text\nx.jpg,a red car\n")
    r = _cli("captions", "--input", str(tmp_path / "t.csv"), "--out", str(tmp_path / "run"))
    assert r.returncode == 1 and "'image'" in r.stderr and "url, text" in r.stderr
    assert not (tmp_path / "run" / "manifest.json").exists()


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_anchors_are_normalised_to_upright_rgb_in_their_declared_format(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    rgb = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6                               # rotate 90 degrees on display
    write_tar(tmp_path / "a.tar", [
        ("cmyk.jpg", _encoded(rgb.convert("CMYK"), "JPEG")), ("cmyk.txt", b"a red car"),
        ("tiff.jpg", _encoded(rgb, "TIFF")), ("tiff.txt", b"a red car"),
        ("png.jpg", _encoded(rgb, "PNG")), ("png.txt", b"a red car"),
        ("rot.jpg", _encoded(rgb, "JPEG", exif=exif)), ("rot.txt", b"a red car"),
        ("clean.jpg", _encoded(rgb, "JPEG")), ("clean.txt", b"a red car")])
    recs = {r.source_id: r.anchor for r in _records(tmp_path / "a.tar")}
    for key, a in recs.items():
        with Image.open(io.BytesIO(a.image)) as im:
            assert im.format == "JPEG" and im.mode == "RGB", key
            assert im.size == ((20, 40) if key == "rot" else (40, 20)), key
            assert im.getexif().get(0x0112, 1) == 1
    assert recs["clean"].image == _encoded(rgb, "JPEG")            # a clean image is passed through unchanged


def test_control_and_format_characters_are_stripped_and_counted(tmp_path):
    write_tar(tmp_path / "in" / "a.tar", [
        ("a.jpg", jpeg_bytes()), ("a.txt", "a red\x00 car\x1b[31m on a\u202e road\u200b".encode()),
        ("b.jpg", jpeg_bytes()), ("b.txt", b"a blue car")])
    recs = _records(tmp_path / "in" / "a.tar")
    assert recs[0].anchor.caption == "a red car[31m on a road"
    assert recs[0].extra == {"caption_cleaned": True} and recs[1].extra == {}
    s = run_captions(CaptionsConfig(input=[str(tmp_path / "in")], out=str(tmp_path / "run")))
    assert s["extra"]["captions_cleaned"] == 1


def test_resume_falls_back_past_a_truncated_checkpoint_and_a_torn_log_line(world_final, world_clip, tmp_path):
    from cfgen.train.trainer import train
    out = tmp_path / "ft"
    train(_cfg(world_final, world_clip, out, max_steps=6, save_every=2))
    w = out / "checkpoints" / "step-0000006" / "model" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with open(out / "train_log.jsonl", "a") as f:
        f.write('{"step": 7, "loss"')
    r = train(_cfg(world_final, world_clip, out, max_steps=8, save_every=2, resume=True))
    assert r["step"] == 8
    steps = [x["step"] for x in _log(out)]
    assert steps == list(range(1, 9))                        # resumed from step 4: lines 5-6 rewritten, torn one gone


@contextlib.contextmanager
def _read_only(folder: Path):
    """A folder nobody can write, root included: root ignores permission bits, so as root the
    folder is bind-mounted read-only on itself (a read-only file system refuses root too)."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        return
    r = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"root without a read-only bind mount here: {r.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_out_that_is_a_file_and_a_read_only_run_give_one_line_errors(tmp_path):
    _tar(tmp_path / "in" / "00000.tar")
    (tmp_path / "file").write_text("x")
    r = _cli("captions", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "file"))
    assert r.returncode == 1 and "is a file" in r.stderr and "Traceback" not in r.stderr
    r = _cli("captions", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "file" / "run"))
    assert r.returncode == 1 and "file" in r.stderr and "Traceback" not in r.stderr    # a file where a folder goes
    with _read_only(tmp_path / "ro") as ro:
        r = _cli("captions", "--input", str(tmp_path / "in"), "--out", str(ro / "run"))
        assert r.returncode == 1 and "ro" in r.stderr and "Traceback" not in r.stderr
        assert not (ro / "run").exists()


def test_a_full_disk_in_the_images_stage_fails_the_unit_with_non_zero_exit(world_final, tmp_path, monkeypatch):
    import errno
    import cfgen.images.stage as st
    from click.testing import CliRunner
    from cfgen.cli import main
    run = tmp_path / "run"
    shutil.copytree(world_final, run, ignore=shutil.ignore_patterns("images", "final"))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(run / "images" / "part-00001.parquet"))
    real = st.atomic_write_parquet
    monkeypatch.setattr(st, "atomic_write_parquet", lambda p, t: full() if "part-00001" in str(p) else real(p, t))
    r = CliRunner().invoke(main, ["images", "--run", str(run), "--no-filter", "--workers", "1"])
    assert r.exit_code == 1 and "images/part-00001" in r.output and "No space left" in r.output


def test_a_corrupt_counterfactual_in_inspect_names_the_shard(world_final, tmp_path):
    import tarfile
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    src = sorted((world_final / "final").glob("*.tar"))[0]
    with tarfile.open(src) as tin, tarfile.open(run / "final" / "part-00000.tar", "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            if m.name.endswith("cf0.jpg"):
                data = b"\xff\xd8 broken"
            m.size = len(data)
            tout.addfile(m, io.BytesIO(data))
    r = _cli("inspect", str(run), "--out", str(tmp_path / "s.png"))
    assert r.returncode == 1 and "part-00000.tar" in r.stderr and "corrupt" in r.stderr
    assert "Traceback" not in r.stderr
