"""Distributors: where a stage's units run. Plain functions with one signature.

    distribute_<name>(job, units, *, workers, gpus, retries, desc) -> {unit index: error}

`job.setup(device)` loads the job's models once per worker (each worker process holds its own
copy of the job); `job(unit, device)` processes one whole unit, writes its outputs and
done-marker, and returns the unit's stats dict. A unit whose job raises, or whose worker process dies, is retried (on
another worker when there are several) up to `retries` more times, then reported as failed;
the distributor itself never raises because of one unit.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import time
import traceback
from typing import Any, Callable, Protocol

from tqdm.auto import tqdm

from ..errors import redact
from .manifest import Unit


class Job(Protocol):
    def setup(self, device: str) -> Any: ...

    def __call__(self, unit: Unit, device: str) -> dict[str, Any]: ...


def parse_gpus(spec: str | None, visible: str | None = None) -> list[str]:
    """`0-7`, `0,2,5`, `all` -> the CUDA_VISIBLE_DEVICES value of each worker.

    Indices count within the devices this job may use: under an existing CUDA_VISIBLE_DEVICES
    (SLURM, shared nodes, MIG UUIDs) slot i is the i-th entry of that list, never physical GPU i.
    """
    if not spec:
        return []
    spec = spec.strip()
    if visible is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    owned = [v.strip() for v in visible.split(",") if v.strip()] if visible is not None else None
    if spec == "all":
        if owned is not None:
            if not owned:
                raise ValueError("--gpus all: CUDA_VISIBLE_DEVICES is empty (use --device cpu)")
            return owned
        import torch
        n = torch.cuda.device_count()
        if n == 0:
            raise ValueError("--gpus all: no CUDA device visible (use --device cpu)")
        return [str(i) for i in range(n)]
    idx = _indices(spec)
    if owned is None:
        return idx
    bad = [i for i in idx if int(i) >= len(owned)]
    if bad:
        raise ValueError(f"--gpus {spec}: this job may use {len(owned)} device(s) "
                         f"(CUDA_VISIBLE_DEVICES={visible}); no index {bad[0]}")
    return [owned[int(i)] for i in idx]


def _indices(spec: str) -> list[str]:
    out: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()) or int(a) > int(b):
                raise ValueError(f"bad GPU range {part!r} (want e.g. 0-7)")
            out.extend(str(i) for i in range(int(a), int(b) + 1))
        elif part.isdigit():
            out.append(part)
        else:
            raise ValueError(f"bad GPU list {spec!r} (want 0-7, 0,2,5 or all)")
    return list(dict.fromkeys(out))


class WorkerBroken(RuntimeError):
    """The worker's device is unusable (a sticky CUDA error): the process must be replaced, and
    the unit it held is retried on a fresh one."""


_FATAL = ("CUDA error", "AcceleratorError", "illegal memory access", "device-side assert", "CUBLAS_STATUS",
          "cuDNN error", "NCCL error")


def is_oom(e: BaseException) -> bool:
    return type(e).__name__ == "OutOfMemoryError" or "out of memory" in str(e).lower()


def is_fatal_device_error(e: BaseException) -> bool:
    """A CUDA error that poisons the process (illegal memory access, device-side assert, Xid),
    as opposed to an out-of-memory, which the next, smaller batch can survive. The chain of
    causes is searched too: a library may wrap the CUDA error in its own exception."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, WorkerBroken):
            return True
        text = f"{type(cur).__name__}: {cur}"
        if not is_oom(cur) and any(s in text for s in _FATAL):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _short(e: BaseException) -> str:
    return redact(f"{type(e).__name__}: {e}")[:500]


def print_traceback() -> None:
    """The current exception's traceback on stderr, without secrets."""
    sys.stderr.write(redact(traceback.format_exc()))


class _Rate:
    """Items/s overall and per worker, for the progress bar."""

    def __init__(self, item_key: str):
        self.item_key = item_key
        self.t0 = time.time()
        self.items = 0
        self.per: dict[str, int] = {}

    def add(self, who: str, stats: dict[str, Any]) -> dict[str, str]:
        n = int(stats.get(self.item_key, 0) or 0)
        self.items += n
        self.per[who] = self.per.get(who, 0) + n
        dt = max(time.time() - self.t0, 1e-9)
        post = {f"{self.item_key}/s": f"{self.items / dt:.1f}"}
        if len(self.per) > 1:
            post.update({f"w{w}": f"{c / dt:.1f}" for w, c in sorted(self.per.items())})
        return post


class RetryQueue:
    """The retry policy of the local and Ray distributors: units wait in a queue; a unit that
    fails goes to the back (so another worker, where there are several, may take it) until it
    has been retried `retries` times, then it is reported failed with its last error."""

    def __init__(self, units: list[Unit], retries: int):
        self.todo = list(units)
        self.retries = retries
        self.attempts: dict[int, int] = {}
        self.failures: dict[int, str] = {}

    def take(self) -> Unit:
        return self.todo.pop(0)

    def succeeded(self, u: Unit) -> None:
        self.failures.pop(u.index, None)

    def failed(self, u: Unit, error: str) -> bool:
        """Queue the unit again, or record it as failed; True when it is finished (failed)."""
        self.attempts[u.index] = self.attempts.get(u.index, 0) + 1
        if self.attempts[u.index] <= self.retries:
            self.todo.append(u)
            return False
        self.failures[u.index] = error
        return True


