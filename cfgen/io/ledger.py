"""The run ledger: which units of a stage are done, with their stats.

A unit is done when its stats file exists; the stats file is written (atomically) only after
all of the unit's outputs have been renamed into place, so a killed run leaves the unit
unfinished and a rerun redoes it from scratch. Units that failed every retry are listed in
`failed.json` with their error and are retried on the next run.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..datamodel import FAILED, KEPT, REJECTED
from .reader import Unit
from .writer import atomic_write_json, remove_stale_tmp


@dataclass
class UnitStats:
    """Per-unit accounting: every input sample is kept, rejected (reason) or failed (reason)."""

    unit: int
    n_in: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, status: str, reason: str = "") -> None:
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
        self.dir.mkdir(parents=True, exist_ok=True)

    def stats_path(self, unit: Unit) -> Path:
        return self.dir / f"{unit.name}.stats.json"

    def is_done(self, unit: Unit) -> bool:
        return self.stats_path(unit).exists()

    def pending(self, units: Iterable[Unit]) -> list[Unit]:
        return [u for u in units if not self.is_done(u)]

    def mark_done(self, unit: Unit, stats: UnitStats) -> None:
        if not stats.balanced():
            raise AssertionError(f"{unit.name}: counts do not add up: {stats.to_dict()}")
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


def write_manifest(run_dir: str | os.PathLike, units: list[Unit], info: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / "manifest.json",
                      {"units": [u.to_dict() for u in units], **info})


def read_manifest(run_dir: str | os.PathLike) -> tuple[list[Unit], dict[str, Any]]:
    path = Path(run_dir) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"no manifest.json in {run_dir}: run `cfgen captions --out {run_dir}` first")
    d = json.loads(path.read_text())
    return [Unit.from_dict(u) for u in d.pop("units")], d
