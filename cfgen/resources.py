"""Files that ship inside the package: the rewriting prompts and the YAML recipes.

In the repository they live at the top (`prompts/`, `pipelines/`); setup.cfg maps them into the
wheel as `cfgen.prompts` and `cfgen.pipelines`. An installed wheel finds them there; a checkout
(or an editable install, which only puts the checkout on the path) finds them at the top.
"""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path


def _dir(name: str) -> Path:
    """The data folder `name` (no __init__.py there: a namespace package when installed)."""
    try:
        spec = find_spec(f"cfgen.{name}")
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parent.parent / name


def prompts_dir() -> Path:
    return _dir("prompts")


def pipelines_dir() -> Path:
    return _dir("pipelines")
