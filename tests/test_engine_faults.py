"""#23 items 4, 5, 8 (and 9's vLLM seeding and the transformers backend's GPUs): an engine or a
device that fails fails its unit (exit != 0) and a rerun finishes it with the output an
uninterrupted run gives; vLLM is given GPUs and refuses weights that cannot fit in them.

vLLM and NVML cannot run here: stand-in `vllm` and `pynvml` modules answer as they do, by
their call contracts:
  vllm/v1/engine/core_client.py (MPClient._format_exception, ensure_alive): once the engine core
    process is gone, every call raises vllm.v1.engine.exceptions.EngineDeadError;
  vllm/entrypoints/llm.py `LLM.chat(messages, sampling_params, use_tqdm=...)`, one SamplingParams
    for every conversation allowed; `LLM(seed=...)` seeds the engine; each answer a RequestOutput
    with `prompt_token_ids` and `outputs[0]`, a CompletionOutput with `text` and `token_ids`
    (vllm/outputs.py; here a token is a word);
  pynvml: nvmlInit / nvmlDeviceGetCount / nvmlDeviceGetHandleByIndex / nvmlDeviceGetMemoryInfo(h).total
    (bytes), as vllm/platforms/cuda.py reads GPU memory.
A checkpoint's size comes from its files as transformers and huggingface_hub write them:
  model.safetensors.index.json {"metadata": {"total_size": bytes}, "weight_map": {...}}
  (huggingface_hub/serialization/_base.py, `metadata={"total_size": total_size}`), and the
  dtype from config.json `torch_dtype`.
"""
import json
import os
import re
import socket
import subprocess
import sys
import types
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cfgen.cli import main
from tests.conftest import caption_shards

GPU_BYTES = 80 * 2 ** 30            # an 80 GiB GPU: 85.9 GB
WEIGHTS = 145_400_000_000           # ~72.7 B bfloat16 parameters x 2 bytes: the ~145 GB of Qwen2-72B


def _answer(conv) -> str:
    """Two rewrites of the caption; to a judge prompt (prompts/judge.txt), as the fake OpenAI
    server answers: by the stated edit's `to`, "square" and "truck" a no, "green" neither."""
    prompt = conv[-1]["content"]
    stated = re.search(r"Stated edit \((.*?)\): <<<(.*?)>>> -> <<<(.*?)>>>", prompt)
    if stated:
        to = stated.group(3)
        return "No - not that one" if to in ("square", "truck") else "Perhaps." if to == "green" else "Yes."
    caption = re.search(r"<<<(.*?)>>>", prompt, re.S).group(1)
    return f"1. {caption.replace('red', 'blue')}\n2. {caption.replace('car', 'truck')}"


def _output(conv) -> types.SimpleNamespace:
    text = _answer(conv)
    return types.SimpleNamespace(prompt_token_ids=list(range(len(conv[-1]["content"].split()))),
                                 outputs=[types.SimpleNamespace(text=text, token_ids=list(range(len(text.split()))))])


@pytest.fixture()
def engine(monkeypatch):
    """Stand-in vLLM (records what it is asked; its engine dies on chat call number `die_at`)
    and NVML (`n_gpus` GPUs of 80 GiB)."""
    state = {"init": [], "visible": [], "chat": 0, "params": [], "die_at": None, "n_gpus": 8}

    class EngineDeadError(Exception):
        pass

    class LLM:
        def __init__(self, **kw):
            state["init"].append(kw)
            state["visible"].append(os.environ.get("CUDA_VISIBLE_DEVICES"))

        def chat(self, messages, sampling_params, use_tqdm=True):
            state["chat"] += 1
            state["params"].append(sampling_params)
            if state["chat"] == state["die_at"]:
                raise EngineDeadError("EngineCore encountered an issue. See stack trace (above) for the root cause.")
            return [_output(c) for c in messages]

    mods = {name: types.ModuleType(name) for name in
            ("vllm", "vllm.sampling_params", "vllm.v1", "vllm.v1.engine", "vllm.v1.engine.exceptions", "pynvml")}
    mods["vllm"].LLM, mods["vllm"].SamplingParams = LLM, lambda **kw: dict(kw)
    mods["vllm.sampling_params"].StructuredOutputsParams = lambda **kw: dict(kw)
    mods["vllm.v1.engine.exceptions"].EngineDeadError = EngineDeadError
    nvml = mods["pynvml"]
    nvml.nvmlInit = nvml.nvmlShutdown = lambda: None
    nvml.nvmlDeviceGetCount = lambda: state["n_gpus"]

    def handle(i):
        assert 0 <= i < state["n_gpus"]
        return i
    nvml.nvmlDeviceGetHandleByIndex = handle
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=GPU_BYTES, free=GPU_BYTES, used=0)
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return state


