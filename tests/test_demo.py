import json
import subprocess
import sys

import pytest


def test_paired_differences_use_the_same_seed():
    from cfgen.demo import paired_differences
    cols = ["unseen:binding_swap", "unseen:relation_swap", "unseen:replace_color", "unseen:replace_shape",
            "seen:binding_swap", "seen:relation_swap"]
    std = {s: {c: 0.5 + 0.1 * s for c in cols} for s in range(3)}          # seeds differ a lot...
    cf = {s: {c: 0.52 + 0.1 * s for c in cols} for s in range(3)}          # ...the paired gap is exactly 2 points
    p = paired_differences({"pretrained": std, "std-ft": std, "cf-vlm": cf})
    mean, half = p["cf-vlm - std-ft"]["unseen:binding_swap"]
    assert mean == pytest.approx(2.0) and half == pytest.approx(0.0, abs=1e-9)


def test_demo_quick_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "cfgen.cli", "demo", "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| recipe | binding (unseen)" in r.stdout and "| cf-vlm |" in r.stdout
    assert "| cf-vlm - std-ft |" in r.stdout and "| cf-vlm-plus - textneg-ft |" in r.stdout
    res = json.loads((out / "results.json").read_text())
    assert set(res["table"]) == {"pretrained", "std-ft", "textneg-ft", "cf-vlm", "cf-vlm-plus"}
    for name, cols in res["table"].items():
        for mean, _ in cols.values():
            assert 0.0 <= mean <= 100.0
    seeds = res["config"]["seeds"]
    assert all(set(map(int, res["per_seed"][r])) == set(seeds) for r in res["table"])
    assert res["pretrain_curve"] and "unseen:replace_shape" in res["pretrain_profile"]
    assert (out / "results.png").stat().st_size > 0 and (out / "results.md").exists()
    for recipe in ("cf-vlm", "std-ft"):
        log = (out / "models" / "seed0" / recipe / "train_log.jsonl").read_text().splitlines()
        assert json.loads(log[-1])["step"] == res["config"]["finetune_steps"]
    # a second run reuses every finished step and gives the same table
    r2 = subprocess.run([sys.executable, "-m", "cfgen.cli", "demo", "--quick", "--out", str(out)],
                        capture_output=True, text=True, timeout=900)
    assert r2.returncode == 0 and json.loads((out / "results.json").read_text())["table"] == res["table"]


@pytest.mark.slow
def test_demo_quick_runs_on_the_generative_vlm_backbone(tmp_path):
    """`cfgen demo --backbone vlm`: the same pipeline and table with a LLaVA-architecture VLM
    (E5-V embeddings) as the model pretrained and fine-tuned; the filter stays a CLIP."""
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "cfgen.cli", "demo", "--quick", "--backbone", "vlm", "--out", str(out),
                        "--recipes", "std-ft,cf-vlm"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "stand-in VLM" in r.stdout and "| cf-vlm - std-ft |" in r.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["pretrain"]["backbone"] == "vlm"
    assert json.loads((out / "models" / "pretrained" / "config.json").read_text())["model_type"] == "llava"
    assert json.loads((out / "models" / "seed0" / "cf-vlm" / "config.json").read_text())["model_type"] == "llava"
    assert set(res["table"]) == {"pretrained", "std-ft", "cf-vlm"}


@pytest.mark.slow
def test_demo_k_6_edits_and_trains_with_up_to_6_per_anchor(tmp_path):
    """#28: K is set once. `cfgen demo --k 6 --quick` generates, edits and trains with up to 6
    counterfactuals per anchor (the images stage used to stop at 4, a K of its own)."""
    import webdataset as wds
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "cfgen.cli", "demo", "--quick", "--k", "6", "--out", str(out),
                        "--recipes", "cf-vlm", "--seeds", "0"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    per_anchor = [len(json.loads(s["json"])["cf"]) for s in
                  wds.WebDataset(sorted(str(p) for p in (out / "run" / "final").glob("*.tar")), shardshuffle=False)]
    assert max(per_anchor) == 6 and sum(n > 4 for n in per_anchor) >= 5, per_anchor
    assert json.loads((out / "models" / "seed0" / "cf-vlm" / "train_config.json").read_text())["k"] == 6
