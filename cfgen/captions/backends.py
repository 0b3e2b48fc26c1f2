"""Caption backends behind one interface (`Backend`): `generate(captions, keys) -> [Generation]`,
and for a backend with a model, `judge(items) -> [JudgeVerdict]` (`--judge`).

`rules` (no model), `transformers` (a local causal LM), `openai` (any OpenAI-compatible
server), `vllm` (offline batch inference; imported only when chosen). A caption the model
answered badly is REJECTED with its reason; a failure of the backend itself (a server that is
down, a dead engine, a CUDA error, out of memory) raises, or comes back as a FAILED generation,
and fails the whole unit: no row is written for it and a rerun retries it. The judge's calls
fail the same way; its answers are parsed, and one that says neither yes nor no is a `None` verdict.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import struct
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

from ..resources import prompts_dir
from ..datamodel import Edit, Status
from ..seeds import stable_seed
from ..errors import redact, register_secret
from ..run import WorkerBroken
from .parse import REWRITES_JSON_SCHEMA, parse_numbered, parse_structured, parse_verdict


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


@dataclass(frozen=True)
class JudgeItem:
    """A kept rewrite put to the judge, with the edit the validator found in it (the stated edit)."""

    original: str
    rewrite: str
    edit: Edit


@dataclass(frozen=True)
class JudgeVerdict:
    """The judge's answer on one rewrite: `ok` True (yes), False (no, with its short `reason`) or
    None (neither: a rejection too, never a silent keep); the tokens it cost."""

    ok: bool | None
    reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


JUDGE_MAX_TOKENS = 48                 # "no - " and a reason of about ten words


class Backend(Protocol):
    """What the captions stage asks of a backend. The optional abilities are declared here with
    their defaults, and a backend names this class as a base to inherit them, so the stage reads
    them instead of probing:
    `whole_unit`: the stage hands it a whole unit per call (vLLM keeps its batch full that way);
    otherwise `--batch-size` captions per call.
    `judges`: it has a model that answers `judge(items)` (`--judge`); read from the class, so a
    run is refused before any model loads."""

    name: str
    whole_unit: bool = False
    judges: bool = False

    def generate(self, captions: list[str], keys: list[str]) -> list[Generation]:
        """One Generation per caption, in order: candidates, or REJECTED with the model's error;
        a failure of the backend itself raises (or is FAILED) and fails the unit."""
        ...

    def judge(self, items: list[JudgeItem]) -> list[JudgeVerdict]:
        """One JudgeVerdict per item, in order, sampled greedily; a failure of the backend raises."""
        raise TypeError(f"the {self.name} backend has no model to judge rewrites with")


def default_prompt(structured: bool = False) -> Path:
    return prompts_dir() / ("rewrite_structured.txt" if structured else "rewrite.txt")


def default_judge_prompt() -> Path:
    return prompts_dir() / "judge.txt"


def _delimited(text: str) -> str:
    """Text inserted verbatim between <<< and >>>, unable to close or open a delimiter."""
    return text.replace("<<<", "< < <").replace(">>>", "> > >")


def render_prompt(template: str, caption: str, k: int) -> str:
    """Fill `{K}` and `{CAPTION}`; the caption is inserted verbatim as delimited data."""
    return template.replace("{K}", str(k)).replace("{CAPTION}", _delimited(caption))


_JUDGE_FIELD = re.compile(r"\{(ORIGINAL|REWRITE|EDIT_TYPE|EDIT_FROM|EDIT_TO)\}")


def render_judge_prompt(template: str, item: JudgeItem) -> str:
    """Fill `{ORIGINAL}`, `{REWRITE}`, `{EDIT_TYPE}`, `{EDIT_FROM}`, `{EDIT_TO}` in one pass (a
    caption that quotes a placeholder stays as written), each as delimited data."""
    values = {"ORIGINAL": item.original, "REWRITE": item.rewrite, "EDIT_TYPE": item.edit.type,
              "EDIT_FROM": item.edit.from_, "EDIT_TO": item.edit.to}
    return _JUDGE_FIELD.sub(lambda m: _delimited(values[m.group(1)]), template)


def to_verdict(text: str, prompt_tokens: int, completion_tokens: int) -> JudgeVerdict:
    ok, reason = parse_verdict(text)
    return JudgeVerdict(ok, redact(reason), prompt_tokens, completion_tokens)


def request_seed(seed: int, key: str) -> int:
    return stable_seed(seed, key)


def to_generation(text: str, structured: bool) -> Generation:
    cands = parse_structured(text) if structured else [{"text": t} for t in parse_numbered(text)]
    return Generation(cands, "" if cands else "unparseable", text)


class TransformersBackend(Backend):
    """A local causal LM through transformers' generate (CPU-capable)."""

    name = "transformers"
    judges = True

    def __init__(self, model: str, template: str, k: int = 4, seed: int = 0, structured: bool = False,
                 max_new_tokens: int = 256, temperature: float = 0.8, top_p: float = 0.95,
                 batch_size: int = 8, device: str = "cpu", judge_template: str | None = None):
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
        self.judge_kw = dict(max_new_tokens=JUDGE_MAX_TOKENS, do_sample=False, pad_token_id=self.tok.pad_token_id)
        self.judge_template = judge_template or default_judge_prompt().read_text()
        eos = self.model.generation_config.eos_token_id
        self.stop_ids = sorted({self.tok.pad_token_id, *(eos if isinstance(eos, list) else [eos])} - {None})
        self.batch_size, self.device = batch_size, device

    def _chat(self, content: str) -> str:
        if self.tok.chat_template:
            return self.tok.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                add_generation_prompt=True)
        return content

    def _complete(self, prompts: list[str], gen_kw: dict[str, Any],
                  keys: list[str] | None = None) -> list[tuple[str, int, int]]:
        """(text, prompt tokens, completion tokens) of each prompt, `batch_size` at a time; with
        `keys`, each batch's sampling is seeded by its first key."""
        out: list[tuple[str, int, int]] = []
        for b in range(0, len(prompts), self.batch_size):
            enc = self.tok(prompts[b:b + self.batch_size], return_tensors="pt", padding=True).to(self.device)
            if keys is not None:
                self.torch.manual_seed(request_seed(self.seed, keys[b]))
            with self.torch.no_grad():       # out of memory, a CUDA error: raised, the unit fails
                ids = self.model.generate(**enc, **gen_kw)
            new = ids[:, enc["input_ids"].shape[1]:]
            texts = self.tok.batch_decode(new, skip_special_tokens=True)
            out.extend(zip(texts, enc["attention_mask"].sum(1).tolist(), self._lengths(new)))
        return out

    def _lengths(self, new: Any) -> list[int]:
        """Tokens generated per row, up to and with the first end-of-text (as vLLM counts them;
        rows that ended early are padded after it)."""
        stop = self.torch.isin(new, self.torch.tensor(self.stop_ids, device=new.device))
        first = stop.int().argmax(1) + 1
        return self.torch.where(stop.any(1), first, new.shape[1]).tolist()

    def generate(self, captions: list[str], keys: list[str]) -> list[Generation]:
        prompts = [self._chat(render_prompt(self.template, c, self.k)) for c in captions]
        return [to_generation(t, self.structured) for t, _, _ in self._complete(prompts, self.gen_kw, keys)]

    def judge(self, items: list[JudgeItem]) -> list[JudgeVerdict]:
        prompts = [self._chat(render_judge_prompt(self.judge_template, it)) for it in items]
        return [to_verdict(*r) for r in self._complete(prompts, self.judge_kw)]


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


