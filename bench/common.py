"""Shared helpers of the benchmark scripts: the machine line and a timer. Importing it puts the
checkout's root on the path, so the scripts share the test fixtures (`tests/fixtures.py`)."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


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
