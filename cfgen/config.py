"""Config: dataclasses, loaded from YAML recipes and overridden by CLI flags."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
PIPELINES_DIR = Path(__file__).resolve().parent.parent / "pipelines"


def resolve_recipe(name_or_path: str) -> Path:
    """A recipe name (`cf-vlm`) under pipelines/, or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    for cand in (PIPELINES_DIR / f"{name_or_path}.yaml", PIPELINES_DIR / "train" / f"{name_or_path}.yaml"):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"no recipe {name_or_path!r} (a YAML path, or a name under {PIPELINES_DIR})")


def load_yaml(path: str | Path | None, section: str | None = None) -> dict[str, Any]:
    if path is None:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    if section is not None:
        data = data.get(section, {}) or {}
    return data


def build(cls: type[T], *layers: dict[str, Any] | None) -> T:
    """Instantiate a config dataclass from layered dicts (later wins; None values are skipped).

    Unknown keys are an error, so a typo in a recipe does not silently do nothing.
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    merged: dict[str, Any] = {}
    for layer in layers:
        for k, v in (layer or {}).items():
            k = k.replace("-", "_")
            if k not in names:
                raise ValueError(f"unknown {cls.__name__} setting {k!r}")
            if v is not None:
                merged[k] = v
    return cls(**merged)
