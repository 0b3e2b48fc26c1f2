"""`cfgen captions`: anchors -> `captions/part-NNNNN.parquet` (kept and rejected rewrites)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import CLI_ONLY, RECIPE_FILE
from ..datamodel import FAILED, KEPT, REJECTED, Anchor, Rewrite, rewrites_to_table
from ..hub import require_model
from ..io.keys import sanitize_key
from ..io.reader import InputConfig, clean_text, expand_inputs, read_unit
from ..io.writer import atomic_write_parquet
from ..run import Ledger, Unit, UnitStats, check_run_dir, check_settings, plan_run, plan_units, run_lock, run_units
from .backends import Backend, BackendError, Generation, JudgeItem, default_judge_prompt, default_prompt
from .rules import RulesBackend
from .validate import Validator

STAGE = "captions"
log = logging.getLogger("cfgen")


@dataclass
class CaptionsConfig:
    input: list[str] = field(default_factory=list)
    out: str = "shards/run"
    backend: str = "rules"
    k: int = 4
    swaps: bool = True                        # keep binding swaps (edit type `swap`)
    prompt: str | None = field(default=None, metadata=RECIPE_FILE)
    structured: bool = False
    judge: bool = False                       # the backend's model judges each kept rewrite (not rules)
    judge_prompt: str | None = field(default=None, metadata=RECIPE_FILE)
    model: str = "Qwen/Qwen2-72B-Instruct"
    seed: int = 0
    batch_size: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 512
    base_url: str = field(default="http://localhost:8000/v1", metadata=CLI_ONLY)
    api_key_env: str = field(default="OPENAI_API_KEY", metadata=CLI_ONLY)   # the variable holding the key
    concurrency: int = 64                     # openai: requests in flight (a 72B server batches them)
    timeout: float = 120.0
    request_retries: int = 4
    tensor_parallel_size: int | None = None  # vllm: default, the number of GPUs given (--gpus), else 1
    vllm_engine: dict[str, Any] = field(default_factory=dict)   # extra vllm.LLM options (max_num_seqs, ...)
    rules_vocab: dict[str, list[str]] | None = None
    image_col: str = "image"
    caption_col: str = "caption"
    id_col: str | None = None
    rows_per_unit: int = 10_000
    check_images: bool = True
    workers: int = 1
    distributor: str = "local"
    ray_address: str | None = field(default=None, metadata=CLI_ONLY)
    retries: int = 2

    def input_config(self) -> InputConfig:
        return InputConfig(image_col=self.image_col, caption_col=self.caption_col, id_col=self.id_col,
                           rows_per_unit=self.rows_per_unit, check_images=self.check_images)

    def template(self) -> str:
        return Path(self.prompt or default_prompt(self.structured)).read_text()

    def judge_template(self) -> str:
        return Path(self.judge_prompt or default_judge_prompt()).read_text()

    def settings(self) -> dict[str, Any]:
        """The settings that shape a captions part (recorded in the manifest: a resume with other
        values is refused): the anchors read, and what the backend is asked and how it samples."""
        out: dict[str, Any] = {"backend": self.backend, "k": self.k, "swaps": self.swaps, "seed": self.seed,
                               **asdict(self.input_config())}
        if self.backend == "rules":
            return {**out, "rules_vocab": self.rules_vocab}
        out.update(model=self.model, structured=self.structured, temperature=self.temperature, top_p=self.top_p,
                   max_new_tokens=self.max_new_tokens,
                   prompt_sha256=hashlib.sha256(self.template().encode()).hexdigest(), judge=self.judge)
        if self.judge:
            out["judge_prompt_sha256"] = hashlib.sha256(self.judge_template().encode()).hexdigest()
        if self.backend == "transformers":
            out["batch_size"] = self.batch_size          # its sampling is seeded per batch
        return out


def backend_class(name: str) -> type[Backend]:
    """The class of backend `name`; its abilities can be read before it loads a model."""
    from .backends import OpenAIBackend, TransformersBackend, VLLMBackend     # vllm is imported when one is made
    classes: dict[str, type[Backend]] = {"rules": RulesBackend, "transformers": TransformersBackend,
                                         "openai": OpenAIBackend, "vllm": VLLMBackend}
    if name not in classes:
        raise ValueError(f"unknown backend {name!r} (rules, transformers, openai, vllm)")
    return classes[name]


def make_backend(cfg: CaptionsConfig, device: str = "cpu") -> Backend:
    cls: Any = backend_class(cfg.backend)
    if cfg.backend == "rules":
        return cls(k=cfg.k, seed=cfg.seed, batch_size=cfg.batch_size, vocab=cfg.rules_vocab)
    common = dict(template=cfg.template(), k=cfg.k, seed=cfg.seed, structured=cfg.structured,
                  max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                  judge_template=cfg.judge_template() if cfg.judge else None)
    if cfg.backend == "transformers":
        return cls(cfg.model, batch_size=min(cfg.batch_size, 64), device=device, **common)
    if cfg.backend == "openai":
        return cls(cfg.model, base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                   timeout=cfg.timeout, retries=cfg.request_retries, **common)
    return cls(cfg.model, tensor_parallel_size=cfg.tensor_parallel_size or 1, engine=cfg.vllm_engine, **common)


def validate_candidates(anchor: Anchor, gen: Generation, k: int, validator: Validator,
                        swaps: bool = True) -> list[Rewrite]:
    """Validate a backend's candidates for one anchor; the first K are judged, extras rejected;
    without `swaps`, binding swaps are rejected (`swap_dropped`) so a run can leave them out."""
    out: list[Rewrite] = []
    kept: list[str] = []
    for i, c in enumerate(gen.candidates):
        text = clean_text(str(c.get("text", "")))[0]
        if i >= k:
            out.append(Rewrite(anchor.key, i, text, REJECTED, "over_k"))
            continue
        v = validator(anchor.caption, text, kept)
        if v.ok and not swaps and v.edit is not None and v.edit.type == "swap":
            out.append(Rewrite(anchor.key, i, text, REJECTED, "swap_dropped"))
        elif v.ok:
            kept.append(text)
            out.append(Rewrite(anchor.key, i, text, KEPT, "", v.edit))
        else:
            out.append(Rewrite(anchor.key, i, text, REJECTED, v.reason))
    return out


JUDGE_COST = ("judge_calls", "judge_prompt_tokens", "judge_completion_tokens")


def judge_rewrites(backend: Backend, batch: list[tuple[Anchor, list[Rewrite]]]) -> dict[str, int]:
    """`--judge`: the backend's model answers, in one call for the batch, whether each kept
    rewrite is a fluent, plausible caption that differs from its anchor by exactly its edit.
    A no rejects it (`judge_no: <reason>`), an answer that is neither yes nor no too
    (`judge_unparseable`); the edit found stays on the row. Returns the judge's cost."""
    where = [(a, rws, j) for a, rws in batch for j, r in enumerate(rws) if r.status == KEPT]
    verdicts = backend.judge([JudgeItem(a.caption, rws[j].text, rws[j].edit) for a, rws, j in where]) if where else []
    for (_, rws, j), v in zip(where, verdicts, strict=True):
        if v.ok is not True:
            why = "judge_unparseable" if v.ok is None else f"judge_no: {v.reason}" if v.reason else "judge_no"
            rws[j] = replace(rws[j], status=REJECTED, reason=why)
    return {"judge_calls": len(where), "judge_prompt_tokens": sum(v.prompt_tokens for v in verdicts),
            "judge_completion_tokens": sum(v.completion_tokens for v in verdicts)}


