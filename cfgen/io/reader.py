"""Inputs: img2dataset-style WebDataset shards and (image path, caption) tables.

`expand_inputs` turns brace lists, globs and directories into files (the run package's
`plan_units` splits them into work units: one per tar, row ranges for tables); `read_unit`
yields one `ReadRecord` per input sample, good or bad, so that every sample is accounted for
downstream.
"""
from __future__ import annotations

import glob
import io
import json
import os
import re
import stat
import tarfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import braceexpand
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

from ..datamodel import FAILED, IMAGE_EXTS, REJECTED, Anchor, Status
from ..errors import InputError
from .images import MAX_PIXELS
from .keys import sanitize_key

TAR_EXTS = (".tar",)
TABLE_EXTS = (".parquet", ".csv", ".jsonl", ".json")
COMPRESSED_EXTS = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst", ".zip")
NEWLINE = b"\n"
PIL_FORMAT = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
_KEY_RE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")   # webdataset's key/extension split


@dataclass
class InputConfig:
    image_col: str = "image"
    caption_col: str = "caption"
    id_col: str | None = None
    image_root: str | None = None     # relative image paths in tables resolve against this
    rows_per_unit: int = 10_000
    max_caption_chars: int = 2_000
    check_images: bool = True         # decode every image (catches corrupt and truncated files)
    max_image_pixels: int = MAX_PIXELS    # decoded width x height; larger images: image_too_large
    max_image_bytes: int = 50_000_000     # table image files and tar image members; larger: image_file_too_large


MAX_COLUMNS = 1_000                   # a table with more columns is refused before it is parsed
MAX_TEXT_MEMBER = 1_000_000           # bytes of a tar's txt/json member; larger: member_too_large (never read)


class InputSlice(Protocol):
    """What `read_unit` reads: a file of a kind ("wds" | "table"), and a table's row range.
    (A run's `Unit` is one; the run package plans them.)"""

    path: str
    kind: str
    start: int
    stop: int | None


@dataclass
class ReadRecord:
    """One input sample: an anchor when readable, else the reason it was not."""

    source_id: str
    anchor: Anchor | None = None
    status: Status | None = None      # None when ok, else REJECTED | FAILED
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _is_input_file(p: str) -> bool:
    return p.endswith(TAR_EXTS + TABLE_EXTS)


def _regular(path: str, what: str) -> str:
    """The absolute path of a regular file (never a FIFO, device or directory): paths are stored
    absolute so a run can be continued from any working directory."""
    if not os.path.isfile(path):
        raise InputError(f"{what} is not a regular file: {path}")
    return os.path.abspath(path)


def expand_inputs(specs: list[str] | str) -> list[str]:
    """Brace lists (`{00000..00009}.tar`), globs and directories -> a sorted list of absolute
    paths of regular files. Compressed archives are refused by name (decompress them first)."""
    if isinstance(specs, str):
        specs = [specs]
    out: list[str] = []
    for spec in specs:
        for item in braceexpand.braceexpand(spec):
            if os.path.isdir(item):
                files = sorted(str(p) for p in Path(item).rglob("*") if not p.is_dir())
                packed = [p for p in files if p.lower().endswith(COMPRESSED_EXTS)]
                if packed:
                    raise InputError(f"compressed archive in {item}: {packed[0]} (decompress .tar.gz/.zip inputs "
                                     "to .tar first)")
                found = [_regular(p, "input") for p in _without_side_files(files, item) if _is_input_file(p)]
                if not found:
                    raise InputError(f"no .tar/.parquet/.csv/.jsonl input files in directory {item}")
                out.extend(found)
            elif glob.has_magic(item):
                found = sorted(glob.glob(item))
                if not found:
                    raise InputError(f"glob matched no files: {item}")
                found = [p for p in found if not os.path.isdir(p)]
                out.extend(_regular(p, "input") for p in _without_side_files(found, item) if _is_input_file(p))
            elif os.path.exists(item):
                if item.lower().endswith(COMPRESSED_EXTS):
                    raise InputError(f"compressed archive: {item} (decompress .tar.gz/.zip inputs to .tar first)")
                out.append(_regular(item, "input"))
            else:
                raise InputError(f"input not found: {item}")
    if not out:
        raise InputError("no input files given")
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def _without_side_files(files: list[str], where: str) -> list[str]:
    """Drop img2dataset's side files, which sit beside the shards they describe: for `NNNNN.tar`
    it writes `NNNNN.parquet` (one row per URL, failed downloads included) and
    `NNNNN_stats.json` (img2dataset writer.py WebDatasetSampleWriter, logger.py write_stats).
    cfgen's own stages write `part-N.stats.json` (and the images stage `part-N.parquet`) beside
    their tars; other `.json` files beside shards are metadata. The tars hold every sample that
    exists; a folder that mixes shards with other tables (.parquet/.csv/.jsonl) is refused."""
    tars = {p[:-len(".tar")] for p in files if p.endswith(".tar")}
    if not tars:
        return files
    side = {t + ext for t in tars for ext in (".parquet", "_stats.json", ".stats.json")}
    kept = [p for p in files if p not in side and not p.endswith(".json")]    # other .json: metadata (world.json)
    tables = [p for p in kept if p.endswith(TABLE_EXTS)]
    if tables:
        raise InputError(f"{where} mixes WebDataset shards (.tar) with tables that are not img2dataset side files "
                         f"(e.g. {tables[0]}); give the shards and the tables as separate inputs")
    return kept


