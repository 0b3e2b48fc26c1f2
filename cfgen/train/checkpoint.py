"""Checkpoints: safetensors + JSON only (no pickle), every rank's RNG state, written to a temp
directory and renamed; `latest_checkpoint` skips damaged ones. Resuming from one gives exactly
the parameters, optimiser, schedule, data position and randomness of an uninterrupted run."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("cfgen.train")


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's RNG states (Python, NumPy, torch CPU and every CUDA device): tensors + JSON."""
    import random
    import numpy as np
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"cuda{i}": t for i, t in enumerate(torch.cuda.get_rng_state_all())})
    np_state = np.random.get_state()
    meta = {"python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    import random
    import numpy as np
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda")), key=lambda k: int(k[4:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    v, st, g = meta["python"]
    random.setstate((v, tuple(st), g))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))


def save_rng(ckpt_tmp: Path, rank: int) -> None:
    """Every rank writes its own RNG state into the checkpoint being built."""
    from safetensors.torch import save_file
    ckpt_tmp.mkdir(parents=True, exist_ok=True)
    tensors, meta = rng_state()
    save_file(tensors, ckpt_tmp / f"rng-rank{rank}.safetensors")
    (ckpt_tmp / f"rng-rank{rank}.json").write_text(json.dumps(meta))


def save_checkpoint(path: Path, model: torch.nn.Module, processor: Any, opt: torch.optim.Optimizer,
                    sched: Any, state: dict[str, Any]) -> None:
    """model/ (save_pretrained), optimizer.safetensors + .json, scheduler.json, trainer_state.json.
    The RNG files of every rank are already in the temp directory (`save_rng`)."""
    from safetensors.torch import save_file
    tmp = path.with_name(path.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    from .vlm import VLMEmbedder
    if isinstance(model, VLMEmbedder):       # a LoRA run's checkpoint holds the adapters; merged once, at the end
        model.save_pretrained(tmp / "model", merged=False)
    else:
        model.save_pretrained(tmp / "model")
    processor.save_pretrained(tmp / "model")
    sd = opt.state_dict()
    tensors = {f"{pid}.{k}": v.detach().cpu().contiguous() for pid, st in sd["state"].items()
               for k, v in st.items() if torch.is_tensor(v)}
    save_file(tensors or {"_empty": torch.zeros(1)}, tmp / "optimizer.safetensors")
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    (tmp / "optimizer.json").write_text(json.dumps({"param_groups": groups, "state_keys":
                                                    {str(p): list(st) for p, st in sd["state"].items()}}))
    (tmp / "scheduler.json").write_text(json.dumps(sched.state_dict()))
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def load_checkpoint(path: Path, opt: torch.optim.Optimizer, sched: Any, rank: int = 0) -> dict[str, Any]:
    from safetensors.torch import load_file
    meta = json.loads((path / "optimizer.json").read_text())
    tensors = load_file(path / "optimizer.safetensors")
    state = {int(p): {k: tensors[f"{p}.{k}"] for k in keys} for p, keys in meta["state_keys"].items()}
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
    sched.load_state_dict(json.loads((path / "scheduler.json").read_text()))
    rng_file = path / f"rng-rank{rank}.safetensors"
    if not rng_file.exists():
        raise ValueError(f"{path} has no RNG state for rank {rank}: resume with the number of processes it was saved with")
    set_rng_state(load_file(rng_file), json.loads((path / f"rng-rank{rank}.json").read_text()))
    return json.loads((path / "trainer_state.json").read_text())


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint cannot be resumed from (a file missing, truncated or unparsable), or None."""
    from safetensors.torch import load_file
    need = ["optimizer.json", "scheduler.json", "trainer_state.json", "optimizer.safetensors", "rng-rank0.safetensors"]
    for name in need:
        if not (path / name).is_file():
            return f"{name} is missing"
    weights = sorted((path / "model").glob("*.safetensors"))
    if not weights:
        return "model/*.safetensors is missing"
    for f in [*path.glob("*.json"), *(path / "model").glob("*.json")]:
        try:
            json.loads(f.read_text())
        except (OSError, ValueError) as e:
            return f"{f.name} is unreadable ({type(e).__name__})"
    for f in [*path.glob("*.safetensors"), *weights]:
        try:
            load_file(f)
        except Exception as e:
            return f"{f.name} is unreadable ({str(e)[:80] or type(e).__name__})"
    return None


def latest_checkpoint(out: Path) -> Path | None:
    """The newest intact checkpoint; damaged newer ones are skipped, with a warning naming them."""
    for ck in sorted((out / "checkpoints").glob("step-*[0-9]"), reverse=True):
        problem = checkpoint_problem(ck)
        if problem is None:
            return ck
        log.warning("checkpoint %s is damaged (%s); falling back to an earlier one", ck, problem)
    return None


def prune_checkpoints(out: Path, keep: int) -> None:
    """Delete all but the newest `keep` resumable checkpoints (0: keep all). A checkpoint saved
    before a non-finite loss is evidence, never pruned."""
    if keep <= 0:
        return
    for ck in sorted((out / "checkpoints").glob("step-*[0-9]"), reverse=True)[keep:]:
        shutil.rmtree(ck)


def read_log(path: Path, upto: int) -> list[str]:
    """Lines of train_log.jsonl up to step `upto`; a torn line (killed mid-write) is skipped."""
    keep = []
    for ln in path.read_text().splitlines():
        try:
            if json.loads(ln)["step"] <= upto:
                keep.append(ln)
        except (ValueError, KeyError, TypeError):
            log.warning("%s: skipping a torn line: %.60s", path, ln)
    return keep