def _checkpoint(d: Path, total_size: int) -> str:
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                                               "num_attention_heads": 64, "num_key_value_heads": 8,
                                               "num_hidden_layers": 80, "torch_dtype": "bfloat16"}))
    (d / "model.safetensors.index.json").write_text(json.dumps({
        "metadata": {"total_size": total_size},
        "weight_map": {"lm_head.weight": "model-00037-of-00037.safetensors",
                       "model.embed_tokens.weight": "model-00001-of-00037.safetensors"}}))
    return str(d)


@pytest.fixture()
def checkpoint(tmp_path):
    return _checkpoint(tmp_path / "qwen2-72b-like", WEIGHTS)


@pytest.fixture()
def inputs(tmp_path):
    caps = ["a red car on a road", "a red car near a tree", "a red car in the snow"]
    return caption_shards(tmp_path / "in", caps)                # two input shards: units 0 and 1


def _parts(run: Path) -> dict[str, list[dict]]:
    return {p.name: pq.read_table(p).to_pylist() for p in sorted((run / "captions").glob("part-*.parquet"))}


def _captions(*args: str):
    return CliRunner().invoke(main, ["captions", *args])


def test_vllm_gets_the_gpus_it_is_given_and_refuses_weights_that_cannot_fit(tmp_path, engine, checkpoint, inputs):
    base = ["--input", inputs, "--backend", "vllm", "--model", checkpoint, "--k", "2"]
    r = _captions(*base, "--out", str(tmp_path / "one"), "--gpus", "0")
    # 145.4e9 bytes on 1 GPU; vLLM may use 0.9 x 85.9 GB = 77.3 GB of it; ceil(145.4 / 77.3) = 2 GPUs
    assert r.exit_code == 1, r.output
    assert "145.4 GB of bfloat16 weights" in r.output and "tensor parallel size 1" in r.output
    assert "77.3 GB" in r.output and "at least 2 GPUs" in r.output
    assert engine["init"] == []                                # refused before vLLM loads anything
    r = _captions(*base, "--out", str(tmp_path / "tp4"), "--gpus", "0-1", "--tensor-parallel-size", "4")
    assert r.exit_code == 1 and "tensor parallel size 4 needs 4 GPU(s), 2 visible" in r.output
    assert engine["init"] == []

    r = _captions(*base, "--out", str(tmp_path / "two"), "--gpus", "0-1", "--seed", "7")
    assert r.exit_code == 0, r.output                          # 72.7 GB per GPU
    assert [kw["tensor_parallel_size"] for kw in engine["init"]] == [2]
    assert engine["visible"] == ["0,1"] and "CUDA_VISIBLE_DEVICES" not in os.environ
    # #23 item 9: the engine is seeded; no per-request seed (it takes vLLM off FlashInfer's sampler)
    assert engine["init"][0]["seed"] == 7
    assert engine["params"] and all(isinstance(p, dict) and "seed" not in p for p in engine["params"])