def _check_csv_header(path: str) -> None:
    """Count a CSV's columns from its first line before pandas parses it (300,000 columns would
    cost minutes and gigabytes)."""
    import csv
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    line = head.split(b"\n", 1)[0]
    if len(line) == len(head) and len(head) == 1 << 20:
        raise InputError(f"{path}: the header line is longer than 1 MiB")
    _check_columns(path, len(next(csv.reader([line.decode("utf-8", "replace")]), [])))


def _check_columns(path: str, n: int) -> None:
    if n > MAX_COLUMNS:
        raise InputError(f"{path}: {n} columns (more than {MAX_COLUMNS}); not an image-caption table")


def _load_table(path: str) -> pd.DataFrame:
    """Read a table; any problem is an InputError naming the file (and the line, where known)."""
    if path.endswith(".csv"):
        _check_csv_header(path)
    elif path.endswith(".parquet"):
        table_columns(path)
    try:
        if path.endswith(".parquet"):
            return pd.read_parquet(path)
        if path.endswith(".csv"):
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8")
        return pd.read_json(path, lines=path.endswith(".jsonl"), dtype=False, encoding="utf-8")
    except UnicodeDecodeError:
        with open(path, "rb") as f:
            data = f.read()
        try:
            data.decode("utf-8")
            where = ""
        except UnicodeDecodeError as e:        # the parser's offsets are per buffer: locate it in the file
            where = f"line {data.count(NEWLINE, 0, e.start) + 1}: "
        raise InputError(f"{path}: {where}not UTF-8") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty table file") from None
    except Exception as e:
        raise InputError(f"{path}: unreadable table: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def table_columns(path: str) -> tuple[int, list[str]]:
    """Rows and column names of a table (a parquet file's from its footer); InputError if unreadable."""
    if path.endswith(".parquet"):
        try:
            f = pq.ParquetFile(path)
            rows, names = f.metadata.num_rows, list(f.schema_arrow.names)
        except Exception as e:
            raise InputError(f"{path}: unreadable table: {e}") from None
        _check_columns(path, len(names))
        return rows, names
    df = _load_table(path)
    return len(df), [str(c) for c in df.columns]


def read_unit(unit: InputSlice, cfg: InputConfig | None = None) -> Iterator[ReadRecord]:
    """Yield one record per input sample of the unit, never raising on bad data.

    An input file that cannot be opened at all (moved, unmounted, not readable) raises instead:
    the unit fails and is retried by the next run, rather than being recorded as done."""
    cfg = cfg or InputConfig()
    seen: set[str] = set()
    src = _read_tar(unit.path, cfg.max_image_bytes) if unit.kind == "wds" else _read_table(unit, cfg)
    for source_id, fields in src:
        rec = _check(source_id, fields, cfg)
        if rec.anchor is not None:
            if rec.anchor.key in seen:
                rec = ReadRecord(source_id, None, REJECTED, "duplicate_key")
            else:
                seen.add(rec.anchor.key)
        yield rec


def _read_tar(path: str, max_member: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Group consecutive tar members by key, like webdataset, accounting for every member.

    A member whose name has no key/extension, that is not a regular file, or that repeats an
    extension of its sample makes a rejected record; an unreadable or truncated tar yields a
    `__error__` record for what could not be read; a tar cut at a member boundary is caught by
    its missing end marker."""
    current: str | None = None
    fields: dict[str, Any] = {}
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot open input ({e.strerror or type(e).__name__})") from None
    try:
        size = os.fstat(fh.fileno()).st_size
        end = 0
        with fh, tarfile.open(fileobj=fh, mode="r:") as tf:
            for m in tf:
                end = m.offset_data + ((m.size + 511) // 512) * 512
                if m.offset_data + m.size > size:
                    raise tarfile.ReadError(f"member {m.name!r} is cut short")
                if m.isdir():
                    continue
                if not m.isfile():
                    yield m.name, {"__reject__": "not_a_regular_member"}
                    continue
                match = _KEY_RE.match(m.name)
                if not match:
                    yield m.name, {"__reject__": "unrecognised_member_name"}
                    continue
                key, ext = match.group(1), match.group(2).lower()
                if key != current:
                    if current is not None:
                        yield current, fields
                    current, fields = key, {}
                if ext in fields:
                    fields["__reject__"] = "duplicate_member"
                if m.size > (MAX_TEXT_MEMBER if ext in ("txt", "json") else max_member):
                    fields.setdefault("__reject__", "member_too_large")       # never read into memory
                    fields[ext] = b""
                    continue
                f = tf.extractfile(m)
                fields[ext] = f.read() if f else b""
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


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; anything else is a ValueError with a
    reason (a FIFO would block forever, /dev/zero would fill memory)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not_a_regular_file")
    if st.st_size > max_bytes:
        raise ValueError("image_file_too_large")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError("image_file_too_large")
    return data


def _read_table(unit: InputSlice, cfg: InputConfig) -> Iterator[tuple[str, dict[str, Any]]]:
    df = _load_table(unit.path)
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
                fields["jpg" if ext == "jpeg" else ext] = read_regular(p, cfg.max_image_bytes)
            except OSError:
                fields["__missing_image__"] = str(p)
            except ValueError as e:
                fields["__reject__"] = str(e)
        yield sid, fields


def _plain(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def clean_text(text: str) -> tuple[str, bool]:
    """Remove control and format characters (Unicode Cc/Cf: NUL, ANSI escapes, bidi overrides,
    zero-width marks) and collapse whitespace. Returns the text and whether anything was removed."""
    kept = "".join(" " if ch in "\t\n\r\f\v" else ch for ch in text
                   if ch in "\t\n\r\f\v" or unicodedata.category(ch) not in ("Cc", "Cf"))
    stripped = sum(1 for ch in text if ch not in "\t\n\r\f\v" and unicodedata.category(ch) in ("Cc", "Cf"))
    return " ".join(kept.split()), stripped > 0


def normalize_image(data: bytes, ext: str, max_pixels: int) -> bytes:
    """The image as upright RGB in the format its extension declares: EXIF rotation applied,
    CMYK/grey/alpha converted, TIFF or PNG bytes named .jpg re-encoded. A clean image is returned
    unchanged. ValueError `image_too_large` above `max_pixels` (checked before decoding)."""
    from PIL import ImageOps
    from .images import encode_image
    with Image.open(io.BytesIO(data)) as im:
        if im.width * im.height > max_pixels:
            raise ValueError("image_too_large")
        rotated = im.getexif().get(0x0112, 1) not in (0, 1)
        if im.format == PIL_FORMAT[ext] and im.mode == "RGB" and not rotated:
            im.load()
            return data
        up = ImageOps.exif_transpose(im) if rotated else im
        return encode_image(up.convert("RGB"), ext)


def _check(source_id: str, fields: dict[str, Any], cfg: InputConfig) -> ReadRecord:
    if "__error__" in fields:
        return ReadRecord(source_id, None, FAILED, fields["__error__"])
    if "__reject__" in fields:
        return ReadRecord(source_id, None, REJECTED, fields["__reject__"])
    ext = next((e for e in IMAGE_EXTS if e in fields), None)
    if ext is None:
        return ReadRecord(source_id, None, REJECTED, "missing_image")
    if "txt" not in fields:
        return ReadRecord(source_id, None, REJECTED, "missing_caption")
    if len(fields["txt"]) > 4 * cfg.max_caption_chars:     # UTF-8: at most 4 bytes a character
        return ReadRecord(source_id, None, REJECTED, "caption_too_long")     # before any decoding or cleaning
    try:
        caption = fields["txt"].decode("utf-8")
    except UnicodeDecodeError:
        return ReadRecord(source_id, None, REJECTED, "non_utf8_caption")
    caption, cleaned = clean_text(caption)
    if not caption:
        return ReadRecord(source_id, None, REJECTED, "empty_caption")
    if len(caption) > cfg.max_caption_chars:
        return ReadRecord(source_id, None, REJECTED, "caption_too_long")
    image = fields[ext]
    ext = "jpg" if ext == "jpeg" else ext
    try:
        if cfg.check_images:
            image = normalize_image(image, ext, cfg.max_image_pixels)
        else:
            with Image.open(io.BytesIO(image)) as im:      # header only: the size cap still holds
                if im.width * im.height > cfg.max_image_pixels:
                    raise ValueError("image_too_large")
    except ValueError as e:
        if str(e) == "image_too_large":
            return ReadRecord(source_id, None, REJECTED, "image_too_large")
        return ReadRecord(source_id, None, REJECTED, "corrupt_image")
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
    anchor = Anchor(key=key, caption=caption, image=image, image_ext=ext, source_id=source_id, meta=meta)
    return ReadRecord(source_id, anchor, extra={"caption_cleaned": True} if cleaned else {})
