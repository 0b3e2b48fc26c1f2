"""Untrusted recipes, servers and run folders (issue #25 items 2, 3, 8, 11, 12, 13, 17): a recipe
cannot say where data or keys go, no key lands in the data or the output, a hostile server
cannot hang or flood a run, a resume cannot mix settings, a shared run folder cannot make cfgen
read a device, a NaN score is a rejection. Hostile servers are tests/fake_openai_server.py; a
run that could hang runs in a subprocess with a timeout, so a regression fails instead."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cfgen.cli import main
from tests.conftest import caption_shards

KEY = "sk-test-0123456789abcdef"
SERVER = Path(__file__).parent / "fake_openai_server.py"


@pytest.fixture()
def inputs(tmp_path):
    return caption_shards(tmp_path / "in", ["a red car on a road", "a red car near a tree"])


@pytest.fixture()
def server():
    procs = []

    def start(mode: str) -> tuple[str, subprocess.Popen]:
        p = subprocess.Popen([sys.executable, str(SERVER), mode], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        return f"http://127.0.0.1:{p.stdout.readline().strip()}/v1", p
    yield start
    for p in procs:
        p.kill()
        p.wait()


def _line(stream, timeout: float) -> str:
    """The next line of a child's stdout, or "" after `timeout` (a test must not wait forever)."""
    import select
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline().strip() if ready else ""


def _captions(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["captions", *args], env=env)


