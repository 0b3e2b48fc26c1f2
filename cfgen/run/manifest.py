"""A run's plan: its units, the inputs they read (with fingerprints), and the settings recorded
per stage, in `manifest.json`. Captions plans the run; later stages read the manifest for their
units and the input columns, and refuse a resume whose settings or inputs changed."""
from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io.reader import TABLE_EXTS, TAR_EXTS, InputConfig, expand_inputs, table_columns
from ..io.writer import atomic_write_json

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Unit:
    """One unit of work: an input shard, or a row range of a table. Part N of every stage."""

    index: int
    path: str
    kind: str                 # "wds" | "table"
    start: int = 0
    stop: int | None = None

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "path": self.path, "kind": self.kind,
                "start": self.start, "stop": self.stop}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Unit":
        return cls(**d)


def plan_units(paths: list[str], cfg: InputConfig | None = None) -> list[Unit]:
    """Split input files into numbered work units.

    A table that cannot be read becomes one unit of its own, which fails with the file's problem
    while the good inputs proceed; a readable table without the configured columns stops the
    plan, naming the file and its columns."""
    cfg = cfg or InputConfig()
    units: list[Unit] = []
    for p in paths:
        if p.endswith(TAR_EXTS):
            units.append(Unit(len(units), p, "wds"))
        elif p.endswith(TABLE_EXTS):
            try:
                n, cols = table_columns(p)
            except InputError:
                units.append(Unit(len(units), p, "table", 0, None))
                continue
            missing = [c for c in (cfg.image_col, cfg.caption_col, cfg.id_col) if c and c not in cols]
            if missing:
                raise InputError(f"{p}: no column {missing[0]!r} (columns: {', '.join(cols)}); "
                                 "set --image-col/--caption-col/--id-col")
            for start in range(0, max(n, 1), cfg.rows_per_unit):
                units.append(Unit(len(units), p, "table", start, min(start + cfg.rows_per_unit, n)))
        else:
            raise InputError(f"unsupported input type (want .tar, .parquet, .csv, .jsonl): {p}")
    return units


def fingerprint(path: str, block: int = 1 << 20) -> dict[str, Any]:
    """Identity of an input file: size and sha256 of its first and last MiB (cheap on TB datasets,
    and it changes when a shard is replaced, truncated or appended to)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):         # a FIFO named in a shared run's manifest would block forever
        raise InputError(f"input is not a regular file: {path}")
    size = st.st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(block))
        if size > block:
            f.seek(max(block, size - block))
            h.update(f.read(block))
    return {"size": size, "sha256_head_tail": h.hexdigest()}


def input_identity(units: list[Unit]) -> dict[str, Any]:
    """{input path: size and head/tail sha256} of every input file of a run."""
    return {p: fingerprint(p) for p in dict.fromkeys(u.path for u in units)}


@dataclass
class Manifest:
    """`manifest.json`: the units, the fingerprint of each input, the captions stage's config as
    given (its input columns and K), and per stage the settings its finished parts were made with."""

    units: list[Unit]
    inputs: dict[str, Any] | None            # None: made by a cfgen that did not record them
    captions: dict[str, Any]
    settings: dict[str, dict[str, Any]]

    @staticmethod
    def path(run_dir: str | os.PathLike) -> Path:
        return Path(run_dir) / MANIFEST

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> "Manifest":
        path = cls.path(run_dir)
        if not path.exists():
            raise FileNotFoundError(f"no {MANIFEST} in {run_dir}: run `cfgen captions --out {run_dir}` first")
        d = json.loads(path.read_text())
        return cls([Unit.from_dict(u) for u in d["units"]], d.get("inputs"), d.get("captions", {}),
                   d.get("settings", {}))

    def write(self, run_dir: str | os.PathLike) -> None:
        d = {"units": [u.to_dict() for u in self.units], "inputs": self.inputs, "captions": self.captions,
             "settings": self.settings}
        atomic_write_json(self.path(run_dir), {k: v for k, v in d.items() if v is not None})

    @property
    def k(self) -> int | None:
        """K, the counterfactuals per anchor the run was made with (set once, by captions)."""
        return self.captions.get("k")

    def input_config(self) -> InputConfig:
        """How the inputs are read (columns, rows per unit), as the captions stage read them."""
        return InputConfig(**{f.name: self.captions[f.name] for f in fields(InputConfig) if f.name in self.captions})

    def check_inputs(self, run_dir: str | os.PathLike) -> None:
        """Refuse to continue a run whose inputs are not the ones it was started with. (An input
        that cannot be read now fails its own unit, to be retried when it is back.)"""
        for path, want in (self.inputs or {}).items():
            try:
                have = fingerprint(path)
            except OSError:
                continue
            if have != want:
                raise InputError(f"{path} changed since run {run_dir} was planned (size or content differ); "
                                 "start a new run with a new --out")


def check_run_dir(run_dir: str, inputs: list[str]) -> None:
    """A run directory is a directory, outside the inputs (its own files would be read as inputs)."""
    if Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise ValueError(f"--out {run_dir} is a file, not a run directory")
    out = Path(run_dir).resolve()
    inside = next((i for i in inputs if os.path.isdir(i) and out.is_relative_to(Path(i).resolve())), None)
    if inside is not None:
        raise ValueError(f"--out {run_dir} is inside --input {inside}: the run's own files would be read as "
                         "inputs; put the run directory elsewhere")


def plan_run(run_dir: str, inputs: list[str], input_cfg: InputConfig, stage: str, settings: dict[str, Any],
             config: dict[str, Any]) -> list[Unit]:
    """The units of the inputs, written to the manifest with the settings of `stage` (the
    planning stage) and its config as given; a run directory that belongs to other inputs (other
    files, or the same files with other contents) is refused."""
    units = plan_units(expand_inputs(inputs), input_cfg)
    settings_by_stage = {stage: settings}
    if Manifest.path(run_dir).exists():
        old = Manifest.read(run_dir)
        if old.inputs is None:
            raise ValueError(f"{run_dir} was made by an older cfgen (no input fingerprints in its {MANIFEST}); "
                             "use a new --out")
        if old.units != units or old.inputs != input_identity(units):
            raise ValueError(f"{run_dir} belongs to a run with other inputs (its {MANIFEST} lists other "
                             "files or contents); use a new --out")
        settings_by_stage = {**old.settings, stage: settings}
    Manifest(units, input_identity(units), config, settings_by_stage).write(run_dir)
    return units