@dataclass(frozen=True)
class Reply:
    """One chat completion: its text and the server's `usage`, or the error that fails the unit."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str = ""


def usage_tokens(usage: Any, name: str) -> int:
    """A token count of the server's `usage` (0 when it sends none, or not a count)."""
    n = usage.get(name) if isinstance(usage, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else 0


class OpenAIBackend(Backend):
    """Any OpenAI-compatible chat-completions server (`vllm serve`, SGLang, TGI...).

    A server is not trusted: each request has one deadline (`timeout`, however slowly the bytes
    come), its body is read up to MAX_RESPONSE_BYTES, errors keep the status code and never the
    body, and the key is redacted from the model's answers. Requests run on an event loop, so one
    Ctrl-C cancels all of them at once. The judge's token cost is the server's `usage`."""

    name = "openai"
    judges = True

    def __init__(self, model: str, template: str, base_url: str, k: int = 4, seed: int = 0,
                 structured: bool = False, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 16,
                 timeout: float = 120.0, retries: int = 4, backoff: float = 1.0,
                 max_new_tokens: int = 512, temperature: float = 0.8, top_p: float = 0.95,
                 judge_template: str | None = None):
        import httpx
        self.httpx = httpx
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key(api_key_env)}"}
        self.model, self.template, self.k, self.seed = model, template, k, seed
        self.structured, self.concurrency, self.timeout = structured, concurrency, timeout
        self.retries, self.backoff = retries, backoff
        self.params = dict(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
        self.judge_template = judge_template or default_judge_prompt().read_text()

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

    async def _one(self, client: Any, slots: Any, body: dict[str, Any]) -> Reply:
        """One request with its retries; the server's words are redacted of the key."""
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
                return Reply(error=f"response_too_large: over {MAX_RESPONSE_BYTES} bytes")
            except self.httpx.HTTPError as e:
                last = f"http_error: {type(e).__name__}"
                continue
            if status == 429 or status >= 500:
                last = http_reason(status)
                continue
            if status >= 400:
                return Reply(error=http_reason(status))
            try:
                resp = json.loads(data)
                text = resp["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                last = "bad_response"
                continue
            usage = resp.get("usage")
            return Reply(redact(str(text)), usage_tokens(usage, "prompt_tokens"),
                         usage_tokens(usage, "completion_tokens"))
        return Reply(error=f"backend_error: {last} after {self.retries + 1} tries")

    def generate(self, captions: list[str], keys: list[str]) -> list[Generation]:
        bodies = []
        for caption, key in zip(captions, keys):
            prompt = render_prompt(self.template, caption, self.k)
            body: dict[str, Any] = {"model": self.model, "seed": request_seed(self.seed, key),
                                    "messages": [{"role": "user", "content": prompt}], **self.params}
            if self.structured:
                body["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": "rewrites", "schema": REWRITES_JSON_SCHEMA}}
            bodies.append(body)
        return [to_generation(r.text, self.structured) for r in asyncio.run(self._all(bodies))]

    def judge(self, items: list[JudgeItem]) -> list[JudgeVerdict]:
        bodies = [{"model": self.model, "max_tokens": JUDGE_MAX_TOKENS, "temperature": 0.0,
                   "messages": [{"role": "user", "content": render_judge_prompt(self.judge_template, it)}]}
                  for it in items]
        return [to_verdict(r.text, r.prompt_tokens, r.completion_tokens) for r in asyncio.run(self._all(bodies))]

    async def _all(self, bodies: list[dict[str, Any]]) -> list[Reply]:
        """All requests in flight (up to `concurrency`); the first one still failing after its
        retries cancels the rest and fails the unit, so a server that is down fails fast."""
        slots = asyncio.Semaphore(self.concurrency)
        async with self.httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, headers=self.headers,
                                          limits=self.httpx.Limits(max_connections=self.concurrency)) as client:
            tasks = [asyncio.ensure_future(self._one(client, slots, body)) for body in bodies]
            try:
                for f in asyncio.as_completed(tasks):
                    r = await f
                    if r.error:
                        raise BackendError(f"{self.base_url}: {r.error}")
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


