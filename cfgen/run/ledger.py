"""The run ledger: which units of a stage are done, with their stats.

A unit is done when its stats file exists and the files it records are intact; the stats file
is written (atomically) only after all of the unit's outputs have been renamed into place, with
the size and sha256 of each output and of each input it was made from, so a killed run leaves
the unit unfinished, and a deleted, truncated or replaced file makes a rerun redo the unit.
Units that failed every retry are listed in `failed.json` with their error and are retried on
the next run. One stage at a time writes a run directory (`run_lock`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..datamodel import FAILED, KEPT, REJECTED, Status
from ..errors import InputError
from ..io.writer import atomic_write_json, refuse_symlink, remove_stale_tmp
from .manifest import Unit

log = logging.getLogger("cfgen")
FILES_KEY = "files"          # stats entry: {"outputs": {path: [size, sha256]}, "inputs": {...}}


def file_digest(path: str | os.PathLike) -> list[Any]:
    """[size, sha256] of a file."""
    with open(path, "rb") as f:
        return _digest_open(f)


def _digest_open(f: Any) -> list[Any]:
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return [os.fstat(f.fileno()).st_size, h.hexdigest()]


@dataclass
class UnitStats:
    """Per-unit accounting: every input sample is kept, rejected (reason) or failed (reason)."""

    unit: int
    n_in: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, status: Status, reason: str = "") -> None:
        self.n_in += 1
        if status == KEPT:
            self.kept += 1
        elif status == REJECTED:
            self.rejected[reason or "unspecified"] += 1
        elif status == FAILED:
            self.failed[reason or "unspecified"] += 1
        else:
            raise ValueError(f"unknown status {status!r}")

    def balanced(self) -> bool:
        return self.n_in == self.kept + sum(self.rejected.values()) + sum(self.failed.values())

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "in": self.n_in, "kept": self.kept,
                "rejected": dict(sorted(self.rejected.items())),
                "failed": dict(sorted(self.failed.items())), **self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UnitStats":
        known = {"unit", "in", "kept", "rejected", "failed"}
        return cls(unit=d["unit"], n_in=d["in"], kept=d["kept"], rejected=Counter(d["rejected"]),
                   failed=Counter(d["failed"]), extra={k: v for k, v in d.items() if k not in known})


class Ledger:
    """Done-markers and stats of one stage of a run directory."""

    def __init__(self, run_dir: str | os.PathLike, stage: str):
        self.run_dir = Path(run_dir)
        self.stage = stage
        self.dir = self.run_dir / stage
        refuse_symlink(self.dir)               # never follow a stage folder out of the run
        self.dir.mkdir(parents=True, exist_ok=True)
        self._digests: dict[tuple[str, int, int], list[Any]] = {}

    def stats_path(self, unit: Unit) -> Path:
        return self.dir / f"{unit.name}.stats.json"

    def is_done(self, unit: Unit) -> bool:
        """Stats present and every recorded output and input file unchanged; otherwise the stale
        stats are removed so the unit is redone."""
        path = self.stats_path(unit)
        if not path.exists():
            return False
        try:
            files = json.loads(path.read_text()).get(FILES_KEY, {})
            bad = next((f for group in ("outputs", "inputs") for f, want in files.get(group, {}).items()
                        if self._digest(self.run_dir / f) != want), None)
        except (OSError, ValueError) as e:
            bad = f"{path.name} ({type(e).__name__})"
        if bad is None:
            return True
        log.warning("%s/%s: %s is missing or changed since the unit was done; redoing the unit",
                    self.stage, unit.name, bad)
        path.unlink(missing_ok=True)
        return False

    def _digest(self, path: Path) -> list[Any] | None:
        """[size, sha256] of a file the stats record, or None unless it is a regular file inside
        the run directory (a shared run's stats may name ../../dev/zero or a FIFO: never read)."""
        try:
            if not path.resolve().is_relative_to(self.run_dir.resolve()):
                return None
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return None
        with open(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            key = (str(path), st.st_size, st.st_mtime_ns)
            if key not in self._digests:
                self._digests[key] = _digest_open(f)
            return self._digests[key]

    def pending(self, units: Iterable[Unit]) -> list[Unit]:
        return [u for u in units if not self.is_done(u)]

    def mark_done(self, unit: Unit, stats: UnitStats, outputs: Iterable[Path] = (),
                  inputs: Iterable[Path] = ()) -> None:
        """Record the unit as done, with the digest of each output and input file (paths inside
        the run directory)."""
        if not stats.balanced():
            raise AssertionError(f"{unit.name}: counts do not add up: {stats.to_dict()}")
        rel = lambda p: str(Path(p).resolve().relative_to(self.run_dir.resolve()))  # noqa: E731
        stats.extra[FILES_KEY] = {"outputs": {rel(p): file_digest(p) for p in outputs},
                                  "inputs": {rel(p): file_digest(p) for p in inputs}}
        atomic_write_json(self.stats_path(unit), stats.to_dict())

    def clean(self) -> int:
        """Remove temp files of killed writers; call before workers start."""
        return remove_stale_tmp(self.dir)

    def record_failures(self, failures: dict[int, str]) -> None:
        path = self.dir / "failed.json"
        if failures:
            atomic_write_json(path, {f"part-{k:05d}": v for k, v in sorted(failures.items())})
        elif path.exists():
            path.unlink()

    def failures(self) -> dict[str, str]:
        path = self.dir / "failed.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def all_stats(self) -> list[UnitStats]:
        return [UnitStats.from_dict(json.loads(p.read_text()))
                for p in sorted(self.dir.glob("part-*.stats.json"))]

    def summary(self) -> dict[str, Any]:
        """Totals over finished units (plus numeric extras summed)."""
        tot: dict[str, Any] = {"units_done": 0, "in": 0, "kept": 0, "rejected": Counter(),
                               "failed": Counter()}
        sums: Counter = Counter()
        for s in self.all_stats():
            s.extra.pop(FILES_KEY, None)
            tot["units_done"] += 1
            tot["in"] += s.n_in
            tot["kept"] += s.kept
            tot["rejected"].update(s.rejected)
            tot["failed"].update(s.failed)
            for k, v in s.extra.items():
                if "_per_" in k:
                    continue          # rates do not add up across units
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    sums[k] += v
                elif isinstance(v, dict) and all(isinstance(x, (int, float)) for x in v.values()):
                    sums.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        tot["rejected"] = dict(tot["rejected"])
        tot["failed"] = dict(tot["failed"])
        tot["extra"] = dict(sums)
        tot["units_failed"] = self.failures()
        return tot


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the run directory's lock while a stage writes it; a second writer gets one clear line.
    (flock: released by the kernel if the holder dies; on network file systems that lack it,
    do not start two stages on one run.)"""
    import fcntl
    path = Path(run_dir) / ".cfgen.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise InputError(f"{run_dir} is being written by another cfgen process (pid {holder}); "
                             "wait for it to finish or use another run directory") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