def _cli(*args: str, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`cfgen ARGS` in its own process: a hang is a failed test, never a hung suite."""
    return subprocess.run([sys.executable, "-m", "cfgen.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def _recipe(tmp_path: Path, text: str, name: str = "recipe.yaml") -> str:
    path = tmp_path / "recipes" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return str(path)


# ------------------------------------------------------------------------------ item 2
@pytest.mark.parametrize("setting", ["base_url: http://evil.example/v1", "api_key_env: MY_GITHUB_TOKEN",
                                     "ray_address: evil.example:6379"])
def test_a_recipe_cannot_say_where_data_and_keys_go(tmp_path, inputs, setting):
    recipe = _recipe(tmp_path, f"captions:\n  backend: openai\n  {setting}\n")
    r = _captions("--input", inputs, "--out", str(tmp_path / "run"), "--config", recipe)
    name = setting.split(":")[0]
    assert r.exit_code == 1 and f"{name!r} cannot come from a recipe" in r.output, r.output
    assert f"--{name.replace('_', '-')}" in r.output and not (tmp_path / "run").exists()


def test_a_recipes_prompt_stays_in_its_folder_or_the_packages_prompts(tmp_path, inputs):
    from cfgen.resources import prompts_dir
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "notes.txt").write_text("my private notes {CAPTION}")
    base = ["--input", inputs, "--out", str(tmp_path / "run"), "--dry-run"]
    for bad in ("../secret/notes.txt", str(tmp_path / "secret" / "notes.txt")):
        r = _captions(*base, "--config", _recipe(tmp_path, f"captions:\n  prompt: {bad}\n"))
        assert r.exit_code == 1 and "outside the recipe's folder" in r.output, r.output
        assert "private" not in r.output
    (tmp_path / "recipes" / "mine.txt").write_text("MINE <<<{CAPTION}>>>")
    r = _captions(*base, "--config", _recipe(tmp_path, "captions:\n  prompt: mine.txt\n"))
    assert r.exit_code == 0 and r.output.startswith("MINE <<<a red car on a road>>>"), r.output
    shipped = prompts_dir() / "rewrite.txt"
    r = _captions(*base, "--config", _recipe(tmp_path, f"captions:\n  prompt: {shipped}\n"))
    assert r.exit_code == 0 and "a red car on a road" in r.output
    r = _captions(*base, "--prompt", str(tmp_path / "secret" / "notes.txt"))          # the user's own choice
    assert r.exit_code == 0 and "my private notes a red car on a road" in r.output


def test_the_key_variable_and_the_server_come_from_the_command_line_or_the_environment(tmp_path, inputs, server):
    url, _ = server("echo")
    r = _captions("--input", inputs, "--out", str(tmp_path / "run"), "--backend", "openai", "--model", "fake",
                  "--api-key-env", "MY_KEY", env={"MY_KEY": KEY, "OPENAI_BASE_URL": url})
    assert r.exit_code == 0, r.output
    parts = sorted((tmp_path / "run" / "captions").glob("*.parquet"))
    rows = [row for p in parts for row in pq.read_table(p).to_pylist()]
    assert any("Bearer [redacted]" in (row["text"] or "") for row in rows)     # the server saw the key; the data not


# ------------------------------------------------------------------------------ item 3
def test_a_server_quoting_the_key_in_a_401_leaves_it_nowhere(tmp_path, inputs, server):
    url, _ = server("auth")
    run = tmp_path / "run"
    r = _captions("--input", inputs, "--out", str(run), "--backend", "openai", "--model", "fake",
                  "--base-url", url, "--api-key-env", "MY_KEY", env={"MY_KEY": KEY})
    assert r.exit_code == 1 and "http_401: Unauthorized" in r.output, r.output
    assert KEY not in r.output and "bad key" not in r.output                  # a status, never the body
    stored = [p for p in run.rglob("*") if p.is_file()]
    assert any(p.name == "failed.json" for p in stored)
    assert not [p for p in stored if KEY.encode() in p.read_bytes()]


def test_redaction_covers_every_stored_and_printed_error():
    from cfgen.run.distribute import _short
    from cfgen.errors import describe, redact, register_secret
    register_secret(KEY)
    e = ValueError(f"server said: Authorization: Bearer {KEY}")
    assert KEY not in describe(e) and KEY not in _short(e) and "[redacted]" in redact(str(e))


# ------------------------------------------------------------------------------ item 12
def _hostile(tmp_path: Path, inputs: str, url: str, timeout: float) -> subprocess.CompletedProcess:
    """One unit, one try of each request, a 1 s deadline."""
    recipe = _recipe(tmp_path, "captions:\n  request_retries: 0\n  retries: 0\n  timeout: 1\n")
    return _cli("captions", "--input", f"{inputs}/00000.tar", "--out", str(tmp_path / "run"), "--backend", "openai",
                "--model", "fake", "--base-url", url, "--config", recipe, timeout=timeout)


def test_a_server_that_trickles_bytes_hits_the_request_deadline(tmp_path, inputs, server):
    """A byte every 0.5 s never trips a per-read timeout of 1 s; the deadline is per request."""
    url, _ = server("trickle")
    t0 = time.time()
    r = _hostile(tmp_path, inputs, url, timeout=30)
    assert r.returncode == 1 and "backend_error: timeout" in r.stderr, r.stderr
    assert time.time() - t0 < 15 and "Traceback" not in r.stderr


def test_a_huge_answer_is_refused_unread(tmp_path, inputs, server):
    url, _ = server("huge")
    r = _hostile(tmp_path, inputs, url, timeout=60)
    assert r.returncode == 1 and "response_too_large" in r.stderr, r.stderr


def test_one_ctrl_c_stops_requests_in_flight(tmp_path, inputs, server):
    """Requests in flight held Ctrl-C until they timed out (a thread pool waits for its threads)."""
    url, srv = server("hang")
    p = subprocess.Popen([sys.executable, "-m", "cfgen.cli", "captions", "--input", inputs, "--out",
                          str(tmp_path / "run"), "--backend", "openai", "--model", "fake", "--base-url", url],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert _line(srv.stdout, 60) == "request", p.communicate(timeout=15)
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode != 0 and "Traceback" not in err and "Aborted!" in err, err


DRIVER = """
import os, sys, time
from cfgen.run.distribute import distribute_local
from cfgen.run import Unit

class Sleep:
    def __call__(self, unit, device):
        open(os.path.join(sys.argv[1], f"started-{os.getpid()}"), "w").close()
        time.sleep(60)

if __name__ == "__main__":
    try:
        distribute_local(Sleep(), [Unit(index=i, path="x", kind="wds") for i in range(3)], workers=3, retries=0)
    except KeyboardInterrupt:          # as click ends a command
        sys.exit("Aborted!")
"""


def test_one_ctrl_c_with_workers_prints_one_line(tmp_path):
    """A terminal's Ctrl-C goes to the whole process group: every worker printed its traceback."""
    (tmp_path / "driver.py").write_text(DRIVER)
    p = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        deadline = time.time() + 60
        while len(list(tmp_path.glob("started-*"))) < 3 and time.time() < deadline:
            time.sleep(0.1)
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("units:")]   # not the bar
    assert p.returncode != 0 and lines == ["Aborted!"], err


# ------------------------------------------------------------------------------ item 11
def test_a_yaml_alias_bomb_is_refused_in_one_line(tmp_path, inputs):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    bomb = _recipe(tmp_path, "captions:\n  k: 4\nbomb:\n" + "\n".join("  " + line for line in lines) + "\n")
    assert os.path.getsize(bomb) < 600
    r = _cli("captions", "--input", inputs, "--out", str(tmp_path / "run"), "--config", bomb, "--dry-run",
             timeout=60)
    assert r.returncode == 1 and "YAML aliases expand to more than" in r.stderr, r.stderr
    loop = _recipe(tmp_path, "captions: &c\n  k: 4\n  x: [*c]\n", "loop.yaml")
    r = _captions("--input", inputs, "--out", str(tmp_path / "run"), "--config", loop, "--dry-run")
    assert r.exit_code == 1 and "YAML aliases expand" in r.output, r.output
    ok = _recipe(tmp_path, "defaults: &d {k: 2}\ncaptions:\n  <<: *d\n  seed: 3\n", "ok.yaml")
    from cfgen.config import load_yaml
    assert load_yaml(ok, "captions") == {"k": 2, "seed": 3}


