"""The data model every stage speaks: anchors, edits, rewrites, counterfactuals, samples.

One place defines what these are, how they look in the captions parquet tables and how a
final sample is laid out in a WebDataset tar (see `Sample`; cfgen/ARCHITECTURE.md has the data flow).
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Mapping

import pyarrow as pa

EDIT_TYPES: tuple[str, ...] = (
    "color", "material", "shape", "size", "position", "state", "category",
    "parts", "movement", "quantity", "emotion", "causal", "action", "swap",
)
SCOPES: tuple[str, ...] = ("local", "global")
IMAGE_EXTS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")      # image members of a sample, in lookup order


class Status(str, Enum):
    """The outcome of a sample, a rewrite or an edit. A `str` so that tables, JSON and stats hold
    the plain word ("kept"); code compares members, never string prefixes."""

    KEPT = "kept"
    REJECTED = "rejected"          # bad input or a result that failed a check: not retried
    FAILED = "failed"              # infrastructure failed (backend, I/O): a rerun may succeed
    GENERATED = "generated"        # an image was made (the filter decides whether it is kept)

    __str__ = str.__str__
    __format__ = str.__format__


KEPT, REJECTED, FAILED, GENERATED = Status.KEPT, Status.REJECTED, Status.FAILED, Status.GENERATED


@dataclass(frozen=True)
class Edit:
    """One atomic change between an anchor caption and its rewrite."""

    type: str
    from_: str
    to: str
    scope: str

    def __post_init__(self) -> None:
        if self.type not in EDIT_TYPES:
            raise ValueError(f"unknown edit type {self.type!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown edit scope {self.scope!r}")

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "from": self.from_, "to": self.to, "scope": self.scope}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Edit":
        return cls(type=d["type"], from_=d["from"], to=d["to"], scope=d["scope"])


@dataclass
class Anchor:
    """A factual (image, caption) pair as read from the user's input."""

    key: str                      # sanitized key, safe as a WebDataset key
    caption: str
    image: bytes | None = None    # encoded image bytes, as stored in the input
    image_ext: str = "jpg"
    source_id: str = ""           # the original key / row id
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rewrite:
    """A candidate counterfactual caption and the validator's verdict on it."""

    key: str
    i: int
    text: str
    status: Status                # KEPT | REJECTED
    reason: str = ""
    edit: Edit | None = None


@dataclass
class Counterfactual:
    """A kept counterfactual: edited image plus caption, with its provenance and scores."""

    i: int
    text: str
    edit: Edit
    image: bytes
    mask_box: list[int] | None = None
    scores: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    rewrite: int = 0              # index of the rewrite this came from

    def meta(self) -> dict[str, Any]:
        return {"i": self.i, "text": self.text, "edit": self.edit.to_dict(),
                "mask_box": self.mask_box, "scores": self.scores, "seed": self.seed,
                "rewrite": self.rewrite}


@dataclass
class Sample:
    """A final training sample: the anchor pair and its kept counterfactuals."""

    key: str
    caption: str
    image: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    cfs: list[Counterfactual] = field(default_factory=list)
    image_ext: str = "jpg"

    def to_wds(self) -> dict[str, Any]:
        """Encode as a WebDataset sample dict (`__key__` plus one entry per tar member)."""
        meta = dict(self.meta)
        meta["cf"] = [cf.meta() for cf in self.cfs]
        out: dict[str, Any] = {
            "__key__": self.key,
            self.image_ext: self.image,
            "txt": self.caption.encode("utf-8"),
            "json": json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8"),
        }
        for cf in self.cfs:
            out[f"cf{cf.i}.{self.image_ext}"] = cf.image
            out[f"cf{cf.i}.txt"] = cf.text.encode("utf-8")
        return out

    @classmethod
    def from_wds(cls, d: Mapping[str, Any]) -> "Sample":
        """Decode a raw (undecoded) WebDataset sample dict written by `to_wds`."""
        meta = json.loads(_as_bytes(d["json"]).decode("utf-8"))
        ext = next((e for e in IMAGE_EXTS if e in d), "jpg")
        cfs = []
        for c in meta.pop("cf", []):
            cfs.append(Counterfactual(
                i=c["i"], text=_as_bytes(d[f"cf{c['i']}.txt"]).decode("utf-8"),
                edit=Edit.from_dict(c["edit"]), image=_as_bytes(d[f"cf{c['i']}.{ext}"]),
                mask_box=c.get("mask_box"), scores=c.get("scores", {}), seed=c.get("seed", 0),
                rewrite=c.get("rewrite", c["i"])))
        return cls(key=d["__key__"], caption=_as_bytes(d["txt"]).decode("utf-8"),
                   image=_as_bytes(d[ext]), meta=meta, cfs=cfs, image_ext=ext)


def _as_bytes(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, io.BytesIO):
        return v.getvalue()
    raise TypeError(f"expected raw bytes in sample, got {type(v).__name__}")


