"""Inputs: img2dataset-style WebDataset shards and (image path, caption) tables.

`expand_inputs` turns brace lists, globs and directories into files; `plan_units` splits them
into work units (one per tar, row ranges for tables); `read_unit` yields one `ReadRecord` per
input sample, good or bad, so that every sample is accounted for downstream.
"""
from __future__ import annotations

import glob
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import braceexpand
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

from ..datamodel import Anchor, FAILED, REJECTED
from .keys import sanitize_key

TAR_EXTS = (".tar",)
TABLE_EXTS = (".parquet", ".csv", ".jsonl", ".json")
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
_KEY_RE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")   # webdataset's key/extension split


class InputError(Exception):
    """A problem with the user's input paths (missing file, empty glob): one clear line."""


@dataclass
class InputConfig:
    image_col: str = "image"
    caption_col: str = "caption"
    id_col: str | None = None
    image_root: str | None = None     # relative image paths in tables resolve against this
    rows_per_unit: int = 10_000
    max_caption_chars: int = 2_000
    check_images: bool = True         # decode every image (catches corrupt and truncated files)


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


@dataclass
class ReadRecord:
    """One input sample: an anchor when readable, else the reason it was not."""

    source_id: str
    anchor: Anchor | None = None
    status: str = ""          # "" when ok, else rejected | failed
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _is_input_file(p: str) -> bool:
    return p.endswith(TAR_EXTS + TABLE_EXTS)


def expand_inputs(specs: list[str] | str) -> list[str]:
    """Brace lists (`{00000..00009}.tar`), globs and directories -> a sorted list of files."""
    if isinstance(specs, str):
        specs = [specs]
    out: list[str] = []
    for spec in specs:
        for item in braceexpand.braceexpand(spec):
            if os.path.isdir(item):
                found = sorted(str(p) for p in Path(item).rglob("*")
                               if p.is_file() and _is_input_file(str(p)))
                if not found:
                    raise InputError(f"no .tar/.parquet/.csv/.jsonl input files in directory {item}")
                out.extend(found)
            elif glob.has_magic(item):
                found = sorted(glob.glob(item))
                if not found:
                    raise InputError(f"glob matched no files: {item}")
                out.extend(found)
            elif os.path.exists(item):
                out.append(item)
            else:
                raise InputError(f"input not found: {item}")
    if not out:
        raise InputError("no input files given")
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def _table_rows(path: str) -> int:
    if path.endswith(".parquet"):
        return pq.ParquetFile(path).metadata.num_rows
    return len(_load_table(path))


def _load_table(path: str) -> pd.DataFrame:
    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    if path.endswith(".csv"):
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    return pd.read_json(path, lines=path.endswith(".jsonl"), dtype=False)


def plan_units(paths: list[str], cfg: InputConfig | None = None) -> list[Unit]:
    """Split input files into numbered work units."""
    cfg = cfg or InputConfig()
    units: list[Unit] = []
    for p in paths:
        if p.endswith(TAR_EXTS):
            units.append(Unit(len(units), p, "wds"))
        elif p.endswith(TABLE_EXTS):
            n = _table_rows(p)
            for start in range(0, max(n, 1), cfg.rows_per_unit):
                units.append(Unit(len(units), p, "table", start, min(start + cfg.rows_per_unit, n)))
        else:
            raise InputError(f"unsupported input type (want .tar, .parquet, .csv, .jsonl): {p}")
    return units


def read_unit(unit: Unit, cfg: InputConfig | None = None) -> Iterator[ReadRecord]:
    """Yield one record per input sample of the unit, never raising on bad data."""
    cfg = cfg or InputConfig()
    seen: set[str] = set()
    src = _read_tar(unit.path) if unit.kind == "wds" else _read_table(unit, cfg)
    for source_id, fields in src:
        rec = _check(source_id, fields, cfg)
        if rec.anchor is not None:
            if rec.anchor.key in seen:
                rec = ReadRecord(source_id, None, REJECTED, "duplicate_key")
            else:
                seen.add(rec.anchor.key)
        yield rec


