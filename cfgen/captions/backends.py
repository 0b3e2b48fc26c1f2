"""Caption backends behind one interface: `generate(captions, keys) -> [Generation]`.

`rules` (no model), `transformers` (a local causal LM), `openai` (any OpenAI-compatible
server), `vllm` (offline batch inference; imported only when chosen). A backend never raises
for one caption: a failure is returned as that caption's `Generation.error`.
"""
from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..resources import prompts_dir
from ..datamodel import Status
from .parse import REWRITES_JSON_SCHEMA, parse_numbered, parse_structured


@dataclass
class Generation:
    """A backend's answer for one caption: candidates, or an error whose `status` says whether it
    is the model's output (REJECTED, e.g. unparseable) or the infrastructure (FAILED, retried)."""

    candidates: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    raw: str = ""
    status: Status = Status.REJECTED

    @classmethod
    def failed(cls, error: str) -> "Generation":
        return cls(error=error[:300], status=Status.FAILED)


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
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "little") & 0x7FFFFFFF


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
        self.tok = AutoTokenizer.from_pretrained(model)
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(device).eval()
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
            try:
                enc = self.tok([self._prompt(c) for c in caps], return_tensors="pt", padding=True).to(self.device)
                self.torch.manual_seed(request_seed(self.seed, ks[0]))
                with self.torch.no_grad():
                    ids = self.model.generate(**enc, **self.gen_kw)
                texts = self.tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                out.extend(to_generation(t, self.structured) for t in texts)
            except Exception as e:
                out.extend(Generation.failed(f"backend_error: {type(e).__name__}: {e}") for _ in caps)
        return out


class OpenAIBackend:
    """Any OpenAI-compatible chat-completions server (`vllm serve`, SGLang, TGI...)."""

    name = "openai"

    def __init__(self, model: str, template: str, base_url: str, k: int = 4, seed: int = 0,
                 structured: bool = False, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 16,
                 timeout: float = 120.0, retries: int = 4, backoff: float = 1.0,
                 max_new_tokens: int = 512, temperature: float = 0.8, top_p: float = 0.95):
        import httpx
        key = os.environ.get(api_key_env, "EMPTY")
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                   headers={"Authorization": f"Bearer {key}"},
                                   limits=httpx.Limits(max_connections=concurrency))
        self.httpx = httpx
        self.model, self.template, self.k, self.seed = model, template, k, seed
        self.structured, self.concurrency = structured, concurrency
        self.retries, self.backoff = retries, backoff
        self.params = dict(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p)

    def _one(self, caption: str, key: str) -> Generation:
        body: dict[str, Any] = {"model": self.model, "seed": request_seed(self.seed, key),
                                "messages": [{"role": "user", "content": render_prompt(self.template, caption, self.k)}],
                                **self.params}
        if self.structured:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "rewrites", "schema": REWRITES_JSON_SCHEMA}}
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                r = self.client.post("/chat/completions", json=body)
            except self.httpx.TimeoutException:
                last = "timeout"
                continue
            except self.httpx.HTTPError as e:
                last = f"http_error: {type(e).__name__}"
                continue
            if r.status_code == 429 or r.status_code >= 500:
                last = f"http_{r.status_code}"
                continue
            if r.status_code >= 400:
                return Generation.failed(f"http_{r.status_code}: {r.text[:200]}")
            try:
                text = r.json()["choices"][0]["message"]["content"] or ""
            except Exception:
                last = "bad_response"
                continue
            return to_generation(text, self.structured)
        return Generation.failed(f"backend_error: {last} after {self.retries + 1} tries")

    def generate(self, captions: list[str], keys: list[str]) -> list[Generation]:
        with ThreadPoolExecutor(self.concurrency) as ex:
            return list(ex.map(self._one, captions, keys))


class VLLMBackend:
    """Offline batch inference with `vllm.LLM` (GPU only; prefix caching on: the prompt is shared).

    The stage hands it a whole unit per call (`whole_unit`), so vLLM's scheduler keeps its batch
    full; engine options (`max_num_seqs`, `gpu_memory_utilization`, `max_model_len`, ...) come
    from the recipe's `captions.vllm_engine` and otherwise keep vLLM's own defaults."""

    name = "vllm"
    whole_unit = True

    def __init__(self, model: str, template: str, k: int = 4, seed: int = 0, structured: bool = False,
                 tensor_parallel_size: int = 1, max_new_tokens: int = 512, temperature: float = 0.8,
                 top_p: float = 0.95, engine: dict[str, Any] | None = None):
        try:
            import vllm
        except ImportError as e:
            raise RuntimeError("the vllm backend needs vLLM and a GPU: pip install 'cfgen[gpu]'") from e
        self.vllm = vllm
        self.llm = vllm.LLM(**{"model": model, "tensor_parallel_size": tensor_parallel_size, "seed": seed,
                               "enable_prefix_caching": True, **(engine or {})})
        self.template, self.k, self.seed, self.structured = template, k, seed, structured
        self.params = dict(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p)

    def _sampling(self, key: str) -> Any:
        kw: dict[str, Any] = dict(self.params, seed=request_seed(self.seed, key))
        if self.structured:
            from vllm.sampling_params import StructuredOutputsParams
            kw["structured_outputs"] = StructuredOutputsParams(json=REWRITES_JSON_SCHEMA)
        return self.vllm.SamplingParams(**kw)

    def generate(self, captions: list[str], keys: list[str]) -> list[Generation]:
        convs = [[{"role": "user", "content": render_prompt(self.template, c, self.k)}] for c in captions]
        try:
            outs = self.llm.chat(convs, [self._sampling(k) for k in keys], use_tqdm=False)
        except Exception as e:
            return [Generation.failed(f"backend_error: {type(e).__name__}: {e}") for _ in captions]
        return [to_generation(o.outputs[0].text if o.outputs else "", self.structured) for o in outs]
