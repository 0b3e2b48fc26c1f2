"""Two trainer processes (gloo) on deliberately unequal shards, with accumulation and across an
epoch boundary: both ranks make the same number of steps and collective calls, and finish."""
import json
import subprocess
from pathlib import Path

import pytest
import torch

from tests.helpers import finish_ranks, launch_ranks, recut_shards


def _unequal_shards(world_final: Path, dst: Path) -> list[str]:
    """Three final shards re-cut to 70 / 10 / 20 samples: after the rank split one rank has far less."""
    return recut_shards(world_final / "final", dst, [70, 10, 20])


def _launch(shards: Path, clip: Path, out: Path, *extra: str) -> list[subprocess.Popen]:
    return launch_ranks(["-m", "cfgen.cli", "train", "--shards", str(shards), "--model", str(clip), "--out", str(out),
                         "--recipe", "cf-vlm", "--batch-size", "16", "--micro-batch", "4", "--max-steps", "12",
                         "--num-workers", "0", "--log-every", "1", "--warmup-steps", "1", "--lr", "1e-3", *extra], 2)


def _finish(procs: list[subprocess.Popen]) -> None:
    finish_ranks(procs, timeout=300)


@pytest.mark.slow
def test_two_ranks_on_unequal_shards_stay_in_lock_step_and_resume_exactly(world_final, world_clip, tmp_path):
    import signal
    import time
    from safetensors.torch import load_file
    _unequal_shards(world_final, tmp_path / "shards")
    out = tmp_path / "ddp"
    _finish(_launch(tmp_path / "shards", world_clip, out, "--save-every", "0"))
    logs = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert logs[-1]["step"] == 12
    assert logs[-1]["epoch"] >= 1                       # crossed at least one epoch boundary
    assert logs[-1]["global_batch"] == 16 and logs[-1]["anchors_seen"] == 12 * 16
    assert json.loads((out / "train_config.json").read_text())["batch_size"] == 16

    # SIGKILL both ranks after the step-4 checkpoint, resume: the same parameters as uninterrupted
    killed = tmp_path / "killed"
    procs = _launch(tmp_path / "shards", world_clip, killed, "--save-every", "4")
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "step-0000004").exists() and time.time() < deadline:
        time.sleep(0.05)
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.communicate()
    assert not (killed / "model.safetensors").exists()
    _finish(_launch(tmp_path / "shards", world_clip, killed, "--save-every", "4", "--resume"))
    a, b = load_file(out / "model.safetensors"), load_file(killed / "model.safetensors")
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < 1e-5, worst
    steps = [json.loads(x)["step"] for x in (killed / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))


def test_effective_batch_is_exact_or_refused():
    from cfgen.train.trainer import accumulation_steps
    assert accumulation_steps(256, 0, 8) == (32, 1)
    assert accumulation_steps(256, 16, 8) == (16, 2)
    assert accumulation_steps(256, 32, 1) == (32, 8)
    with pytest.raises(ValueError, match="cannot run on"):
        accumulation_steps(256, 256, 8)                 # would train with 2,048 anchors per step
    with pytest.raises(ValueError, match="cannot run on"):
        accumulation_steps(100, 32, 1)


def test_counterfactual_features_stay_in_the_graph_without_counterfactuals():
    from cfgen.train.losses import dense_cf
    feats = torch.randn(3, 8, requires_grad=True)      # three anchors, no counterfactual
    out = dense_cf(feats, 3, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 4)
    assert out.shape == (3, 4, 8) and out.requires_grad and out.grad_fn is not None


def test_rng_state_round_trips_every_generator(tmp_path):
    import random
    import numpy as np
    from safetensors.torch import load_file
    from cfgen.train.checkpoint import save_rng, set_rng_state
    save_rng(tmp_path, 0)
    expect = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(load_file(tmp_path / "rng-rank0.safetensors"), json.loads((tmp_path / "rng-rank0.json").read_text()))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expect
