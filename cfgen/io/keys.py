"""WebDataset-safe keys.

webdataset splits a member name at the first dot of its basename, and a `/` or `..` in a key
would escape the shard's namespace, so keys are reduced to `[A-Za-z0-9_-]`; the original id
is kept in the sample's json.
"""
from __future__ import annotations

import hashlib
import re

_BAD = re.compile(r"[^A-Za-z0-9_-]")
MAX_KEY_LEN = 120


def sanitize_key(raw: str) -> str:
    """Map any id to a key with no dots, slashes or odd characters (stable, deterministic)."""
    key = _BAD.sub("_", raw)
    if not key.strip("_"):
        key = "k_" + hashlib.sha1(raw.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    if len(key) > MAX_KEY_LEN:
        digest = hashlib.sha1(raw.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        key = key[: MAX_KEY_LEN - 13] + "_" + digest
    return key
