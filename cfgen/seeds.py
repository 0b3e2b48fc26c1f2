"""One stable hash for everything seeded by name (a request, an edit, a data draw): the same
(seed, key, ...) gives the same number on every machine, process and Python version, unlike hash()."""
from __future__ import annotations

import hashlib

SEED_MASK = 0x7FFFFFFF          # 31 bits: a valid seed for torch, numpy and every server


def stable_hash32(*parts: object) -> int:
    """The first 4 bytes (little-endian) of sha256 over "part:part:...": uniform on [0, 2**32)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "little")


def stable_seed(*parts: object) -> int:
    return stable_hash32(*parts) & SEED_MASK
