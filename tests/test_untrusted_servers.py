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
from tests.conftest import jpeg_bytes, write_tar

KEY = "sk-test-0123456789abcdef"
SERVER = Path(__file__).parent / "fake_openai_server.py"


@pytest.fixture()
def inputs(tmp_path):
    caps = ["a red car on a road", "a red car near a tree"]
    for s in range(2):
        members = []
        for i, c in enumerate(caps):
            members += [(f"{s:05d}{i:04d}.jpg", jpeg_bytes()), (f"{s:05d}{i:04d}.txt", c.encode())]
        write_tar(tmp_path / "in" / f"{s:05d}.tar", members)
    return str(tmp_path / "in")


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
    rows = [row for p in sorted((tmp_path / "run" / "captions").glob("*.parquet")) for row in pq.read_table(p).to_pylist()]
    assert any("Bearer [redacted]" in (row["text"] or "") for row in rows)      # the server saw the key; the data does not


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
    from cfgen.distribute import _short
    from cfgen.errors import describe, redact, register_secret
    register_secret(KEY)
    e = ValueError(f"server said: Authorization: Bearer {KEY}")
    assert KEY not in describe(e) and KEY not in _short(e) and "[redacted]" in redact(str(e))


# ------------------------------------------------------------------------------ item 12
def _hostile(tmp_path: Path, inputs: str, url: str, timeout: float) -> subprocess.CompletedProcess:
    recipe = _recipe(tmp_path, "captions:\n  request_retries: 0\n  retries: 0\n  timeout: 2\n")
    return _cli("captions", "--input", inputs, "--out", str(tmp_path / "run"), "--backend", "openai",
                "--model", "fake", "--base-url", url, "--config", recipe, timeout=timeout)


def test_a_server_that_trickles_bytes_hits_the_request_deadline(tmp_path, inputs, server):
    """A byte every 0.5 s never trips a per-read timeout of 2 s; the deadline is per request."""
    url, _ = server("trickle")
    t0 = time.time()
    r = _hostile(tmp_path, inputs, url, timeout=30)
    assert r.returncode == 1 and "backend_error: timeout" in r.stderr, r.stderr
    assert time.time() - t0 < 15 and "Traceback" not in r.stderr


def test_a_huge_answer_is_refused_unread(tmp_path, inputs, server):
    url, _ = server("huge")
    r = _hostile(tmp_path, inputs, url, timeout=60)
    assert r.returncode == 1 and "response_too_large" in r.stderr, r.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_one_ctrl_c_stops_requests_in_flight_with_one_line(tmp_path, inputs, server, workers):
    """A terminal's Ctrl-C goes to the whole process group: workers included."""
    url, srv = server("hang")
    p = subprocess.Popen([sys.executable, "-m", "cfgen.cli", "captions", "--input", inputs, "--out",
                          str(tmp_path / "run"), "--backend", "openai", "--model", "fake", "--base-url", url,
                          "--workers", workers], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        for _ in range(int(workers)):
            assert srv.stdout.readline().strip() == "request"      # every worker's requests are in flight
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode != 0 and "Traceback" not in err, err
    assert "Aborted!" in err and len([line for line in err.splitlines() if line.strip()]) <= 3, err


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
