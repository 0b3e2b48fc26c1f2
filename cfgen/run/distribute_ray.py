"""The Ray distributor: one actor per GPU (or per CPU worker) across a cluster.

Same signature and ledger as the local distributor, so a run started locally can be finished
on a cluster and the reverse, redoing no finished unit. Each actor keeps its models loaded
between units (`job.setup` runs in the actor's __init__); a unit whose actor dies or whose job raises
is retried on another actor up to `retries` times, then reported as failed. A fatal device error
ends the actor, as it ends a local worker, and a fresh one takes its place.
"""
from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm

from .distribute import RetryQueue, is_fatal_device_error, print_traceback
from .manifest import Unit


def distribute_ray(job: Any, units: list[Unit], *, workers: int = 1, gpus: list[str] | None = None,
                   retries: int = 2, desc: str = "units", device: str = "cpu", item_key: str = "items",
                   ray_address: str | None = None, **_: Any) -> dict[int, str]:
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("--distributor ray needs Ray: pip install 'cfgen[ray]'") from e
    if not ray.is_initialized():
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in [os.getcwd(), os.environ.get("PYTHONPATH", "")] if p)}}
        if ray_address:
            ray.init(address=ray_address, runtime_env=env, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, runtime_env=env, log_to_driver=False)
    n_actors = len(gpus) if gpus else max(workers, 1)
    per_gpu = 1 if gpus else 0

    @ray.remote(num_gpus=per_gpu, num_cpus=1, max_restarts=0)
    class Worker:
        def __init__(self) -> None:
            self.device = "cuda:0" if per_gpu else device
            job.setup(self.device)

        def run(self, unit: Unit) -> dict[str, Any]:
            try:
                return job(unit, self.device)
            except Exception as e:
                if is_fatal_device_error(e):    # the local worker loop's check: this actor is done for
                    print_traceback()
                    os._exit(70)            # RayActorError: the actor is replaced, the unit retried
                raise

    actors = [Worker.remote() for _ in range(min(n_actors, max(len(units), 1)))]
    pending = RetryQueue(units, retries)
    running: dict[Any, tuple[Any, Unit]] = {}
    with tqdm(total=len(units), desc=f"{desc} (ray)", unit="unit") as bar:
        while pending.todo or running:
            busy = {id(a) for a, _ in running.values()}
            for a in actors:
                if id(a) not in busy and pending.todo:
                    u = pending.take()
                    running[a.run.remote(u)] = (a, u)
            done, _ = ray.wait(list(running), num_returns=1)
            ref = done[0]
            actor, u = running.pop(ref)
            try:
                ray.get(ref)
                pending.succeeded(u)
                bar.update(1)
            except Exception as e:          # task error or dead actor
                if isinstance(e, ray.exceptions.RayActorError):
                    actors = [a for a in actors if a is not actor] + [Worker.remote()]
                if pending.failed(u, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"):
                    bar.update(1)
    for a in actors:
        ray.kill(a)
    return pending.failures
