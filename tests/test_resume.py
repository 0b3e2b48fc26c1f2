"""SIGKILL a shard-writing job mid-way, rerun it, and get exactly the uninterrupted output."""
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def kill_when(cmd: list[str], ready, timeout: float = 120.0) -> None:
    """Start cmd, SIGKILL it as soon as ready() is true (or it exits)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < timeout:
        if ready():
            os.kill(p.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    p.wait()


def test_world_sigkill_then_rerun_equals_uninterrupted(tmp_path):
    args = ["--n", "3000", "--n-test", "100", "--per-shard", "100", "--seed", "4"]
    cmd = [sys.executable, "-m", "cfgen.cli", "world", *args]
    subprocess.run(cmd + ["--out", str(tmp_path / "ref")], check=True, capture_output=True)
    out = tmp_path / "killed"
    for k in (3, 11, 19):      # kill at several moments
        kill_when(cmd + ["--out", str(out)],
                  lambda: len(list((out / "train").glob("*.tar"))) >= k if (out / "train").exists() else False)
    partial = list((out / "train").glob("*.tar"))
    assert 0 < len(partial) < 30, "the job was not interrupted mid-way"
    subprocess.run(cmd + ["--out", str(out)], check=True, capture_output=True)
    assert _digest(out) == _digest(tmp_path / "ref")
