"""SIGKILL a shard-writing job mid-way, rerun it, and get exactly the uninterrupted output."""
import subprocess
import sys

from tests.helpers import digest as _digest, kill_when


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