class CaptionsJob:
    """Process one unit: read anchors, generate, validate, write the part and its stats."""

    def __init__(self, cfg: CaptionsConfig):
        self.cfg = cfg
        self.device: str | None = None
        self.backend: Backend | None = None

    def setup(self, device: str) -> Backend:
        """Load the backend once per worker and keep it (what a Ray actor's __init__ calls)."""
        if self.backend is None or self.device != device:
            self.backend, self.device = make_backend(self.cfg, device), device
        return self.backend

    def __getstate__(self) -> dict[str, Any]:
        return {"cfg": self.cfg, "device": None, "backend": None}      # workers load their own

    def __call__(self, unit: Unit, device: str = "cpu") -> dict[str, Any]:
        t0 = time.time()
        cfg = self.cfg
        ledger = Ledger(cfg.out, STAGE)
        stats = UnitStats(unit.index)
        rows: list[tuple] = []
        anchors: list[Anchor] = []
        n_cleaned = 0
        for rec in read_unit(unit, cfg.input_config()):
            n_cleaned += bool(rec.extra.get("caption_cleaned"))
            if rec.anchor is None:
                stats.add(rec.status, rec.reason)
                rows.append((Anchor(key=sanitize_key(rec.source_id), caption="", source_id=rec.source_id),
                             None, rec.status, rec.reason))
            else:
                anchors.append(rec.anchor)
        backend = self.setup(device)
        validator = Validator()
        reasons: Counter = Counter()
        by_type: Counter = Counter()
        n_rw = n_kept = 0
        cost: Counter = Counter({k: 0 for k in JUDGE_COST} if cfg.judge else {})
        # vLLM schedules a whole unit best in one call (a call waits for its slowest sequence)
        step = max(len(anchors), 1) if backend.whole_unit else cfg.batch_size
        for b in range(0, len(anchors), step):
            batch = anchors[b:b + step]
            # the backend failing (not the model answering badly) fails the unit: nothing is
            # written, the unit is not done, and a rerun retries every caption of it
            gens = backend.generate([a.caption for a in batch], [a.key for a in batch])
            failed = [g for g in gens if g.status == FAILED]
            if failed:
                raise BackendError(f"{len(failed)} of {len(batch)} captions failed in the {cfg.backend} backend, "
                                   f"e.g. {failed[0].error}")
            checked = [None if g.error and not g.candidates else validate_candidates(a, g, cfg.k, validator, cfg.swaps)
                       for a, g in zip(batch, gens)]
            if cfg.judge:           # a judge call that fails raises, and fails the unit like generation
                cost.update(judge_rewrites(backend, [(a, rws) for a, rws in zip(batch, checked) if rws is not None]))
            for a, g, rws in zip(batch, gens, checked):
                if rws is None:
                    stats.add(g.status, g.error.split(":")[0])
                    rows.append((a, None, g.status, g.error))
                    continue
                for r in rws:
                    rows.append((a, r, r.status, r.reason))
                    n_rw += 1
                    if r.status == KEPT:
                        n_kept += 1
                        by_type[r.edit.type] += 1
                    else:
                        reasons[r.reason.split(":")[0]] += 1
                if any(r.status == KEPT for r in rws):
                    stats.add(KEPT)
                else:
                    stats.add(REJECTED, "no_valid_rewrite")
                    if not rws:
                        rows.append((a, None, REJECTED, "no_valid_rewrite"))
        stats.extra = {"rewrites": n_rw, "rewrites_kept": n_kept, "kept_by_type": dict(by_type),
                       "rewrite_rejects": dict(reasons), "captions_cleaned": n_cleaned,
                       **cost, "seconds": round(time.time() - t0, 3), "backend": cfg.backend}
        part = ledger.dir / f"{unit.name}.parquet"
        atomic_write_parquet(part, rewrites_to_table(rows))
        ledger.mark_done(unit, stats, outputs=[part])
        return stats.to_dict()