@dataclass
class Generated:
    """An anchor with every counterfactual image generated for it, before filtering: the sample
    of the intermediate `images/part-N.tar` (the final shard is redone from it by `cfgen filter`)."""

    key: str
    caption: str
    image: bytes
    image_ext: str
    source_id: str
    meta: dict[str, Any]
    cf_images: dict[int, bytes] = field(default_factory=dict)     # rewrite index -> image bytes
    cf_ext: str = "jpg"

    def to_wds(self) -> dict[str, Any]:
        out: dict[str, Any] = {"__key__": self.key, self.image_ext: self.image, "txt": self.caption.encode("utf-8"),
                               "json": json.dumps({"source_id": self.source_id, "meta": self.meta},
                                                  sort_keys=True).encode("utf-8")}
        out.update({f"cf{i}.{self.cf_ext}": img for i, img in self.cf_images.items()})
        return out

    @classmethod
    def from_wds(cls, d: Mapping[str, Any], cf_ext: str) -> "Generated":
        meta = json.loads(_as_bytes(d["json"]).decode("utf-8"))
        ext = next(e for e in IMAGE_EXTS if e in d)
        cfs = {int(k[2:].split(".", 1)[0]): _as_bytes(v) for k, v in d.items()
               if k.startswith("cf") and k.endswith(f".{cf_ext}")}
        return cls(key=d["__key__"], caption=_as_bytes(d["txt"]).decode("utf-8"), image=_as_bytes(d[ext]),
                   image_ext=ext, source_id=meta["source_id"], meta=meta["meta"], cf_images=cfs, cf_ext=cf_ext)


# ---------------------------------------------------------------- captions parquet table
# One row per candidate rewrite; an anchor with no candidate at all (rejected on input, or the
# backend failed) has one row with i = -1, so every input sample is accounted for in the table.
EDIT_COLUMNS = [("edit_type", pa.string()), ("edit_from", pa.string()), ("edit_to", pa.string()),
                ("edit_scope", pa.string())]
REWRITE_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("source_id", pa.string()),
    ("caption", pa.string()),
    ("i", pa.int32()),
    ("text", pa.string()),
    ("status", pa.string()),
    ("reason", pa.string()),
    *EDIT_COLUMNS,
])

# ---------------------------------------------------------------- images parquet table
# One row per kept rewrite sent to the editor: what was generated (or why not), its seed, mask
# box and filter scores; `cfgen filter` applies thresholds to these rows without regenerating.
SCORE_KEYS: tuple[str, ...] = ("s_cf_tcf", "s_cf_ta", "margin", "s_img", "s_a_ta")
EDIT_SCHEMA = pa.schema([
    ("key", pa.string()), ("i", pa.int32()), ("text", pa.string()), ("caption", pa.string()),
    *EDIT_COLUMNS, ("scope_used", pa.string()), ("status", pa.string()),
    ("reason", pa.string()), ("seed", pa.int64()), ("mask_box", pa.list_(pa.int32())),
] + [(k, pa.float32()) for k in SCORE_KEYS])


def rewrites_to_table(rows: Iterable[tuple[Anchor, Rewrite | None, str, str]]) -> pa.Table:
    """Rows of (anchor, rewrite or None, status, reason) -> the captions table."""
    cols: dict[str, list[Any]] = {f.name: [] for f in REWRITE_SCHEMA}
    for anchor, rw, status, reason in rows:
        cols["key"].append(anchor.key)
        cols["source_id"].append(anchor.source_id)
        cols["caption"].append(anchor.caption)
        cols["i"].append(rw.i if rw else -1)
        cols["text"].append(rw.text if rw else "")
        cols["status"].append(status)
        cols["reason"].append(reason)
        e = rw.edit if rw else None
        cols["edit_type"].append(e.type if e else None)
        cols["edit_from"].append(e.from_ if e else None)
        cols["edit_to"].append(e.to if e else None)
        cols["edit_scope"].append(e.scope if e else None)
    return pa.table(cols, schema=REWRITE_SCHEMA)


def table_to_rewrites(table: pa.Table) -> dict[str, list[Rewrite]]:
    """The captions table -> {anchor key: [rewrites]} (anchor-level rows with i = -1 dropped)."""
    out: dict[str, list[Rewrite]] = {}
    for r in table.to_pylist():
        out.setdefault(r["key"], [])
        if r["i"] < 0:
            continue
        edit = (Edit(r["edit_type"], r["edit_from"], r["edit_to"], r["edit_scope"])
                if r["edit_type"] else None)
        out[r["key"]].append(Rewrite(key=r["key"], i=r["i"], text=r["text"], status=Status(r["status"]),
                                     reason=r["reason"] or "", edit=edit))
    return out


__all__ = [
    "EDIT_TYPES", "SCOPES", "IMAGE_EXTS", "Status", "KEPT", "REJECTED", "FAILED", "GENERATED", "Edit", "Anchor", "Rewrite",
    "Counterfactual", "Sample", "Generated", "REWRITE_SCHEMA", "EDIT_SCHEMA", "SCORE_KEYS",
    "rewrites_to_table", "table_to_rewrites",
]
