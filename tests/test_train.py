import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cfgen.train.trainer import NonFiniteLoss, train
from tests.helpers import kill_when, train_cfg as _cfg, train_log as _log


def test_tiny_clip_trains_loss_falls_and_reloads(world_final, world_clip, tmp_path):
    from transformers import CLIPModel
    out = tmp_path / "ft"
    r = train(_cfg(world_final, world_clip, out, max_steps=40))
    assert r["step"] == 40
    recs = _log(out)
    first = sum(x["loss"] for x in recs[:3]) / 3
    last = sum(x["loss"] for x in recs[-3:]) / 3
    assert last < first - 0.2, (first, last)
    assert all(x["csd"] >= 0 and x["fcd"] >= 0 for x in recs)
    m = CLIPModel.from_pretrained(out)
    ref = CLIPModel.from_pretrained(world_clip)
    assert any(not torch.equal(a, b) for a, b in zip(m.parameters(), ref.parameters()))
    assert 0 <= float(m.logit_scale) <= float(torch.log(torch.tensor(100.0))) + 1e-6


def test_resume_after_sigkill_gives_the_same_parameters(world_final, world_clip, tmp_path):
    from safetensors.torch import load_file
    common = ["--shards", str(world_final / "final"), "--model", str(world_clip), "--batch-size", "16",
              "--micro-batch", "8", "--lr", "1e-3", "--warmup-steps", "2", "--num-workers", "0",
              "--max-steps", "12", "--save-every", "4", "--seed", "3"]
    cmd = [sys.executable, "-m", "cfgen.cli", "train", *common]
    subprocess.run(cmd + ["--out", str(tmp_path / "ref")], check=True, capture_output=True)
    out = tmp_path / "killed"
    kill_when(cmd + ["--out", str(out)], lambda: (out / "checkpoints" / "step-0000004").exists())
    assert not (out / "model.safetensors").exists()
    subprocess.run(cmd + ["--out", str(out), "--resume"], check=True, capture_output=True)
    a, b = load_file(tmp_path / "ref" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < 1e-6, worst
    steps = [x["step"] for x in _log(out)]
    assert steps == sorted(set(steps)) and steps[-1] == 12          # no duplicated log lines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_give_the_same_loss_and_grads_as_one(world_final, world_clip, tmp_path):
    script = Path(__file__).parent / "ddp_worker.py"
    port = str(_free_port())
    single = subprocess.run([sys.executable, str(script), "0", "1", port, str(world_final), str(world_clip),
                             str(tmp_path / "single.pt")], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-2000:]
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", port, str(world_final), str(world_clip),
                               str(tmp_path / f"rank{r}.pt")], stderr=subprocess.PIPE, text=True) for r in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    from safetensors.torch import load_file
    one = load_file(tmp_path / "single.pt")
    for r in range(2):
        two = load_file(tmp_path / f"rank{r}.pt")
        for k in ("total", "align", "csd", "fcd"):
            assert torch.allclose(one[k], two[k], atol=1e-5), (k, one[k], two[k])
        g1, g2 = one["grad"], two["grad"]
        assert torch.allclose(g1, g2, atol=1e-5, rtol=1e-4), float((g1 - g2).abs().max())


def test_nonfinite_loss_stops_with_a_usable_checkpoint(world_final, world_clip, tmp_path, monkeypatch):
    from transformers import CLIPModel
    from cfgen.train.losses import CFVLMLoss
    real = CFVLMLoss.__call__
    calls = {"n": 0}

    def poisoned(self, *a, **k):
        out = real(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 4:
            out["total"] = out["total"] * float("nan")
        return out
    monkeypatch.setattr(CFVLMLoss, "__call__", poisoned)
    with pytest.raises(NonFiniteLoss, match="step 3"):
        train(_cfg(world_final, world_clip, tmp_path / "nan", max_steps=10))
    ck = tmp_path / "nan" / "checkpoints" / "step-0000003-before-nonfinite"
    m = CLIPModel.from_pretrained(ck / "model")
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_corrupt_training_shard_is_skipped_and_counted(world_final, world_clip, tmp_path):
    import shutil
    d = tmp_path / "shards"
    d.mkdir()
    for p in (world_final / "final").glob("*.tar"):
        shutil.copy(p, d / p.name)
    (d / "part-99999.tar").write_bytes(b"\x00garbage" * 1000)
    r = train(_cfg(world_final, world_clip, tmp_path / "c", shards=[str(d)], max_steps=12))
    assert r["step"] == 12 and r["skipped_corrupt"] >= 1


def test_siglip_model_trains_with_the_sigmoid_loss(world_final, world_clip, tmp_path):
    """A tiny SigLIP (with the CLIP test tokenizer/processor) goes through the same trainer."""
    from transformers import AutoProcessor, SiglipConfig, SiglipModel
    from cfgen.train.model import DualEncoder
    proc = AutoProcessor.from_pretrained(world_clip)
    n_vocab = len(proc.tokenizer)
    cfg = SiglipConfig(text_config=dict(vocab_size=n_vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=32,
                                        pad_token_id=proc.tokenizer.pad_token_id),
                       vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                          num_attention_heads=2, image_size=32, patch_size=8))
    torch.manual_seed(0)
    SiglipModel(cfg).save_pretrained(tmp_path / "siglip")
    proc.save_pretrained(tmp_path / "siglip")
    enc = DualEncoder.load(tmp_path / "siglip")
    assert enc.kind == "siglip" and enc.logit_bias is not None
    out = tmp_path / "ft"
    train(_cfg(world_final, tmp_path / "siglip", out, max_steps=25, lr=3e-3))
    recs = _log(out)
    assert recs[-1]["loss"] < recs[0]["loss"]
    m = SiglipModel.from_pretrained(out)
    assert float(m.logit_scale) <= float(torch.log(torch.tensor(100.0))) + 1e-6


