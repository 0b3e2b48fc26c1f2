"""Shared helpers of the benchmark scripts: the machine line and a timer. Tiny models come from
`cfgen.testing` (shipped with the package), never from the tests/ folder."""
from __future__ import annotations

import json
import os
import platform
import time
from contextlib import contextmanager


def machine() -> str:
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{gpu}, threads {torch.get_num_threads()}")


@contextmanager
def timer(out: dict, key: str):
    t = time.perf_counter()
    yield
    out[key] = time.perf_counter() - t


def report(name: str, settings: dict, figures: dict) -> None:
    print(json.dumps({"bench": name, "machine": machine(), "settings": settings, "figures": figures}, indent=1))