def _read_tar(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Group consecutive tar members by key, like webdataset.

    An unreadable or truncated tar yields a `__error__` record for what could not be read
    instead of raising; a tar cut at a member boundary is caught by its missing end marker.
    """
    current: str | None = None
    fields: dict[str, Any] = {}
    try:
        size = os.path.getsize(path)
        end = 0
        with open(path, "rb") as fh, tarfile.open(fileobj=fh, mode="r:") as tf:
            for m in tf:
                end = m.offset_data + ((m.size + 511) // 512) * 512
                if m.offset_data + m.size > size:
                    raise tarfile.ReadError(f"member {m.name!r} is cut short")
                if not m.isfile():
                    continue
                match = _KEY_RE.match(m.name)
                if not match:
                    continue
                key, ext = match.group(1), match.group(2).lower()
                f = tf.extractfile(m)
                data = f.read() if f else b""
                if key != current:
                    if current is not None:
                        yield current, fields
                    current, fields = key, {}
                fields[ext] = data
            fh.seek(end)
            tail = fh.read(1024)
            if len(tail) < 1024 or tail.strip(b"\0"):
                raise tarfile.ReadError("no end-of-archive marker (truncated)")
    except Exception as e:  # truncated / not a tar / I/O error
        if current is not None and fields:
            yield current, fields
            current = None
        yield f"{os.path.basename(path)}#unreadable", {"__error__": f"unreadable_tar: {type(e).__name__}: {e}"}
        return
    if current is not None:
        yield current, fields


def _read_table(unit: Unit, cfg: InputConfig) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        df = _load_table(unit.path)
    except Exception as e:
        yield f"{os.path.basename(unit.path)}#unreadable", {"__error__": f"unreadable_table: {e}"}
        return
    for col in (cfg.image_col, cfg.caption_col):
        if col not in df.columns:
            raise InputError(f"{unit.path}: no column {col!r} (columns: {', '.join(map(str, df.columns))}); "
                             "set --image-col/--caption-col")
    root = Path(cfg.image_root) if cfg.image_root else Path(unit.path).parent
    rows = df.iloc[unit.start:unit.stop]
    for row_no, (_, row) in enumerate(rows.iterrows(), start=unit.start):
        sid = str(row[cfg.id_col]) if cfg.id_col else f"{row_no:09d}"
        fields: dict[str, Any] = {"__row__": {k: _plain(v) for k, v in row.items()}}
        cap = row[cfg.caption_col]
        if isinstance(cap, str):
            fields["txt"] = cap.encode("utf-8", "surrogateescape")
        elif isinstance(cap, bytes):
            fields["txt"] = cap
        img_path = row[cfg.image_col]
        if isinstance(img_path, str) and img_path:
            p = Path(img_path) if os.path.isabs(img_path) else root / img_path
            ext = p.suffix.lower().lstrip(".") or "jpg"
            try:
                fields["jpg" if ext == "jpeg" else ext] = p.read_bytes()
            except OSError:
                fields["__missing_image__"] = str(p)
        yield sid, fields


def _plain(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def _check(source_id: str, fields: dict[str, Any], cfg: InputConfig) -> ReadRecord:
    if "__error__" in fields:
        return ReadRecord(source_id, None, FAILED, fields["__error__"])
    ext = next((e for e in IMAGE_EXTS if e in fields), None)
    if ext is None:
        return ReadRecord(source_id, None, REJECTED, "missing_image")
    if "txt" not in fields:
        return ReadRecord(source_id, None, REJECTED, "missing_caption")
    try:
        caption = fields["txt"].decode("utf-8")
    except UnicodeDecodeError:
        return ReadRecord(source_id, None, REJECTED, "non_utf8_caption")
    caption = " ".join(caption.split())
    if not caption:
        return ReadRecord(source_id, None, REJECTED, "empty_caption")
    if len(caption) > cfg.max_caption_chars:
        return ReadRecord(source_id, None, REJECTED, "caption_too_long")
    image = fields[ext]
    if cfg.check_images:
        try:
            with Image.open(io.BytesIO(image)) as im:
                im.load()
        except Exception:
            return ReadRecord(source_id, None, REJECTED, "corrupt_image")
    meta: dict[str, Any] = {}
    if "json" in fields:
        try:
            meta = json.loads(fields["json"].decode("utf-8"))
            if not isinstance(meta, dict):
                meta = {}
        except Exception:
            meta = {}
    if "__row__" in fields:
        meta = {"row": fields["__row__"]}
    key = sanitize_key(source_id)
    anchor = Anchor(key=key, caption=caption, image=image, image_ext="jpg" if ext == "jpeg" else ext,
                    source_id=source_id, meta=meta)
    return ReadRecord(source_id, anchor)
