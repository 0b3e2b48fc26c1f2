"""Config: dataclasses, loaded from YAML recipes and overridden by CLI flags."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .resources import pipelines_dir

T = TypeVar("T")


def resolve_recipe(name_or_path: str) -> Path:
    """A recipe name (`cf-vlm`) under pipelines/, or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    root = pipelines_dir()
    for cand in (root / f"{name_or_path}.yaml", root / "train" / f"{name_or_path}.yaml"):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"no recipe {name_or_path!r} (a YAML path, or a name under {root})")


class Section(dict):
    """A dict of settings that remembers where it was read from (for error messages)."""

    def __init__(self, data: dict[str, Any], origin: str):
        super().__init__(data)
        self.origin = origin


def load_yaml(path: str | Path | None, section: str | None = None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    origin = str(path)
    if section is not None:
        data = data.get(section, {}) or {}
        origin = f"{path} (section {section!r})"
        if not isinstance(data, dict):
            raise ValueError(f"{origin}: expected a mapping of settings")
    return Section(data, origin)


def _nested(cls: type, name: str) -> type | None:
    """The dataclass type of a field whose default is a dataclass instance (a nested section)."""
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == name and f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            if dataclasses.is_dataclass(f.default_factory):
                return f.default_factory  # type: ignore[return-value]
    return None


def build(cls: type[T], *layers: dict[str, Any] | None) -> T:
    """Instantiate a config dataclass from layered dicts (later wins; None values are skipped).

    Unknown keys are an error naming the key and the file it came from, so a typo in a recipe
    does not silently do nothing; nested sections (dataclass fields) are checked the same way.
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    merged: dict[str, Any] = {}
    nested: dict[str, list[dict[str, Any]]] = {}
    for layer in layers:
        origin = getattr(layer, "origin", "")
        for k, v in (layer or {}).items():
            k = k.replace("-", "_")
            if k not in names:
                raise ValueError(f"unknown {cls.__name__} setting {k!r}" + (f" in {origin}" if origin else ""))
            sub = _nested(cls, k)
            if sub is not None and isinstance(v, dict):
                where = f"{origin}, under {k!r}" if origin else f"under {k!r}"
                nested.setdefault(k, []).append(Section(v, where))
            elif v is not None:
                merged[k] = v
    for k, sub_layers in nested.items():
        merged[k] = build(_nested(cls, k), *sub_layers)  # type: ignore[arg-type]
    return cls(**merged)