def test_weights_of_a_single_file_float32_checkpoint_as_vllm_loads_them(tmp_path):
    """No index: the header of model.safetensors (as safetensors writes it); vLLM's dtype "auto"
    loads a float32 checkpoint in 2-byte half precision (vllm/config.py `_get_and_verify_dtype`:
    float16 before v0.10.1, the platform's half type, bfloat16 on CUDA, since)."""
    import torch
    from safetensors.torch import save_file
    from cfgen.captions.backends import checkpoint_weights
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "float32"}))
    save_file({"w": torch.zeros(10, 10), "b": torch.zeros(5)}, str(tmp_path / "model.safetensors"))
    assert checkpoint_weights(str(tmp_path)) == (105 * 2, "bfloat16")           # 105 parameters
    assert checkpoint_weights(str(tmp_path), "float32") == (105 * 4, "float32")


def test_a_dead_vllm_engine_fails_the_unit_and_a_rerun_finishes_it(tmp_path, engine, inputs):
    small = _checkpoint(tmp_path / "small", 1_000_000_000)         # fits one GPU: no --gpus needed
    base = ["--input", inputs, "--backend", "vllm", "--model", small, "--k", "2"]
    assert _captions(*base, "--out", str(tmp_path / "ref")).exit_code == 0
    ref = _parts(tmp_path / "ref")
    assert set(ref) == {"part-00000.parquet", "part-00001.parquet"}

    engine.update(chat=0, die_at=2)                            # the engine dies during unit 1
    run = tmp_path / "run"
    r = _captions(*base, "--out", str(run))
    assert r.exit_code != 0 and "part-00001" in r.output and "engine" in r.output.lower()
    assert (run / "captions" / "part-00000.stats.json").exists()
    assert not (run / "captions" / "part-00001.stats.json").exists()      # not done
    assert not (run / "captions" / "part-00001.parquet").exists()         # no failure rows in its place
    assert "part-00001" in json.loads((run / "captions" / "failed.json").read_text())
    assert engine["chat"] == 2                                 # a dead engine is not asked again

    engine.update(chat=0, die_at=None)                         # a new process, a new engine
    r = _captions(*base, "--out", str(run))
    assert r.exit_code == 0, r.output
    assert engine["chat"] == 1                                 # unit 1 only
    assert _parts(run) == ref


def test_units_an_older_cfgen_marked_done_with_backend_failures_are_redone(tmp_path, engine, inputs):
    """What the old stage wrote when the engine died: one FAILED row per caption (reason
    `backend_error: ...`), stats `failed: {backend_error: n}`, the unit marked done."""
    from cfgen.captions.stage import CaptionsConfig
    from cfgen.datamodel import FAILED, rewrites_to_table
    from cfgen.io.reader import expand_inputs, read_unit
    from cfgen.run import Ledger, UnitStats, plan_units
    from cfgen.io.writer import atomic_write_parquet
    small = _checkpoint(tmp_path / "small", 1_000_000_000)
    base = ["--input", inputs, "--backend", "vllm", "--model", small, "--k", "2"]
    assert _captions(*base, "--out", str(tmp_path / "ref")).exit_code == 0
    run = tmp_path / "run"
    assert _captions(*base, "--out", str(run)).exit_code == 0
    cfg = CaptionsConfig(input=[inputs], out=str(run))
    unit = plan_units(expand_inputs(cfg.input), cfg.input_config())[1]
    stats, rows = UnitStats(unit.index), []
    for rec in read_unit(unit, cfg.input_config()):
        rows.append((rec.anchor, None, FAILED, "backend_error: EngineDeadError: EngineCore encountered an issue."))
        stats.add(FAILED, "backend_error")
    part = run / "captions" / f"{unit.name}.parquet"
    atomic_write_parquet(part, rewrites_to_table(rows))
    Ledger(run, "captions").mark_done(unit, stats, outputs=[part])

    engine["chat"] = 0
    r = _captions(*base, "--out", str(run))
    assert r.exit_code == 0, r.output
    assert engine["chat"] == 1                                 # that unit only, through the engine again
    assert _parts(run) == _parts(tmp_path / "ref")


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_an_openai_server_that_is_down_fails_the_unit_and_a_rerun_finishes_it(tmp_path, inputs):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("captions:\n  request_retries: 0\n  timeout: 5\n")
    base = ["--input", inputs, "--backend", "openai", "--model", "fake", "--k", "2", "--config", str(recipe)]
    run = tmp_path / "run"
    r = _captions(*base, "--out", str(run), "--base-url", f"http://127.0.0.1:{_closed_port()}/v1")
    assert r.exit_code != 0 and "ConnectError" in r.output, r.output
    assert not list((run / "captions").glob("*.stats.json")) and not list((run / "captions").glob("*.parquet"))
    server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "fake_openai_server.py"), "ok"],
                              stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1"
        assert _captions(*base, "--out", str(tmp_path / "ref"), "--base-url", url).exit_code == 0
        r = _captions(*base, "--out", str(run), "--base-url", url)
        assert r.exit_code == 0, r.output
    finally:
        server.kill()
    assert _parts(run) == _parts(tmp_path / "ref") and len(_parts(run)) == 2


