import json
import subprocess
import sys


def test_demo_quick_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "cfgen.cli", "demo", "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| recipe | binding (unseen)" in r.stdout and "| cf-vlm |" in r.stdout
    res = json.loads((out / "results.json").read_text())
    assert set(res["table"]) == {"pretrained", "std-ft", "textneg-ft", "cf-vlm", "cf-vlm-no-align",
                                 "cf-vlm-no-csd", "cf-vlm-no-fcd"}
    for name, cols in res["table"].items():
        for mean, _ in cols.values():
            assert 0.0 <= mean <= 100.0
    assert (out / "results.png").stat().st_size > 0 and (out / "results.md").exists()
    for recipe in ("cf-vlm", "std-ft"):
        log = (out / "models" / "seed0" / recipe / "train_log.jsonl").read_text().splitlines()
        assert json.loads(log[-1])["step"] == res["config"]["finetune_steps"]
    # a second run reuses every finished step and gives the same table
    r2 = subprocess.run([sys.executable, "-m", "cfgen.cli", "demo", "--quick", "--out", str(out)],
                        capture_output=True, text=True, timeout=900)
    assert r2.returncode == 0 and json.loads((out / "results.json").read_text())["table"] == res["table"]
