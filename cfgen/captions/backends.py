"""Caption backends behind one interface: `generate(captions, keys) -> [Generation]`.

`rules` (no model), `transformers` (a local causal LM), `openai` (any OpenAI-compatible
server), `vllm` (offline batch inference; imported only when chosen). A caption the model
answered badly is REJECTED with its reason; a failure of the backend itself (a server that is
down, a dead engine, a CUDA error, out of memory) raises, or comes back as a FAILED generation,
and fails the whole unit: no row is written for it and a rerun retries it.
"""
from __future__ import annotations

import asyncio
import json
import os
import struct
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

from ..resources import prompts_dir
from ..datamodel import Status
from ..seeds import stable_seed
from ..distribute import WorkerBroken
from ..errors import redact, register_secret
from .parse import REWRITES_JSON_SCHEMA, parse_numbered, parse_structured


@dataclass
class Generation:
    """A backend's answer for one caption: candidates, or an error whose `status` says whether it
    is the model's output (REJECTED, e.g. unparseable) or the infrastructure (FAILED: the unit
    fails, and a rerun retries it)."""

    candidates: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    raw: str = ""
    status: Status = Status.REJECTED

    @classmethod
    def failed(cls, error: str) -> "Generation":
        return cls(error=redact(error)[:300], status=Status.FAILED)


class BackendError(ConnectionError):
    """The backend could not be reached or did not answer (server down, requests failing after
    their retries): the unit fails, and a rerun retries it."""


class Backend(Protocol):
    name: str

    def generate(self, captions: list[str], keys: list[str]) -> list[Generation]: ...


def default_prompt(structured: bool = False) -> Path:
    return prompts_dir() / ("rewrite_structured.txt" if structured else "rewrite.txt")


def render_prompt(template: str, caption: str, k: int) -> str:
    """Fill `{K}` and `{CAPTION}`; the caption is inserted verbatim as delimited data."""
    safe = caption.replace("<<<", "< < <").replace(">>>", "> > >")
    return template.replace("{K}", str(k)).replace("{CAPTION}", safe)


def request_seed(seed: int, key: str) -> int:
    return stable_seed(seed, key)


def to_generation(text: str, structured: bool) -> Generation:
    cands = parse_structured(text) if structured else [{"text": t} for t in parse_numbered(text)]
    return Generation(cands, "" if cands else "unparseable", text)


class TransformersBackend:
    """A local causal LM through transformers' generate (CPU-capable)."""

    name = "transformers"

    def __init__(self, model: str, template: str, k: int = 4, seed: int = 0, structured: bool = False,
                 max_new_tokens: int = 256, temperature: float = 0.8, top_p: float = 0.95,
                 batch_size: int = 8, device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(model, trust_remote_code=False)
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype, trust_remote_code=False).to(device).eval()
        self.template, self.k, self.seed, self.structured = template, k, seed, structured
        self.gen_kw = dict(max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                           pad_token_id=self.tok.pad_token_id)
        if temperature > 0:
            self.gen_kw.update(temperature=temperature, top_p=top_p)
        self.batch_size, self.device = batch_size, device

    def _prompt(self, caption: str) -> str:
        p = render_prompt(self.template, caption, self.k)
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                add_generation_prompt=True)
        return p

    def generate(self, captions: list[str], keys: list[str]) -> list[Generation]:
        out: list[Generation] = []
        for b in range(0, len(captions), self.batch_size):
            caps, ks = captions[b:b + self.batch_size], keys[b:b + self.batch_size]
            enc = self.tok([self._prompt(c) for c in caps], return_tensors="pt", padding=True).to(self.device)
            self.torch.manual_seed(request_seed(self.seed, ks[0]))
            with self.torch.no_grad():       # out of memory, a CUDA error: raised, the unit fails
                ids = self.model.generate(**enc, **self.gen_kw)
            texts = self.tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out.extend(to_generation(t, self.structured) for t in texts)
        return out


MAX_RESPONSE_BYTES = 8 << 20          # an answer of K rewrites is a few KB; a larger body is refused unread


class ResponseTooLarge(Exception):
    """A server's answer passed MAX_RESPONSE_BYTES."""


def api_key(env: str) -> str:
    """The API key in variable `env` (EMPTY when unset, as vLLM's server accepts), registered so
    that no stored or printed error can carry it."""
    key = os.environ.get(env, "")
    register_secret(key)
    return key or "EMPTY"


def http_reason(status: int) -> str:
    """A status code and its standard phrase: never the server's own words, which may quote the key."""
    try:
        return f"http_{status}: {HTTPStatus(status).phrase}"
    except ValueError:
        return f"http_{status}"


