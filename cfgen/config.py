"""Config: dataclasses, loaded from YAML recipes and overridden by CLI flags.

Recipes are downloaded and passed around: a setting that says where data or secrets go is
`CLI_ONLY` (a recipe may not set it), and a file a recipe names is `RECIPE_FILE` (inside the
recipe's folder or the package's prompts). Declared as field metadata, checked in `build`."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .resources import pipelines_dir, prompts_dir

T = TypeVar("T")
CLI_ONLY = {"recipe": "never"}         # field metadata: from the command line or the environment only
RECIPE_FILE = {"recipe": "file"}       # field metadata: a recipe's path is inside its folder or the prompts
MAX_YAML_NODES = 100_000               # a recipe is a few hundred values; aliases may not expand past this


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

    def __init__(self, data: dict[str, Any], origin: str, folder: Path | None = None):
        super().__init__(data)
        self.origin = origin
        self.folder = folder           # the recipe file's folder: its settings are the recipe's


def _expanded_nodes(root: yaml.Node) -> int:
    """Nodes of a composed YAML document with every alias expanded, counted without expanding
    (each node's count is computed once); a recursive alias counts as unbounded."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size and not children_done:
            continue
        kids = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else
                list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if children_done:
            size[id(node)] = min(1 + sum(size.get(id(k), MAX_YAML_NODES + 1) for k in kids), MAX_YAML_NODES + 1)
            continue
        size[id(node)] = MAX_YAML_NODES + 1          # in progress: a cycle back to it is unbounded
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in size)
    return size[id(root)]


def _safe_load(text: str, path: str | Path) -> Any:
    """yaml.safe_load, refusing documents whose aliases expand past MAX_YAML_NODES (433 bytes of
    nested aliases are gigabytes once anything walks the settings)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_nodes(node) > MAX_YAML_NODES:
            raise ValueError(f"{path}: YAML aliases expand to more than {MAX_YAML_NODES} values; "
                             "write the settings out instead")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_yaml(path: str | Path | None, section: str | None = None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = _safe_load(Path(path).read_text(), path) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({type(e).__name__})") from None
    except RecursionError:
        raise ValueError(f"{path}: YAML nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    origin = str(path)
    if section is not None:
        data = data.get(section, {}) or {}
        origin = f"{path} (section {section!r})"
        if not isinstance(data, dict):
            raise ValueError(f"{origin}: expected a mapping of settings")
    return Section(data, origin, Path(path).resolve().parent)


def _from_recipe(f: dataclasses.Field, value: Any, layer: Section) -> Any:
    """A recipe's value of field `f`: refused where the field is CLI_ONLY; a RECIPE_FILE is
    resolved against the recipe's folder and must stay inside it or the package's prompts."""
    rule = f.metadata.get("recipe")
    if rule == "never":
        raise ValueError(f"{layer.origin}: {f.name!r} cannot come from a recipe (recipes are shared; where data "
                         f"and keys go is yours to say): give --{f.name.replace('_', '-')} on the command line")
    if rule == "file" and value is not None:
        path = (layer.folder / str(value)).resolve()
        roots = (layer.folder, prompts_dir().resolve())
        if not any(path.is_relative_to(r) for r in roots):
            raise ValueError(f"{layer.origin}: {f.name} {value!r} is outside the recipe's folder and cfgen's "
                             "prompts; give a file outside them on the command line")
        return str(path)
    return value


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
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    merged: dict[str, Any] = {}
    nested: dict[str, list[dict[str, Any]]] = {}
    for layer in layers:
        origin = getattr(layer, "origin", "")
        recipe = layer if isinstance(layer, Section) and layer.folder is not None else None
        for k, v in (layer or {}).items():
            k = k.replace("-", "_")
            if k not in fields:
                raise ValueError(f"unknown {cls.__name__} setting {k!r}" + (f" in {origin}" if origin else ""))
            if recipe is not None:
                v = _from_recipe(fields[k], v, recipe)
            sub = _nested(cls, k)
            if sub is not None and isinstance(v, dict):
                where = f"{origin}, under {k!r}" if origin else f"under {k!r}"
                nested.setdefault(k, []).append(Section(v, where, recipe.folder if recipe else None))
            elif v is not None:
                merged[k] = v
    for k, sub_layers in nested.items():
        merged[k] = build(_nested(cls, k), *sub_layers)  # type: ignore[arg-type]
    return cls(**merged)