# ------------------------------------------------------------------------------ item 8 and "done when"
def test_a_captions_resume_with_other_settings_is_refused_naming_them(tmp_path, inputs):
    run = tmp_path / "run"
    base = ["--input", inputs, "--out", str(run)]
    assert _captions(*base, "--k", "4").exit_code == 0
    for name in ("part-00001.stats.json", "part-00001.parquet"):               # one part lost
        (run / "captions" / name).unlink()
    manifest = (run / "manifest.json").read_text()
    r = _captions(*base, "--k", "1", "--no-swaps")
    assert r.exit_code == 1 and "k 4 (now 1)" in r.output and "swaps True (now False)" in r.output, r.output
    assert (run / "manifest.json").read_text() == manifest                      # a refused resume changes nothing
    r = _captions(*base, "--k", "4", "--seed", "5")
    assert r.exit_code == 1 and "seed 0 (now 5)" in r.output and "k 4" not in r.output
    assert not (run / "captions" / "part-00001.parquet").exists()
    assert _captions(*base, "--k", "4").exit_code == 0 and (run / "captions" / "part-00001.parquet").exists()
    for p in (run / "captions").glob("part-*"):                                 # every part lost: a new start
        p.unlink()
    assert _captions(*base, "--k", "1").exit_code == 0


def test_out_inside_input_is_refused_in_one_line(tmp_path, inputs):
    r = _captions("--input", inputs, "--out", str(Path(inputs) / "run"))
    assert r.exit_code == 1 and "is inside --input" in r.output, r.output
    assert not (Path(inputs) / "run").exists()


@pytest.fixture(scope="module")
def world_run(tmp_path_factory):
    """A tiny scene world through captions and images (scene editor, no filter)."""
    from cfgen.captions.stage import CaptionsConfig, run_captions
    from cfgen.images.stage import ImagesConfig, run_images
    from cfgen.world import world_vocab
    from cfgen.world.generate import WorldConfig, generate_world
    root = tmp_path_factory.mktemp("tiny_world")
    generate_world(root / "world", WorldConfig(n=16, n_test=4, per_shard=8, seed=3))
    run_captions(CaptionsConfig(input=[str(root / "world" / "train")], out=str(root / "run"),
                                rules_vocab=world_vocab()))
    s = run_images(ImagesConfig(run=str(root / "run"), filter=False))
    assert s["units_done"] == 2 and s["extra"]["cf_kept"] > 0
    return root / "run"


@pytest.fixture()
def world_copy(world_run, tmp_path):
    import shutil
    shutil.copytree(world_run, tmp_path / "run")
    return tmp_path / "run"


def test_an_images_resume_with_other_settings_or_thresholds_is_refused(world_copy):
    (world_copy / "images" / "part-00001.stats.json").unlink()
    r = CliRunner().invoke(main, ["images", "--run", str(world_copy), "--no-filter", "--seed", "1"])
    assert r.exit_code == 1 and "images parts were made with seed 0 (now 1)" in r.output, r.output
    r = CliRunner().invoke(main, ["images", "--run", str(world_copy), "--no-filter", "--store-size", "32"])
    assert r.exit_code == 1 and "store_size None (now 32)" in r.output and "cfgen filter" in r.output, r.output
    r = CliRunner().invoke(main, ["filter", "--run", str(world_copy), "--no-filter", "--store-size", "32"])
    assert r.exit_code == 0, r.output                                  # `cfgen filter` redoes every final part


def test_filter_with_another_image_format_is_one_line(world_copy, tmp_path):
    """It was `KeyError: 0`: the counterfactuals were looked up under the new extension."""
    recipe = _recipe(tmp_path, "images:\n  image_format: png\n")
    r = CliRunner().invoke(main, ["filter", "--run", str(world_copy), "--no-filter", "--config", recipe])
    assert r.exit_code == 1 and "image_format 'jpg' (now 'png')" in r.output, r.output
    assert "KeyError" not in r.output


# ------------------------------------------------------------------------------ item 13
def test_stats_naming_a_device_or_a_fifo_are_never_read(world_copy):
    """A shared run folder's stats name `../../dev/zero` and a FIFO as inputs: hashing them never
    ends. Only regular files inside the run are read; the unit is redone."""
    os.mkfifo(world_copy / "images" / "pipe")
    for name, bad in (("part-00000", "../../dev/zero"), ("part-00001", "images/pipe")):
        path = world_copy / "images" / f"{name}.stats.json"
        stats = json.loads(path.read_text())
        stats["files"]["inputs"][bad] = [1, "0" * 64]
        path.write_text(json.dumps(stats))
    r = _cli("images", "--run", str(world_copy), "--no-filter", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "redoing the unit" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------ item 17
def test_a_non_finite_filter_score_is_a_rejection_with_its_reason():
    from cfgen.images.filter import FilterConfig, verdict
    good = {"s_cf_tcf": 0.3, "margin": 0.05, "s_img": 0.8}
    assert verdict(good, FilterConfig()) == (True, "")
    for k in good:
        for bad in (float("nan"), float("inf"), None):
            assert verdict({**good, k: bad}, FilterConfig()) == (False, "filter_score_not_finite")
