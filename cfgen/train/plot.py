"""`cfgen plot`: the training log as loss curves (total and each component), temperature and lr."""
from __future__ import annotations

import json
from pathlib import Path


def plot_run(run: str | Path, out: str | Path | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    run = Path(run)
    path = run / "train_log.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no train_log.jsonl in {run}")
    recs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    steps = [r["step"] for r in recs]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.5))
    for k in ("loss", "align", "csd", "fcd"):
        ax[0].plot(steps, [r[k] for r in recs], label=k)
    ax[0].set_title("losses")
    ax[0].legend()
    ax[1].plot(steps, [r["temperature"] for r in recs])
    ax[1].set_title("temperature")
    ax[2].plot(steps, [r["lr"] for r in recs])
    ax[2].set_title("learning rate")
    for a in ax:
        a.set_xlabel("step")
    fig.tight_layout()
    out = Path(out) if out else run / "loss.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
