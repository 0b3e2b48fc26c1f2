"""The wheel users install holds every subpackage, the prompts and the recipes."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_has_every_subpackage_prompt_and_recipe(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True)
    (whl,) = tmp_path.glob("cfgen-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    for f in (ROOT / "cfgen").rglob("*"):          # code and data alike (eval/data, the stand-ins, the note)
        if f.is_file() and "__pycache__" not in f.parts:
            assert f.relative_to(ROOT).as_posix() in names, f"{f} is missing from the wheel"
    for f in (ROOT / "prompts").glob("*.txt"):
        assert f"cfgen/prompts/{f.name}" in names
    for f in (ROOT / "pipelines").rglob("*.yaml"):
        assert f"cfgen/pipelines/{f.relative_to(ROOT / 'pipelines').as_posix()}" in names
    assert "cfgen/py.typed" in names and "cfgen/eval/data/imagenet1k_zeroshot.json" in names


def test_resources_resolve_in_the_checkout():
    from cfgen.captions.backends import default_prompt
    from cfgen.config import resolve_recipe
    assert default_prompt().read_text().strip()
    assert resolve_recipe("cf-vlm").name == "cf-vlm.yaml"
