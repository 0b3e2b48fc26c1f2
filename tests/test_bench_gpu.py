"""The GPU benchmark runs end to end with tiny configs on the CPU, so it cannot rot."""
import importlib.util
import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_gpu_benchmark_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_gpu", Path(__file__).parents[1] / "bench" / "gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    info = mod.main(["--tiny", "--out", str(tmp_path)])
    fig = info["figures"]
    for key in ("sdxl_full64_best", "sdxl_crop32_best", "masks_owlv2_sam_s_per_anchor_4_phrases",
                "filter_clip_l14_pairs_per_s", "train_ratio_trainer_over_bare", "kept_cf_per_gpu_hour_paper.yaml",
                "vlm_qwen2vl2b_lora_steps_per_s"):
        assert key in fig, key
    assert fig["vlm_qwen2vl2b_lora_steps_per_s"] > 0
    assert fig["sdxl_full64_best"]["batch"] >= 1 and fig["sdxl_full64_unet_gflop_per_image"] > 0
    assert json.loads((tmp_path / "gpu.json").read_text())["tiny"] is True
    assert (tmp_path / "gpu.md").read_text().count("|") > 20