class OpenAIBackend:
    """Any OpenAI-compatible chat-completions server (`vllm serve`, SGLang, TGI...).

    A server is not trusted: each request has one deadline (`timeout`, however slowly the bytes
    come), its body is read up to MAX_RESPONSE_BYTES, errors keep the status code and never the
    body, and the key is redacted from the model's answers. Requests run on an event loop, so one
    Ctrl-C cancels all of them at once."""

    name = "openai"

    def __init__(self, model: str, template: str, base_url: str, k: int = 4, seed: int = 0,
                 structured: bool = False, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 16,
                 timeout: float = 120.0, retries: int = 4, backoff: float = 1.0,
                 max_new_tokens: int = 512, temperature: float = 0.8, top_p: float = 0.95):
        import httpx
        self.httpx = httpx
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key(api_key_env)}"}
        self.model, self.template, self.k, self.seed = model, template, k, seed
        self.structured, self.concurrency, self.timeout = structured, concurrency, timeout
        self.retries, self.backoff = retries, backoff
        self.params = dict(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p)

    async def _post(self, client: Any, body: dict[str, Any]) -> tuple[int, bytes]:
        """Status and body of one request; a body is read in chunks and refused past the cap."""
        async with client.stream("POST", "/chat/completions", json=body) as r:
            if r.status_code >= 400:
                return r.status_code, b""
            if int(r.headers.get("content-length") or 0) > MAX_RESPONSE_BYTES:
                raise ResponseTooLarge
            data = bytearray()
            async for chunk in r.aiter_bytes():
                data += chunk
                if len(data) > MAX_RESPONSE_BYTES:
                    raise ResponseTooLarge
            return r.status_code, bytes(data)

    async def _one(self, client: Any, slots: Any, caption: str, key: str) -> Generation:
        body: dict[str, Any] = {"model": self.model, "seed": request_seed(self.seed, key),
                                "messages": [{"role": "user", "content": render_prompt(self.template, caption, self.k)}],
                                **self.params}
        if self.structured:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "rewrites", "schema": REWRITES_JSON_SCHEMA}}
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                async with slots:                   # the deadline starts when the request is sent
                    status, data = await asyncio.wait_for(self._post(client, body), self.timeout)
            except (TimeoutError, self.httpx.TimeoutException):
                last = "timeout"
                continue
            except ResponseTooLarge:
                return Generation.failed(f"response_too_large: over {MAX_RESPONSE_BYTES} bytes")
            except self.httpx.HTTPError as e:
                last = f"http_error: {type(e).__name__}"
                continue
            if status == 429 or status >= 500:
                last = http_reason(status)
                continue
            if status >= 400:
                return Generation.failed(http_reason(status))
            try:
                text = json.loads(data)["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                last = "bad_response"
                continue
            return to_generation(redact(str(text)), self.structured)
        return Generation.failed(f"backend_error: {last} after {self.retries + 1} tries")

    def generate(self, captions: list[str], keys: list[str]) -> list[Generation]:
        """All requests in flight (up to `concurrency`); the first one still failing after its
        retries cancels the rest and fails the unit, so a server that is down fails fast."""
        return asyncio.run(self._generate(captions, keys))

    async def _generate(self, captions: list[str], keys: list[str]) -> list[Generation]:
        slots = asyncio.Semaphore(self.concurrency)
        async with self.httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, headers=self.headers,
                                          limits=self.httpx.Limits(max_connections=self.concurrency)) as client:
            tasks = [asyncio.ensure_future(self._one(client, slots, c, k)) for c, k in zip(captions, keys)]
            try:
                for f in asyncio.as_completed(tasks):
                    g = await f
                    if g.status == Status.FAILED:
                        raise BackendError(f"{self.base_url}: {g.error}")
                return [t.result() for t in tasks]
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


# `captions.vllm_engine`: the vllm.LLM options a recipe may set, with their types. Scalars
# only: others can run code (trust_remote_code, worker_cls, a distributed_executor_backend or
# logits processor named by its import path) or reach other files (download_dir, hf_overrides).
VLLM_ENGINE_OPTIONS: dict[str, tuple[type, ...]] = {
    "gpu_memory_utilization": (float, int), "max_model_len": (int,), "max_num_seqs": (int,),
    "max_num_batched_tokens": (int,), "enable_chunked_prefill": (bool,), "enable_prefix_caching": (bool,),
    "dtype": (str,), "kv_cache_dtype": (str,), "quantization": (str,), "enforce_eager": (bool,),
    "pipeline_parallel_size": (int,), "swap_space": (float, int), "cpu_offload_gb": (float, int),
    "block_size": (int,), "disable_custom_all_reduce": (bool,), "revision": (str,),
}


def vllm_engine_options(engine: dict[str, Any]) -> dict[str, Any]:
    """The recipe's engine options, each declared in VLLM_ENGINE_OPTIONS with a value of its type."""
    for name, value in engine.items():
        if name not in VLLM_ENGINE_OPTIONS:
            raise ValueError(f"captions.vllm_engine: {name!r} is not an engine option cfgen passes to vLLM "
                             f"(allowed: {', '.join(sorted(VLLM_ENGINE_OPTIONS))})")
        want = VLLM_ENGINE_OPTIONS[name]
        if not isinstance(value, want) or (isinstance(value, bool) and bool not in want):
            raise ValueError(f"captions.vllm_engine: {name} must be {' or '.join(t.__name__ for t in want)}, "
                             f"got {type(value).__name__}")
    return dict(engine)