def test_captions_gpus_go_to_transformers_workers_and_to_the_vllm_engine(tmp_path, monkeypatch, engine, checkpoint,
                                                                         inputs):
    """#23 item 9: the transformers backend gets the GPUs (one worker each, which the local
    distributor pins as cuda:0); vLLM takes all of them in this process."""
    import cfgen.captions.stage
    seen = []
    monkeypatch.setattr(cfgen.captions.stage, "run_units", lambda job, units, ledger, **kw: (seen.append(kw),
                                                                                      {"units_failed": {}})[1])
    lm = tmp_path / "lm"
    lm.mkdir()
    (lm / "config.json").write_text("{}")
    base = ["--input", inputs, "--out", str(tmp_path / "run")]
    assert _captions(*base, "--backend", "transformers", "--model", str(lm), "--gpus", "0,1").exit_code == 0
    assert _captions(*base, "--backend", "vllm", "--model", checkpoint, "--gpus", "0,1").exit_code == 0
    assert [kw["gpus"] for kw in seen] == [["0", "1"], None]
    r = _captions(*base, "--backend", "rules", "--gpus", "0")
    assert r.exit_code == 1 and "--gpus is for --backend transformers or vllm" in r.output


# ------------------------------------------------------------------ item 8: fatal device errors
_POISONED = False


def _scorer_job(unit, device):
    """Like EditJob with a CLIP scorer that hits a sticky CUDA error: the first process to run a
    unit is poisoned, and every later call in that process fails the same way."""
    global _POISONED
    d = Path(os.environ["CFGEN_TEST_DIR"])
    (d / f"{os.getpid()}-{unit.index}").write_text(device)
    if _POISONED or not (d / "first").exists():
        (d / "first").touch()
        _POISONED = True
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    return {"unit": unit.index, "in": 1, "kept": 1, "rejected": {}, "failed": {}}


def test_a_cuda_error_outside_the_editor_replaces_the_worker(tmp_path, monkeypatch):
    from cfgen.run.distribute import distribute_local
    from cfgen.run import Unit
    monkeypatch.setenv("CFGEN_TEST_DIR", str(tmp_path))
    failures = distribute_local(_scorer_job, [Unit(index=0, path="x", kind="wds")], gpus=["0"], retries=2)
    assert failures == {}
    runs = sorted(p for p in tmp_path.iterdir() if p.name != "first")
    assert len({p.name.split("-")[0] for p in runs}) == 2           # a fresh process did the retry
    assert {p.read_text() for p in runs} == {"cuda:0"}              # each GPU worker sees its one GPU


def test_a_fatal_device_error_in_process_fails_the_rest_for_a_rerun():
    from cfgen.run.distribute import distribute_sequential
    from cfgen.run import Unit
    calls = []

    def job(unit, device):
        calls.append(unit.index)
        if unit.index == 1:
            try:
                raise RuntimeError("CUDA error: device-side assert triggered")
            except RuntimeError as e:
                raise ValueError("could not score the counterfactuals") from e     # wrapped by a library
        return {"unit": unit.index, "in": 1, "kept": 1, "rejected": {}, "failed": {}}
    units = [Unit(index=i, path="x", kind="wds") for i in range(3)]
    failures = distribute_sequential(job, units, retries=2)
    assert calls == [0, 1]                      # not retried, nothing more run on the poisoned device
    assert set(failures) == {1, 2} and "device is unusable" in failures[2]


