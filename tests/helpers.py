"""Helpers shared by several test modules (tests never import each other's test modules):
picklable jobs for spawned worker processes, a SIGKILL driver, a directory digest, the tiny
training config, and a stand-in encoder with known scores."""
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cfgen.train.trainer import recipe_config

from cfgen.run import Ledger, UnitStats
from cfgen.io.writer import atomic_write_bytes


class SlowJob:
    """Writes `out/part-N.txt` after a pause; marks `started-N-<pid>` so a test can kill it mid-unit."""

    def __init__(self, run: str, pause: float = 0.5):
        self.run, self.pause = run, pause

    def setup(self, device):
        """No model to load."""

    def __call__(self, unit, device="cpu"):
        run = Path(self.run)
        (run / f"started-{unit.index}-{os.getpid()}").touch()
        time.sleep(self.pause)
        atomic_write_bytes(run / "out" / f"{unit.name}.txt", f"unit {unit.index}".encode())
        with open(run / "completions.log", "a") as f:
            f.write(f"{unit.index}\n")
        st = UnitStats(unit.index)
        st.add("kept")
        Ledger(run, "out").mark_done(unit, st)
        return st.to_dict()


class DieOnceJob(SlowJob):
    """Like SlowJob, but the process running unit `die_on` exits hard the first time."""

    def __init__(self, run: str, die_on: int, pause: float = 0.05):
        super().__init__(run, pause)
        self.die_on = die_on

    def __call__(self, unit, device="cpu"):
        marker = Path(self.run) / f"died-{unit.index}"
        if unit.index == self.die_on and not marker.exists():
            marker.touch()
            os._exit(137)
        return super().__call__(unit, device)


def digest(d: Path) -> dict[str, str]:
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


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_ranks(cmd: list[str], world: int) -> list[subprocess.Popen]:
    """Start `world` processes of cmd as torchrun does (RANK, WORLD_SIZE, MASTER_* in the
    environment; gloo on CPU). `accelerate launch --cpu --num_processes N` starts ONE process, so
    it proves nothing about N."""
    import sys
    port = free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                   LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, *cmd] if cmd[0] == "-m" else cmd, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def finish_ranks(procs: list[subprocess.Popen], timeout: float = 600) -> None:
    """Wait for every rank; a rank that failed fails the test with its stderr."""
    results = [p.communicate(timeout=timeout) for p in procs]
    for rank, (p, (_, err)) in enumerate(zip(procs, results)):
        assert p.returncode == 0, f"rank {rank}: {err[-3000:]}"


def recut_shards(final_dir: Path, dst: Path, sizes: list[int]) -> list[str]:
    """The final shards' samples re-cut into shards of the given sizes (in order)."""
    import webdataset as wds
    samples = list(wds.WebDataset(sorted(str(p) for p in Path(final_dir).glob("*.tar")), shardshuffle=False))
    assert sum(sizes) <= len(samples), (sizes, len(samples))
    dst.mkdir(parents=True)
    out, start = [], 0
    for i, n in enumerate(sizes):
        path = dst / f"part-{i:05d}.tar"
        with wds.TarWriter(str(path)) as w:
            for s in samples[start:start + n]:
                w.write({k: v for k, v in s.items() if k not in ("__url__", "__local_path__")})
        start += n
        out.append(str(path))
    return out


def train_cfg(world_final, world_clip, out, **kw):
    base = dict(shards=[str(world_final / "final")], model=str(world_clip), out=str(out), batch_size=32,
                micro_batch=32, lr=2e-3, warmup_steps=2, num_workers=0, log_every=1, save_every=0,
                shuffle_buffer=50, max_steps=30)
    base.update(kw)
    return recipe_config(kw.pop("recipe", "cf-vlm"), base)


def train_log(out):
    return [json.loads(x) for x in (Path(out) / "train_log.jsonl").read_text().splitlines()]


COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


class ColorEncoder:
    """A stand-in model with known scores: an image embeds as its dominant colour, a caption as
    the first colour word it names (none: the zero vector). S = dot product."""

    def _vec(self, name):
        v = torch.zeros(3)
        if name in COLORS:
            v[list(COLORS).index(name)] = 1.0
        return v

    def embed_images(self, imgs, batch_size=64):
        out = []
        for im in imgs:
            m = np.asarray(im).reshape(-1, 3).mean(0)
            out.append(self._vec(list(COLORS)[int(np.argmax(m))]))
        return torch.stack(out)

    def embed_texts(self, texts, batch_size=256):
        return torch.stack([self._vec(next((w for w in t.lower().split() if w in COLORS), "")) for t in texts])

    def score(self, images, texts):
        return self.embed_images(images) @ self.embed_texts(texts).T


def img(path: Path, color: str, size=(16, 12)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, COLORS[color]).save(path)
    return path.name