def distribute_sequential(job: Job, units: list[Unit], *, workers: int = 1, gpus: list[str] | None = None,
                          retries: int = 2, desc: str = "units", device: str = "cpu",
                          item_key: str = "items", **_: Any) -> dict[int, str]:
    """In this process, one unit after another (the default on one CPU/GPU).

    A fatal device error (or WorkerBroken) leaves this process unusable and there is no fresh
    one to move to: that unit and every unit not yet run are failed, for a rerun."""
    failures: dict[int, str] = {}
    rate = _Rate(item_key)
    broken = ""
    with tqdm(total=len(units), desc=desc, unit="unit") as bar:
        for u in units:
            for attempt in range(retries + 1):
                if broken:
                    failures[u.index] = f"not run: this process's device is unusable ({broken})"
                    break
                try:
                    stats = job(u, device)
                    failures.pop(u.index, None)
                    bar.set_postfix(rate.add("0", stats))
                    break
                except Exception as e:  # one unit never stops the job
                    failures[u.index] = _short(e)
                    if is_fatal_device_error(e):
                        print_traceback()
                        broken = _short(e)[:200]
            bar.update(1)
    return failures


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """A worker whose coordinator is gone (killed, even with SIGKILL) exits instead of holding its
    GPU and memory: checked by a daemon thread, as the worker may be blocked in a long unit."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(every)
            if os.getppid() != parent:
                os._exit(1)
    threading.Thread(target=watch, daemon=True, name="cfgen-parent-watch").start()


def _worker_main(job: Job, inbox: Any, outbox: Any, wid: int, gpu: str | None, device: str,
                 parent: int | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C reaches the whole group: the coordinator ends us
    if parent is not None:
        _exit_with_parent(parent)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        device = "cuda:0"
    while True:
        unit = inbox.get()
        if unit is None:
            return
        try:
            stats = job(unit, device)
            outbox.put(("done", wid, unit.index, stats))
        except Exception as e:
            if is_fatal_device_error(e):    # from the editor, a scorer, setup: wherever it was raised
                print_traceback()
                os._exit(70)        # the coordinator sees a dead worker and retries its unit on a fresh one
            outbox.put(("error", wid, unit.index, _short(e) + "\n" + redact(traceback.format_exc(limit=3))))


def distribute_local(job: Job, units: list[Unit], *, workers: int = 1, gpus: list[str] | None = None,
                     retries: int = 2, desc: str = "units", device: str = "cpu",
                     item_key: str = "items", **_: Any) -> dict[int, str]:
    """One worker process per GPU (pinned with CUDA_VISIBLE_DEVICES) or `workers` CPU processes.

    The coordinator hands each worker one unit at a time and so always knows what a dead
    worker was holding: that unit is retried on a fresh worker.
    """
    slots: list[str | None] = list(gpus) if gpus else [None] * max(workers, 1)
    if len(slots) == 1 and slots[0] is None:
        return distribute_sequential(job, units, retries=retries, desc=desc, device=device,
                                     item_key=item_key)
    ctx = mp.get_context("spawn")
    outbox = ctx.Queue()
    pending = RetryQueue(units, retries)
    procs: dict[int, Any] = {}
    inboxes: dict[int, Any] = {}
    holding: dict[int, Unit | None] = {}
    next_wid = 0
    rate = _Rate(item_key)

    def start(slot: str | None) -> int:
        nonlocal next_wid
        wid = next_wid
        next_wid += 1
        inbox = ctx.Queue()
        p = ctx.Process(target=_worker_main, args=(job, inbox, outbox, wid, slot, device, os.getpid()),
                        daemon=True)
        p.start()
        procs[wid], inboxes[wid], holding[wid] = p, inbox, None
        p.slot = slot  # type: ignore[attr-defined]
        return wid

    for s in slots:
        start(s)
    try:
        with tqdm(total=len(units), desc=desc, unit="unit") as bar:
            while pending.todo or any(h is not None for h in holding.values()):
                for wid, u in list(holding.items()):
                    if u is None and pending.todo:
                        holding[wid] = pending.take()
                        inboxes[wid].put(holding[wid])
                try:
                    kind, wid, idx, payload = outbox.get(timeout=0.2)
                    u = holding.get(wid)
                    holding[wid] = None
                    if u is not None and u.index == idx:
                        if kind == "done":
                            pending.succeeded(u)
                            bar.set_postfix(rate.add(str(procs[wid].slot or wid), payload))
                            bar.update(1)
                        elif pending.failed(u, payload.splitlines()[0]):
                            bar.update(1)
                except queue.Empty:
                    pass
                for wid, p in list(procs.items()):
                    if not p.is_alive():
                        u = holding.pop(wid, None)
                        procs.pop(wid)
                        inboxes.pop(wid)
                        if u is not None and pending.failed(u, f"worker died (exit code {p.exitcode}) on {u.name}"):
                            bar.update(1)
                        if pending.todo or any(h is not None for h in holding.values()):
                            start(p.slot)
    except KeyboardInterrupt:          # the workers ignore Ctrl-C: end them, then stop
        for p in procs.values():
            p.terminate()
        raise
    for wid in procs:
        inboxes[wid].put(None)
    for p in procs.values():
        p.join(timeout=10)
        if p.is_alive():
            p.terminate()
    return pending.failures


DISTRIBUTORS: dict[str, Callable[..., dict[int, str]]] = {
    "sequential": distribute_sequential,
    "local": distribute_local,
}


def get_distributor(name: str) -> Callable[..., dict[int, str]]:
    if name == "ray":
        from .distribute_ray import distribute_ray      # Ray is imported only when asked for
        return distribute_ray
    if name not in DISTRIBUTORS:
        raise ValueError(f"unknown distributor {name!r} (local, ray)")
    return DISTRIBUTORS[name]