def _first_anchors(cfg: CaptionsConfig, n: int) -> list[Anchor]:
    units = plan_units(expand_inputs(cfg.input), cfg.input_config())
    anchors: list[Anchor] = []
    for u in units:
        anchors += [r.anchor for r in read_unit(u, cfg.input_config()) if r.anchor]
        if len(anchors) >= n:
            break
    if not anchors:
        raise ValueError(f"no readable anchor in {', '.join(cfg.input)}")
    return anchors[:n]


def first_prompt(cfg: CaptionsConfig) -> str:
    """The prompt the backend would get for the first caption (`--dry-run`)."""
    from .backends import render_prompt
    return render_prompt(cfg.template(), _first_anchors(cfg, 1)[0].caption, cfg.k)


def preview_captions(cfg: CaptionsConfig, n: int,
                     gpus: list[str] | None = None) -> list[tuple[Anchor, Generation, list[Rewrite]]]:
    """Rewrite, validate (and with `judge`, judge) the first `n` anchors without writing anything
    (`--limit`)."""
    anchors = _first_anchors(cfg, n)
    with visible_gpus(cfg, gpus) as cfg:
        preflight(cfg, gpus)
        backend = CaptionsJob(cfg).setup("cuda:0" if gpus else "cpu")
        gens = backend.generate([a.caption for a in anchors], [a.key for a in anchors])
        validator = Validator()
        out = [(a, g, validate_candidates(a, g, cfg.k, validator, cfg.swaps)) for a, g in zip(anchors, gens)]
        if cfg.judge:
            judge_rewrites(backend, [(a, rws) for a, _, rws in out])
    return out