class _OomThenFreeFails:
    """An editor out of memory, on a device whose cache cannot even be freed any more."""

    def edit(self, anchor, rewrites, seeds, batch_size=None):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_a_fatal_device_error_while_freeing_the_cache_is_not_an_anchor_failure(monkeypatch):
    """#23 item 8: after an out of memory, edit_anchors frees the cache; a sticky CUDA error
    there was kept as that anchor's failure and the poisoned worker went on."""
    import torch
    from cfgen.run import WorkerBroken
    from cfgen.images.stage import edit_anchors

    def empty_cache():
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", empty_cache)
    with pytest.raises(WorkerBroken, match="illegal memory access"):
        edit_anchors(_OomThenFreeFails(), [(None, [1], [0])])


class _PoisonOnce:
    """A job whose first process is poisoned (a sticky CUDA error on every call), as `_scorer_job`;
    picklable for Ray, the marker folder travelling with it."""

    def __init__(self, folder: str):
        self.folder = folder

    def setup(self, device):
        """No model."""

    def __call__(self, unit, device):
        global _POISONED
        d = Path(self.folder)
        (d / f"{os.getpid()}-{unit.index}").touch()
        if _POISONED or not (d / "first").exists():
            (d / "first").touch()
            _POISONED = True
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return {"unit": unit.index, "in": 1, "kept": 1, "rejected": {}, "failed": {}}


@pytest.mark.slow
def test_a_cuda_error_replaces_the_ray_actor(tmp_path):
    """#23 item 8: the Ray distributor kept a poisoned actor (every retry failed on it)."""
    ray = pytest.importorskip("ray")
    from cfgen.run.distribute_ray import distribute_ray
    from cfgen.run import Unit
    here = Path(__file__).parent              # this module, under the name pytest imported it by
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(here.parent), str(here)])}})
    try:
        failures = distribute_ray(_PoisonOnce(str(tmp_path)), [Unit(index=0, path="x", kind="wds")], retries=2)
    finally:
        ray.shutdown()
    assert failures == {}
    runs = [p for p in tmp_path.iterdir() if p.name != "first"]
    assert len({p.name.split("-")[0] for p in runs}) == 2              # a fresh actor did the retry


def test_vllm_engine_options_come_from_a_declared_list(tmp_path, engine, inputs):
    """#25 item 1: `captions.vllm_engine` went to vllm.LLM as it was, so a recipe could set
    trust_remote_code (or a worker class by import path); only declared options, of their types."""
    small = _checkpoint(tmp_path / "small", 1_000_000_000)
    base = ["--input", inputs, "--backend", "vllm", "--model", small, "--k", "2"]
    for bad, says in (("trust_remote_code: true", "'trust_remote_code' is not an engine option"),
                      ("worker_cls: evil.Worker", "'worker_cls' is not an engine option"),
                      ("gpu_memory_utilization: {a: 1}", "gpu_memory_utilization must be float or int")):
        recipe = tmp_path / "r.yaml"
        recipe.write_text(f"captions:\n  vllm_engine:\n    {bad}\n")
        r = _captions(*base, "--out", str(tmp_path / "run"), "--config", str(recipe))
        assert r.exit_code == 1 and says in r.output, r.output
        assert engine["init"] == []                                     # refused before vLLM is started
    from cfgen.captions.backends import VLLMBackend
    with pytest.raises(ValueError, match="trust_remote_code"):
        VLLMBackend(small, "{CAPTION}", engine={"trust_remote_code": True})
    assert engine["init"] == []
    recipe.write_text("captions:\n  vllm_engine:\n    gpu_memory_utilization: 0.8\n    max_num_seqs: 64\n")
    r = _captions(*base, "--out", str(tmp_path / "run"), "--config", str(recipe))
    assert r.exit_code == 0, r.output
    assert engine["init"][0]["gpu_memory_utilization"] == 0.8 and engine["init"][0]["max_num_seqs"] == 64
