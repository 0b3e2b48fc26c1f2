"""Load generator for captions through any OpenAI-compatible server (vLLM serve, TGI, SGLang):
the paper's rewriting prompt on synthetic captions, `--concurrency` requests in flight.

    python bench/bench_openai.py --url http://HOST:8000/v1 --model Qwen/Qwen2-72B-Instruct --n 512

Reports captions/s, completion tokens/s (from the server's `usage`), p50/p95 latency and errors.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

COLORS = ["red", "blue", "green", "yellow", "black", "white"]
THINGS = ["car", "dog", "kite", "umbrella", "bench", "horse", "boat", "chair"]
PLACES = ["on a street", "in a park", "next to a tree", "on the beach", "under a bridge"]


def captions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"a {rng.choice(COLORS)} {rng.choice(THINGS)} {rng.choice(PLACES)}" for _ in range(n)]


def run(url: str, model: str, n: int, concurrency: int, k: int = 4, max_tokens: int = 512,
        api_key_env: str = "OPENAI_API_KEY", timeout: float = 300.0) -> dict:
    import httpx
    from cfgen.captions.backends import default_prompt, render_prompt
    template = default_prompt().read_text()
    key = os.environ.get(api_key_env, "EMPTY")
    client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers={"Authorization": f"Bearer {key}"},
                          limits=httpx.Limits(max_connections=concurrency))

    def one(cap: str) -> tuple[float, int, str]:
        t = time.perf_counter()
        try:
            r = client.post("/chat/completions", json={
                "model": model, "max_tokens": max_tokens, "temperature": 0.8,
                "messages": [{"role": "user", "content": render_prompt(template, cap, k)}]})
            r.raise_for_status()
            toks = int((r.json().get("usage") or {}).get("completion_tokens", 0))
            return time.perf_counter() - t, toks, ""
        except Exception as e:
            return time.perf_counter() - t, 0, type(e).__name__
    caps = captions(n)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        res = list(ex.map(one, caps))
    wall = time.perf_counter() - t0
    lat = sorted(r[0] for r in res if not r[2])
    errors = [r[2] for r in res if r[2]]
    pct = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 3) if lat else None)
    return {"url": url, "model": model, "n": n, "concurrency": concurrency, "wall_s": round(wall, 2),
            "captions_per_s": round((n - len(errors)) / wall, 2),
            "completion_tokens_per_s": round(sum(r[1] for r in res) / wall, 1),
            "latency_p50_s": pct(0.5), "latency_p95_s": pct(0.95), "errors": len(errors),
            "error_kinds": sorted(set(errors))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=512)
    a = ap.parse_args()
    print(json.dumps(run(a.url, a.model, a.n, a.concurrency, a.k, a.max_tokens), indent=1))


if __name__ == "__main__":
    main()