def plan(cfg: CaptionsConfig) -> list[Unit]:
    """The run's units, planned into its manifest with this stage's settings and config."""
    return plan_run(cfg.out, cfg.input, cfg.input_config(), STAGE, cfg.settings(), asdict(cfg))


@contextlib.contextmanager
def visible_gpus(cfg: CaptionsConfig, gpus: list[str] | None):
    """While the stage runs in this process: the GPUs given are its visible devices (vLLM drives
    all of them from here, tensor parallel; a `--limit` preview uses the first), and vLLM's
    tensor parallelism defaults to their number. Yields the config with that size set."""
    if cfg.backend == "vllm":
        cfg = replace(cfg, tensor_parallel_size=cfg.tensor_parallel_size or max(len(gpus or []), 1))
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    try:
        yield cfg
    finally:
        if old is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old


def preflight(cfg: CaptionsConfig, gpus: list[str] | None = None) -> None:
    """Stage errors found before any unit runs (rather than one failure per unit)."""
    if cfg.judge and not backend_class(cfg.backend).judges:
        raise ValueError(f"captions --judge: the {cfg.backend} backend has no model to judge rewrites with "
                         "(--judge is for --backend transformers, openai or vllm)")
    if gpus and cfg.backend in ("rules", "openai"):
        raise ValueError(f"captions --gpus: the {cfg.backend} backend runs no model on a local GPU "
                         "(--gpus is for --backend transformers or vllm)")
    if cfg.backend == "vllm":
        from .backends import vllm_engine_options
        vllm_engine_options(cfg.vllm_engine)
        if cfg.workers > 1 or cfg.distributor == "ray":
            raise ValueError("captions --backend vllm runs in one process that drives all its GPUs (vLLM cannot "
                             "start its engine inside a worker process): use --workers 1, and --gpus 0-7 for its GPUs "
                             "(--tensor-parallel-size defaults to their number)")
        try:
            from vllm.sampling_params import StructuredOutputsParams  # noqa: F401
        except ImportError as e:
            raise ValueError(f"captions --backend vllm needs vLLM >= 0.11 (pip install 'cfgen[gpu]'): {e}") from None
        check_vllm_fits(cfg)
    if cfg.backend == "transformers":
        require_model(cfg.model, "captions option --model")