class VLLMBackend(Backend):
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
    judges = True

    def __init__(self, model: str, template: str, k: int = 4, seed: int = 0, structured: bool = False,
                 tensor_parallel_size: int = 1, max_new_tokens: int = 512, temperature: float = 0.8,
                 top_p: float = 0.95, engine: dict[str, Any] | None = None, judge_template: str | None = None):
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
        self.judge_sampling = vllm.SamplingParams(max_tokens=JUDGE_MAX_TOKENS, temperature=0.0)
        self.judge_template = judge_template or default_judge_prompt().read_text()

    def _chat(self, prompts: list[str], sampling: Any) -> list[Any]:
        try:
            return self.llm.chat([[{"role": "user", "content": p}] for p in prompts], sampling, use_tqdm=False)
        except self.engine_dead as e:
            raise WorkerBroken(f"vLLM engine died: {e}") from e

    def generate(self, captions: list[str], keys: list[str]) -> list[Generation]:
        outs = self._chat([render_prompt(self.template, c, self.k) for c in captions], self.sampling)
        return [to_generation(o.outputs[0].text if o.outputs else "", self.structured) for o in outs]

    def judge(self, items: list[JudgeItem]) -> list[JudgeVerdict]:
        """Greedy; tokens as vLLM's RequestOutput counts them (`prompt_token_ids`, and the
        completion's `token_ids`, vllm/outputs.py)."""
        outs = self._chat([render_judge_prompt(self.judge_template, it) for it in items], self.judge_sampling)
        return [to_verdict(o.outputs[0].text if o.outputs else "", len(o.prompt_token_ids or []),
                           len(o.outputs[0].token_ids) if o.outputs else 0) for o in outs]


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