def test_textneg_ft_loads_no_counterfactual_image_and_its_loss_is_infonce_with_one_caption_negative(
        world_final, world_clip):
    """textneg-ft reads only counterfactual captions (one per anchor, as a hard negative), so its
    batches carry no counterfactual image; the loss on such a batch is InfoNCE whose image-to-text
    softmax also holds each anchor's first counterfactual caption, worked out here by hand."""
    import torch.nn.functional as F
    from cfgen.train.data import make_loader
    from cfgen.train.losses import CFVLMLoss
    from cfgen.train.model import DualEncoder, image_features, text_features
    from cfgen.train.trainer import recipe_config
    cfg = recipe_config("textneg-ft", {"shards": [str(world_final / "final")], "model": str(world_clip)})
    assert not cfg.needs_cf_images()
    for recipe in ("cf-vlm", "cf-vlm-plus"):
        assert recipe_config(recipe, {"shards": ["x"], "model": "m"}).needs_cf_images()
    enc = DualEncoder.load(world_clip)
    urls = [str(p) for p in sorted((world_final / "final").glob("*.tar"))]
    kw = dict(k=4, micro_batch=8, seed=0, shuffle_buffer=50)
    full = next(iter(make_loader(urls, enc.pre, **kw)))
    b = next(iter(make_loader(urls, enc.pre, cf_images=False, **kw)))
    m = int(b.cf_owner.numel())
    assert m > 0 and b.pixel_values.shape[0] == b.n == 8 and b.input_ids.shape[0] == 8 + m
    assert b.keys == full.keys and torch.equal(b.input_ids, full.input_ids) and torch.equal(b.mask, full.mask)
    assert torch.equal(b.pixel_values, full.pixel_values[:8])
    with torch.no_grad():
        img = F.normalize(image_features(enc.model, enc.pre.on_device(b.pixel_values)), dim=-1)
        txt = F.normalize(text_features(enc.model, b.input_ids, b.attention_mask), dim=-1)
        out = CFVLMLoss(cfg)(img, txt, b.n, b.cf_owner, b.cf_slot, b.mask, b.local, enc.model.logit_scale)
        scale = enc.model.logit_scale.exp()
        first = [8 + j for j in range(m) if int(b.cf_slot[j]) == 0]          # each anchor's slot-0 caption
        i2t = scale * img @ torch.cat([txt[:8], txt[first]]).T
        t2i = scale * txt[:8] @ img.T
        want = (F.cross_entropy(i2t, torch.arange(8)) + F.cross_entropy(t2i, torch.arange(8))) / 2
    assert len(first) == int(b.mask[:, 0].sum()) > 0
    assert float(out["align"]) == pytest.approx(float(want), rel=1e-5)
    assert float(out["total"]) == pytest.approx(float(want), rel=1e-5) and float(out["csd"]) == 0.0


def test_training_on_a_run_folder_says_so_once(world_final, world_clip, tmp_path, caplog):
    """`--shards RUN` (a run folder, not its final/): one info line names the shards taken."""
    import logging
    with caplog.at_level(logging.INFO, logger="cfgen.train"):
        train(_cfg(world_final, world_clip, tmp_path / "m", shards=[str(world_final)], max_steps=1))
    said = [r.getMessage() for r in caplog.records if "is a run folder" in r.getMessage()]
    assert len(said) == 1 and str(world_final / "final") in said[0]