def check_vllm_fits(cfg: CaptionsConfig) -> None:
    """Refuse, before vLLM loads anything, weights that cannot fit in the visible GPUs at this
    tensor (and pipeline) parallel size: vLLM would otherwise load for minutes, then fail."""
    from .backends import checkpoint_weights
    engine = cfg.vllm_engine
    tp = cfg.tensor_parallel_size or 1
    shards = tp * int(engine.get("pipeline_parallel_size", 1))
    mem = gpu_memory()
    if len(mem) < shards:
        raise ValueError(f"captions --backend vllm: tensor parallel size {tp} needs {shards} GPU(s), "
                         f"{len(mem)} visible (give them with --gpus)")
    weights = checkpoint_weights(cfg.model, str(engine.get("dtype", "auto")))
    if weights is None:
        log.warning("captions: cannot read %s's config.json and safetensors index here; "
                    "not checking that its weights fit in the GPUs", cfg.model)
        return
    size, dtype = weights
    util = float(engine.get("gpu_memory_utilization", 0.9))
    budget = util * min(mem[:shards])
    if size / shards > budget:
        raise ValueError(f"captions --backend vllm: {cfg.model} has {size / 1e9:.1f} GB of {dtype} weights, "
                         f"{size / shards / 1e9:.1f} GB per GPU at tensor parallel size {tp}, more than the "
                         f"{util:g} x {min(mem[:shards]) / 1e9:.1f} GB = {budget / 1e9:.1f} GB vLLM may use of each: "
                         f"give it at least {-(-size // int(budget))} GPUs (--gpus), or a smaller or quantized model")


def gpu_memory() -> list[int]:
    """Total memory of each visible GPU (CUDA_VISIBLE_DEVICES: indices or UUIDs), read through
    NVML as vLLM reads it (vllm/platforms/cuda.py): a CUDA context created here would hold
    memory on the first GPU before vLLM measures what is free."""
    try:
        import pynvml
    except ImportError as e:
        raise ValueError(f"captions --backend vllm: cannot read the GPUs' memory: {e} (nvidia-ml-py, which vLLM "
                         "installs)") from None
    pynvml.nvmlInit()
    try:
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = ([d.strip() for d in env.split(",") if d.strip()] if env is not None
                   else [str(i) for i in range(pynvml.nvmlDeviceGetCount())])
        handles = [pynvml.nvmlDeviceGetHandleByIndex(int(d)) if d.isdigit() else pynvml.nvmlDeviceGetHandleByUUID(d)
                   for d in devices]
        return [int(pynvml.nvmlDeviceGetMemoryInfo(h).total) for h in handles]
    finally:
        pynvml.nvmlShutdown()


def retry_backend_failures(ledger: Ledger, units: list[Unit]) -> None:
    """Units that an older cfgen marked done with captions that failed in the backend (rows with
    reason `backend_error` or `http_NNN`: they never reached the model) are redone."""
    for u in units:
        path = ledger.stats_path(u)
        try:
            failed = json.loads(path.read_text()).get("failed", {}) if path.exists() else {}
        except (OSError, ValueError):
            continue                      # the ledger redoes a unit whose stats cannot be read
        n = sum(v for r, v in failed.items() if r == "backend_error" or r.startswith("http_"))
        if n:
            log.warning("captions/%s: %d caption(s) failed in the backend in an earlier run; redoing the unit",
                        u.name, n)
            path.unlink()


def run_captions(cfg: CaptionsConfig, gpus: list[str] | None = None) -> dict[str, Any]:
    """Every unit of the inputs. `gpus`: the transformers backend runs one worker per GPU; vLLM
    runs in this process over all of them (tensor parallel)."""
    if cfg.backend == "openai":
        from .backends import api_key
        api_key(cfg.api_key_env)                 # redacted here too, whichever process meets the server
    with visible_gpus(cfg, gpus) as cfg:
        preflight(cfg, gpus)
        check_run_dir(cfg.out, cfg.input)
        with run_lock(cfg.out):
            ledger = Ledger(cfg.out, STAGE)
            check_settings(ledger, cfg.settings(), record=False)      # plan() records them
            units = plan(cfg)
            retry_backend_failures(ledger, units)
            return run_units(CaptionsJob(cfg), units, ledger, distributor=cfg.distributor,
                             workers=cfg.workers, gpus=None if cfg.backend == "vllm" else gpus, retries=cfg.retries,
                             desc="captions", item_key="rewrites", ray_address=cfg.ray_address)
