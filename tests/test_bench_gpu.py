"""The GPU benchmark runs end to end with tiny configs on the CPU, so it cannot rot."""
import importlib.util
import json
from pathlib import Path

import pytest


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", Path(__file__).parents[1] / "bench" / "gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_per_gpu_hour_uses_only_measured_resolutions_and_never_assumes_a_pass_rate():
    mod = _bench()
    fig = {"sdxl_full1024_best": {"s_per_image": 2.0}, "masks_owlv2_sam_s_per_anchor_4_phrases": 1.0,
           "filter_clip_l14_pairs_per_s": 8.0, "sdxl_crop32_best": {"s_per_image": 0.1}}
    mod.per_gpu_hour(fig, None)
    # one anchor: 4 edits x 2.0 s + 1.0 s of masks + 4 pairs / 8 pairs/s = 9.5 s -> 3600 / 9.5 x 4 = 1515.8
    assert fig["edited_cf_per_gpu_hour_paper.yaml"] == 1516
    assert not any(k.startswith("kept_") or "fast.yaml" in k for k in fig)     # 512 px crops were not measured
    mod.per_gpu_hour(fig, 0.5)
    assert fig["kept_cf_per_gpu_hour_paper.yaml_at_assumed_pass_rate_0.5"] == 758


@pytest.mark.slow
def test_gpu_benchmark_smoke(tmp_path):
    info = _bench().main(["--tiny", "--out", str(tmp_path)])
    fig = info["figures"]
    for key in ("sdxl_full64_best", "sdxl_crop32_best", "masks_owlv2_sam_s_per_anchor_4_phrases",
                "filter_clip_l14_pairs_per_s", "train_ratio_trainer_over_bare", "vlm_qwen2vl2b_lora_steps_per_s"):
        assert key in fig, key
    assert not any("per_gpu_hour" in k for k in fig)          # tiny sizes are not the recipes' resolutions
    assert fig["vlm_qwen2vl2b_lora_gradient_checkpointing"] is True
    assert fig["sdxl_full64_best"]["runs"] == 3 and 0 < fig["sdxl_full64_best"]["unet_share"] <= 1
    assert fig["vlm_qwen2vl2b_lora_steps_per_s"] > 0
    assert fig["sdxl_full64_best"]["batch"] >= 1 and fig["sdxl_full64_unet_gflop_per_image"] > 0
    assert json.loads((tmp_path / "gpu.json").read_text())["tiny"] is True
    assert (tmp_path / "gpu.md").read_text().count("|") > 20
