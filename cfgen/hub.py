"""Fail fast on a model that cannot be loaded: checked once, before any unit starts.

Without this, every worker retries the download with network back-off for every unit
(over a minute per shard offline) and then records each unit as failed.
"""
from __future__ import annotations

import os
from pathlib import Path


class ModelUnavailable(ValueError):
    """A model named by an option is neither a local directory, nor cached, nor reachable."""


def _hint(name: str, option: str) -> str:
    return (f"model {name!r} (from {option}) cannot be loaded: give a local directory "
            f"(save_pretrained), or download it into the Hugging Face cache beforehand "
            f"(`huggingface-cli download {name}`) and run with HF_HUB_OFFLINE=1")


def require_model(name: str, option: str, timeout: float = 10.0) -> None:
    """Raise ModelUnavailable (one line naming the model and option) unless `name` can be loaded."""
    p = Path(name)
    if p.is_dir():
        if not any((p / f).is_file() for f in ("config.json", "model_index.json")):
            raise ModelUnavailable(f"{_hint(name, option)}; {p} has no config.json or model_index.json")
        return
    if p.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise ModelUnavailable(f"{_hint(name, option)}; no such directory")
    from huggingface_hub import try_to_load_from_cache
    for f in ("config.json", "model_index.json"):
        if isinstance(try_to_load_from_cache(name, f), str):
            return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or \
            os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ModelUnavailable(f"{_hint(name, option)}; not in the cache and HF_HUB_OFFLINE is set")
    from huggingface_hub import model_info
    try:
        model_info(name, timeout=timeout)
    except Exception as e:  # any network or hub error means the workers could not load it either
        raise ModelUnavailable(f"{_hint(name, option)}; the Hub said: {type(e).__name__}") from None
