"""Every third-party import of the package is a declared dependency, and the constraints file
pins the tested environment (issue #24 item 2: scipy was imported through transformers and
declared nowhere; CI passed only because the machine's own Python had it)."""
from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Needed at run time without a direct import: transformers' Owlv2ImageProcessor (slow, PIL path)
# calls scipy when torchvision is absent (transformers/models/owlv2/image_processing_owlv2.py,
# `requires_backends(self, "scipy")` in `_preprocess_resize_output_shape` / `resize`).
INDIRECT = {"scipy"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(_norm(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0]))
    return names


def declared() -> tuple[set[str], set[str]]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    core = _requirement_names(cfg["options"]["install_requires"])
    extras = set()
    for _, reqs in cfg["options.extras_require"].items():
        extras |= _requirement_names(reqs)
    return core, extras


def imported_modules(folder: Path) -> set[str]:
    mods = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and m != "cfgen"}


def test_every_import_of_the_package_is_declared():
    core, extras = declared()
    # Modules of the GPU extra, not installable here: their distributions by name.
    dists = {"pynvml": ["nvidia-ml-py"], **packages_distributions()}
    missing = []
    for mod in sorted(imported_modules(ROOT / "cfgen")):
        names = {_norm(d) for d in dists.get(mod, [mod])}
        if not names & (core | extras):
            missing.append(f"{mod} (distribution {sorted(names)})")
    assert not missing, f"imported by cfgen but declared in no requirement of setup.cfg: {missing}"
    assert INDIRECT <= core, f"needed at run time through another library, declare in install_requires: {INDIRECT - core}"


def test_constraints_pin_every_installed_requirement():
    """The README installs with `-c constraints-cpu.txt`: every declared dependency the test extra
    installs must be pinned to one version, or a fresh machine gets an untested one."""
    core, extras = declared()
    pins = {}
    for line in (ROOT / "constraints-cpu.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints-cpu.txt: {line!r} is not an exact pin"
            pins[_norm(name)] = version
    unpinned = sorted((core | extras) - set(pins) - {"vllm", "nvidia-ml-py", "tensorboard"})
    assert not unpinned, f"declared but not pinned in constraints-cpu.txt: {unpinned}"
    assert pins["torch"] == "2.13.0", "the CPU wheel on disk is torch 2.13.0"
