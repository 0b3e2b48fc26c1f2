"""Atomic file writes: everything is written under a temporary name and renamed when complete,
so a reader (or a resumed run) never sees a half-written file."""
from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

TMP_SUFFIX = ".tmp"


def tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}{TMP_SUFFIX}{os.getpid()}")


def _commit(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write under a temporary name and rename: a symlinked target is refused (a rename would
    replace the link, but a reader may expect the link's target)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_symlink(path)
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log, never through a symlink (O_NOFOLLOW)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "a") as f:
        f.write(line + "\n")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False).encode())


def atomic_write_parquet(path: str | os.PathLike, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


class AtomicTarWriter:
    """A WebDataset tar written under a temporary name and renamed on a clean close.

    Member mtimes are fixed so that the same samples always give the same bytes, and are an
    integer: a float mtime makes tarfile write a PAX header before every member, which doubles the
    headers every reader parses (and the shard's size, for small images).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp_name(self.path)
        self._file = open(self.tmp, "wb")
        self._tar = wds.TarWriter(self._file, encoder=False, mtime=0)
        self.count = 0

    def write(self, sample: Mapping[str, Any]) -> None:
        self._tar.write(dict(sample))
        self.count += 1

    def close(self) -> None:
        self._tar.close()
        if not self._file.closed:
            self._file.close()
        _commit(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self._tar.close()
        except Exception:
            pass
        if not self._file.closed:
            self._file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "AtomicTarWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


_TMP_NAME = re.compile(rf".+{re.escape(TMP_SUFFIX)}\d+")       # exactly what tmp_name makes


def remove_stale_tmp(directory: str | os.PathLike) -> int:
    """Delete the temporary files a killed writer left in `directory` (only call when no writer
    is running): names exactly as `tmp_name` makes them, regular files directly in this folder.
    A folder that is a symlink is refused: cleaning it would delete files outside the run."""
    d = Path(directory)
    refuse_symlink(d)
    n = 0
    if d.is_dir():
        for p in d.iterdir():
            if _TMP_NAME.fullmatch(p.name) and not p.is_symlink() and p.is_file():
                p.unlink(missing_ok=True)
                n += 1
    return n


class SymlinkRefused(ValueError):
    """A path cfgen would write or clean is a symlink (it could point anywhere)."""


def refuse_symlink(path: str | os.PathLike) -> None:
    """One clear line instead of writing through (or deleting under) a symlink."""
    if Path(path).is_symlink():
        raise SymlinkRefused(f"{path} is a symlink; cfgen writes only real files and folders it owns "
                             "(replace the link with a folder)")
