"""Fail fast on a model that cannot be loaded: checked once, before any unit starts.

Without this, every worker retries the download with network back-off for every unit
(over a minute per shard offline) and then records each unit as failed.
"""
from __future__ import annotations

import json
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
        refuse_remote_code(p)
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


class RemoteCodeRefused(ValueError):
    """A model folder asks to run its own Python (transformers `auto_map`, a diffusers custom class)."""


# Files of a checkpoint that can name code to import: transformers' auto_map lives in the config and
# processor / tokenizer configs; diffusers' model_index.json names each component's library.
CODE_FILES = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json",
              "image_processor_config.json", "video_preprocessor_config.json", "feature_extractor_config.json")
TRUSTED_LIBRARIES = {"diffusers", "transformers", None}


def refuse_remote_code(path: str | os.PathLike) -> None:
    """Refuse (one line naming the folder and the key) a local checkpoint that needs remote code.
    cfgen also passes trust_remote_code=False everywhere, so transformers never prompts."""
    root = Path(path)
    if not root.is_dir():
        return
    for sub in [root, *(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())]:
        for name in CODE_FILES:
            f = sub / name
            if not f.is_file() or f.stat().st_size > 16_000_000:
                continue
            try:
                data = json.loads(f.read_text())
            except (ValueError, OSError, RecursionError):
                continue                                   # unreadable: the loader's own error names it
            if isinstance(data, dict) and "auto_map" in data:
                raise RemoteCodeRefused(f"{f}: key 'auto_map' asks to run the checkpoint's own Python code; "
                                        "cfgen never runs code from a model folder")
    index = root / "model_index.json"
    if index.is_file():
        try:
            data = json.loads(index.read_text())
        except (ValueError, OSError, RecursionError):
            return
        for key, value in (data.items() if isinstance(data, dict) else ()):
            if isinstance(value, list) and len(value) == 2 and value[0] not in TRUSTED_LIBRARIES:
                raise RemoteCodeRefused(f"{index}: key {key!r} names the library {value[0]!r}: a custom "
                                        "component's code would run; cfgen loads only diffusers and transformers classes")
        if "_class_name" in data and isinstance(data["_class_name"], list):
            raise RemoteCodeRefused(f"{index}: key '_class_name' names a custom pipeline; cfgen never runs it")