class VLLMBackend:
    """Offline batch inference with `vllm.LLM` (GPU only; prefix caching on: the prompt is shared).

    The stage hands it a whole unit per call (`whole_unit`), so vLLM's scheduler keeps its batch
    full; engine options (`max_num_seqs`, `gpu_memory_utilization`, `max_model_len`, ...) come
    from the recipe's `captions.vllm_engine` (only those in VLLM_ENGINE_OPTIONS) and otherwise keep
    vLLM's own defaults.

    Sampling is seeded once, for the engine (`LLM(seed=...)`): a per-request
    `SamplingParams(seed=...)` gives each request its own torch.Generator, and vLLM then leaves
    its FlashInfer top-k/top-p sampler for the PyTorch one (vllm/v1/sample/ops/topk_topp_sampler.py,
    `TopKTopPSampler.forward_cuda`). A run is reproduced by the same units in the same order;
    the draws of a unit depend on what the engine sampled before it in this process.
    A dead engine (EngineDeadError: its core process is gone, after a CUDA error or out of
    memory) cannot serve this process again: WorkerBroken, the unit and the rest are failed for
    a rerun, which starts a new engine."""

    name = "vllm"
    whole_unit = True

    def __init__(self, model: str, template: str, k: int = 4, seed: int = 0, structured: bool = False,
                 tensor_parallel_size: int = 1, max_new_tokens: int = 512, temperature: float = 0.8,
                 top_p: float = 0.95, engine: dict[str, Any] | None = None):
        try:
            import vllm
            from vllm.v1.engine.exceptions import EngineDeadError
        except ImportError as e:
            raise RuntimeError("the vllm backend needs vLLM and a GPU: pip install 'cfgen[gpu]'") from e
        self.engine_dead = EngineDeadError
        self.llm = vllm.LLM(**{"model": model, "tensor_parallel_size": tensor_parallel_size, "seed": seed,
                               "enable_prefix_caching": True, **vllm_engine_options(engine or {})})
        self.template, self.k, self.structured = template, k, structured
        kw: dict[str, Any] = dict(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
        if structured:
            from vllm.sampling_params import StructuredOutputsParams
            kw["structured_outputs"] = StructuredOutputsParams(json=REWRITES_JSON_SCHEMA)
        self.sampling = vllm.SamplingParams(**kw)

    def generate(self, captions: list[str], keys: list[str]) -> list[Generation]:
        convs = [[{"role": "user", "content": render_prompt(self.template, c, self.k)}] for c in captions]
        try:
            outs = self.llm.chat(convs, self.sampling, use_tqdm=False)
        except self.engine_dead as e:
            raise WorkerBroken(f"vLLM engine died: {e}") from e
        return [to_generation(o.outputs[0].text if o.outputs else "", self.structured) for o in outs]


DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}


def checkpoint_weights(model: str, dtype: str = "auto") -> tuple[int, str] | None:
    """Bytes the weights of a checkpoint take on the GPUs, and in which dtype, read before
    anything is loaded: `metadata.total_size` of `model.safetensors.index.json` (or the header of
    a single `model.safetensors`) in the checkpoint's own dtype (config.json `torch_dtype`, or
    `dtype` as transformers 5 writes it), scaled to the dtype vLLM loads (`dtype` "auto": the
    config's, float32 becomes 2-byte half precision, bfloat16 on CUDA). Quantized checkpoints: as stored. None when the
    checkpoint's files cannot be read here."""
    cfg = _checkpoint_json(model, "config.json")
    index = _checkpoint_json(model, "model.safetensors.index.json")
    if cfg is None:
        return None
    if index is not None:
        stored = int(index["metadata"]["total_size"])
    elif (Path(model) / "model.safetensors").is_file():
        stored = _safetensors_bytes(Path(model) / "model.safetensors")
    else:
        return None
    text = cfg.get("text_config") or {}
    own = str(cfg.get("torch_dtype") or cfg.get("dtype") or text.get("torch_dtype") or text.get("dtype")
              or "float32").removeprefix("torch.")
    if "quantization_config" in cfg:
        return stored, "quantized"
    load = ("bfloat16" if own == "float32" else own) if dtype == "auto" else dtype
    if own not in DTYPE_BYTES or load not in DTYPE_BYTES:        # e.g. fp8 weights: as stored
        return stored, own
    return stored * DTYPE_BYTES[load] // DTYPE_BYTES[own], load


def _checkpoint_json(model: str, name: str) -> dict[str, Any] | None:
    """A small JSON file of a local checkpoint, or of a Hub one (downloaded to the cache, as
    vLLM would; None offline when it is not cached, or when the checkpoint has no such file)."""
    path: Any = Path(model) / name
    if not Path(model).is_dir():
        try:
            from huggingface_hub import hf_hub_download
            path = hf_hub_download(model, name)
        except Exception:
            return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _safetensors_bytes(path: Path) -> int:
    """Tensor bytes of one safetensors file, from its header (8-byte length, then JSON with each
    tensor's `data_offsets`), without reading the tensors."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return sum(t["data_offsets"][1] - t["data_offsets"][0] for k, t in header.items() if k != "__metadata__")
