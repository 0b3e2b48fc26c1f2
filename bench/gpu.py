"""Every stage's throughput on one GPU, in one table: `python bench/gpu.py --out bench_gpu/`.

No download: every model has random weights at its published size, built from configs. Measures
  - SDXL Base + Refiner 40 + 15 (inpainting): 1024 px full image, 512 px, 512 px crop-and-paste;
    batch 1 and the best batch that fits (each size warmed, then the median of 3 runs); s/image,
    images/s, peak memory, UNet MFU (FLOPs of one UNet call counted with torch's FlopCounterMode,
    times steps, times 2 for guidance, over the time inside the UNets alone, CUDA events);
  - masks: OWLv2 B/16 + SAM ViT-B for an anchor with 4 phrases (one grounding pass), CLIPSeg;
  - the filter: CLIP ViT-L/14 pairs/s;
  - the trainer on ViT-B/32 at 224 px, K = 4, against a bare loop on the same batches (same precision);
  - a generative VLM through the trainer (issue 16's smoke test): Qwen2-VL-2B's architecture,
    LoRA rank 16, bf16, gradient checkpointing, 448 px, 8 anchors x K = 4 per step: steps/s,
    images/s and peak memory;
  - counterfactuals edited per GPU-hour for paper.yaml (1024 px) and fast.yaml (512 px crops), each
    from its own measured resolution; kept ones only for a pass rate given with `--pass-rate`.
`--tiny` runs the same code with tiny configs on the CPU (the smoke test), figures meaningless.
Writes gpu.json and gpu.md in --out.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def _peak(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _sync(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def unet_flops(pipe, size: tuple[int, int], torch) -> float:
    """FLOPs of one UNet call on one image (batch 1) at generation size `size`."""
    from torch.utils.flop_counter import FlopCounterMode
    unet = pipe.unet
    h, w = size[1] // 8, size[0] // 8
    dev, dt = unet.device, unet.dtype
    x = torch.zeros(1, unet.config.in_channels, h, w, device=dev, dtype=dt)
    ctx = torch.zeros(1, 77, unet.config.cross_attention_dim, device=dev, dtype=dt)
    n_time = 6 if unet.config.projection_class_embeddings_input_dim - pipe.text_encoder_2.config.projection_dim == 6 * unet.config.addition_time_embed_dim else 5
    added = {"text_embeds": torch.zeros(1, pipe.text_encoder_2.config.projection_dim, device=dev, dtype=dt),
             "time_ids": torch.zeros(1, n_time, device=dev, dtype=dt)}
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        unet(x, torch.tensor([500], device=dev), encoder_hidden_states=ctx, added_cond_kwargs=added)
    return float(fc.get_total_flops())


class UNetTimer:
    """Time spent inside the UNets alone (CUDA events around each call, summed after a sync), so
    MFU is the UNet's, not diluted by VAE, text encoders, masks and pasting."""

    def __init__(self, torch, unets):
        self.torch, self.cuda = torch, torch.cuda.is_available()
        self.handles = [h for u in unets for h in (u.register_forward_pre_hook(self._start),
                                                    u.register_forward_hook(self._stop))]
        self.reset()

    def reset(self) -> None:
        self.pairs, self.open, self.cpu_s = [], None, 0.0

    def _start(self, *_):
        if self.cuda:
            self.open = self.torch.cuda.Event(enable_timing=True)
            self.open.record()
        else:
            self.open = time.perf_counter()

    def _stop(self, *_):
        if self.cuda:
            end = self.torch.cuda.Event(enable_timing=True)
            end.record()
            self.pairs.append((self.open, end))
        else:
            self.cpu_s += time.perf_counter() - self.open

    def seconds(self) -> float:
        if not self.cuda:
            return self.cpu_s
        self.torch.cuda.synchronize()
        return sum(a.elapsed_time(b) for a, b in self.pairs) / 1000

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def bench_sdxl(d: Path, tiny: bool, device: str, steps: tuple[int, int], fig: dict, repeats: int = 3) -> None:
    import torch
    from PIL import Image
    from cfgen.datamodel import Anchor, Edit, Rewrite
    from cfgen.images.masks import Masker, MaskResult
    from cfgen.images.sdxl import SDXLConfig, SDXLEditor, gen_size
    from cfgen.io.images import encode_image
    from cfgen.testing import build_sdxl

    class Box(Masker):
        def many(self, img, phrases):
            w, h = img.size
            m = Image.new("L", img.size, 0)
            m.paste(255, (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
            return [MaskResult(m, [w // 4, h // 4, 3 * w // 4, 3 * h // 4], 1.0, p) for p in phrases]
    base, ref = build_sdxl(d / "base", d / "ref", full=not tiny)
    src = 64 if tiny else 1024
    a = Anchor("k", "a red car", encode_image(Image.new("RGB", (src, src), (90, 90, 90))))
    rw = Rewrite("k", 0, "a blue car", "kept", edit=Edit("color", "red", "blue", "local"))
    peak = _peak(torch.cuda.get_device_name(0)) if device == "cuda" else None
    cases = ((64, False), (32, False), (32, True)) if tiny else ((1024, False), (512, False), (512, True))
    for res, crop in cases:
        tag = f"sdxl_{'crop' if crop else 'full'}{res}"
        ed = SDXLEditor(SDXLConfig(base=str(base), refiner=str(ref), base_steps=steps[0], refiner_steps=steps[1],
                                   resolution=res, crop=crop, dtype="bfloat16"), masker=Box(), device=device)
        size = (res, res) if crop else gen_size(src, src, res)
        per_image = 2 * (steps[0] * unet_flops(ed.inpaint, size, torch) + steps[1] * unet_flops(ed.ref_inpaint, size, torch))
        timer = UNetTimer(torch, (ed.inpaint.unet, ed.ref_inpaint.unet))
        best = None
        for bs in (1, 2, 4, 8):
            if device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            try:
                ed.edit_many([(a, [rw], [i]) for i in range(bs)], batch_size=bs)      # warm-up at this size
                runs = []
                for _ in range(repeats):
                    timer.reset()
                    _sync(torch)
                    t = time.perf_counter()
                    ed.edit_many([(a, [rw], [i]) for i in range(bs)], batch_size=bs)
                    _sync(torch)
                    runs.append((time.perf_counter() - t, timer.seconds()))
            except Exception as e:                              # out of memory: the previous size is the best
                if "out of memory" not in str(e).lower():
                    raise
                break
            dt, unet_s = sorted(runs)[len(runs) // 2]            # the median run (end to end), and its UNet time
            row = {"batch": bs, "runs": repeats, "s_per_image": round(dt / bs, 4), "images_per_s": round(bs / dt, 4),
                   "unet_share": round(unet_s / dt, 3),
                   "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
                   "unet_mfu": round(per_image * bs / unet_s / (peak * 1e12), 4) if peak else None}
            if bs == 1:
                fig[f"{tag}_batch1"] = row
            if best is None or row["images_per_s"] > best["images_per_s"]:
                best = row
            if tiny and bs >= 2:
                break
        fig[f"{tag}_best"] = best
        fig[f"{tag}_unet_gflop_per_image"] = round(per_image / 1e9, 1)
        timer.remove()
        del ed
        if device == "cuda":
            torch.cuda.empty_cache()


def bench_masks(d: Path, tiny: bool, device: str, fig: dict) -> None:
    import torch
    from PIL import Image
    from cfgen.images.masks import GroundedMasker, MaskConfig
    from cfgen.testing import build_grounding
    owl = build_grounding(d / "owlv2", "owlv2", full=not tiny)
    sam = build_grounding(d / "sam", "sam", full=not tiny)
    seg = build_grounding(d / "clipseg", "clipseg", full=not tiny)
    img = Image.new("RGB", (64, 48) if tiny else (1024, 768), (120, 80, 40))
    phrases = ["red car", "dog", "wooden table", "blue kite"]
    for tag, m in (("owlv2_sam", GroundedMasker(MaskConfig(detector=str(owl), sam=str(sam), box_threshold=0.0), device)),
                   ("clipseg", GroundedMasker(MaskConfig(detector=str(seg), kind="clipseg", sam=None, clipseg_threshold=0.0), device))):
        m.many(img, phrases)
        n = 2 if tiny else 10
        _sync(torch)
        t = time.perf_counter()
        for _ in range(n):
            m.many(img, phrases)
        _sync(torch)
        fig[f"masks_{tag}_s_per_anchor_4_phrases"] = round((time.perf_counter() - t) / n, 4)


def bench_filter(d: Path, tiny: bool, device: str, fig: dict) -> None:
    import torch
    from PIL import Image
    from cfgen.images.filter import ClipScorer
    from cfgen.demo.clip import build_clip
    dims = dict(image_size=32, patch_size=8) if tiny else dict(
        image_size=224, patch_size=14, width=1024, layers=24, heads=16, text_width=768, text_layers=12,
        embed_dim=768, max_length=77)
    build_clip(d / "clip_l14", **dims)
    sc = ClipScorer(str(d / "clip_l14"), device=device)
    img = Image.new("RGB", (256, 256), (120, 30, 30))
    sc.score(img, "a red car", [img] * 4, ["a blue car"] * 4)
    n = 8 if tiny else 128
    _sync(torch)
    t = time.perf_counter()
    for _ in range(n // 4):
        sc.score(img, "a red car", [img] * 4, ["a blue car"] * 4)
    _sync(torch)
    fig["filter_clip_l14_pairs_per_s"] = round(n / (time.perf_counter() - t), 2)


def world_shards(d: Path, n: int, image_size: int) -> Path:
    """Final training shards of a scene world with `n` anchors (captions and edits, no filter)."""
    from cfgen.captions.stage import CaptionsConfig, run_captions
    from cfgen.images.stage import ImagesConfig, run_images
    from cfgen.world import world_vocab
    from cfgen.world.generate import WorldConfig, generate_world
    generate_world(d / "w", WorldConfig(n=n, n_test=10, image_size=image_size))
    run_captions(CaptionsConfig(input=[str(d / "w" / "train")], out=str(d / "r"), rules_vocab=world_vocab()))
    run_images(ImagesConfig(run=str(d / "r"), filter=False))
    return d / "r" / "final"


def bench_train(d: Path, tiny: bool, device: str, fig: dict) -> None:
    """Trainer images/s next to a bare loop (same model, same batches, same precision)."""
    import torch
    from cfgen.demo.clip import build_clip
    from cfgen.train.data import make_loader
    from cfgen.train.model import DualEncoder, FeatureModule
    from cfgen.train.losses import CFVLMLoss
    from cfgen.train.trainer import TrainConfig, recipe_config, train
    from cfgen.world import world_words
    batch, steps = (8, 3) if tiny else (256, 8)
    size = 64 if tiny else 224
    dims = dict(image_size=64, patch_size=8) if tiny else dict(
        image_size=224, patch_size=32, width=768, layers=12, text_width=512, text_layers=12, heads=8,
        embed_dim=512, max_length=77)
    final = world_shards(d, batch * (steps + 2), size)
    build_clip(d / "m", words=world_words(), **dims)
    precision = "bf16" if device == "cuda" else "fp32"
    cfg = recipe_config("cf-vlm", {"shards": [str(final)], "model": str(d / "m"), "out": str(d / "o"),
                                   "max_steps": steps, "batch_size": batch, "micro_batch": batch, "k": 4,
                                   "num_workers": 0 if tiny else 8, "save_every": 0, "log_every": 1,
                                   "warmup_steps": 1, "precision": precision})
    train(cfg)
    logs = [json.loads(x) for x in (d / "o" / "train_log.jsonl").read_text().splitlines()]
    ips_trainer = sum(x["images_per_s"] for x in logs[1:]) / max(len(logs) - 1, 1)
    enc = DualEncoder.load(d / "m", device=device)
    batches = [b for b, _ in zip(make_loader(sorted(str(p.resolve()) for p in final.glob("*.tar")),
                                             enc.pre, micro_batch=batch, num_workers=0), range(steps))]
    feats = FeatureModule(enc.model)
    opt = torch.optim.AdamW(enc.model.parameters(), lr=1e-5)
    n_img, t_bare = 0, 0.0
    ac = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    for i, b in enumerate(batches):
        _sync(torch)
        t = time.perf_counter()
        with ac:
            img, txt = feats(b.pixel_values.to(device), b.input_ids.to(device), b.attention_mask.to(device))
        loss = CFVLMLoss(TrainConfig())(img.float(), txt.float(), b.n, b.cf_owner.to(device), b.cf_slot.to(device),
                                        b.mask, b.local, enc.model.logit_scale)["total"]
        loss.backward()
        opt.step()
        opt.zero_grad()
        _sync(torch)
        if i:
            t_bare += time.perf_counter() - t
            n_img += b.pixel_values.shape[0]
    ips_bare = n_img / max(t_bare, 1e-9)
    fig["train_b32_images_per_s"] = round(ips_trainer, 1)
    fig["train_bare_loop_images_per_s"] = round(ips_bare, 1)
    fig["train_ratio_trainer_over_bare"] = round(ips_trainer / ips_bare, 3)


def bench_vlm(d: Path, tiny: bool, device: str, fig: dict) -> None:
    """The trainer on a Qwen2-VL-2B-architecture VLM (random weights): LoRA, bf16, K = 4."""
    import torch
    from cfgen.testing import build_qwen2_vl
    from cfgen.train.trainer import recipe_config, train
    batch, steps = (8, 3) if tiny else (8, 12)
    final = world_shards(d, batch * (steps + 2), 64 if tiny else 224)
    t = time.time()
    build_qwen2_vl(d / "m", full=not tiny)
    fig["vlm_build_s"] = round(time.time() - t, 1)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cfg = recipe_config("cf-vlm-qwen2-vl-2b", {
        "shards": [str(final)], "model": str(d / "m"), "out": str(d / "o"), "max_steps": steps,
        "batch_size": batch, "micro_batch": batch, "k": 4, "num_workers": 0 if tiny else 4, "save_every": 0,
        "log_every": 1, "warmup_steps": 1, "precision": "bf16" if device == "cuda" else "fp32",
        "gradient_checkpointing": True})
    train(cfg)
    fig["vlm_qwen2vl2b_lora_gradient_checkpointing"] = cfg.gradient_checkpointing
    logs = [json.loads(x) for x in (d / "o" / "train_log.jsonl").read_text().splitlines()][2:]   # warm
    ips = sum(x["images_per_s"] for x in logs) / max(len(logs), 1)
    per_step = batch * 5                        # 8 anchors + 4 counterfactual images each (K = 4)
    fig["vlm_qwen2vl2b_lora_images_per_s"] = round(ips, 2)
    fig["vlm_qwen2vl2b_lora_steps_per_s"] = round(ips / per_step, 3)
    if device == "cuda":
        fig["vlm_qwen2vl2b_lora_peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)


def per_gpu_hour(fig: dict, pass_rate: float | None, k: int = 4) -> None:
    """Counterfactuals edited per GPU-hour: one anchor costs K edits (best batch) + one grounding
    pass + K filter pairs, each as measured here, for the resolution each recipe uses (a recipe
    whose resolution was not measured gets no figure). Kept ones only with `--pass-rate` given:
    random weights cannot measure the filter's pass rate, so it is never assumed silently."""
    for recipe, tag in (("paper.yaml", "sdxl_full1024_best"), ("fast.yaml", "sdxl_crop512_best")):
        if not fig.get(tag) or "masks_owlv2_sam_s_per_anchor_4_phrases" not in fig \
                or "filter_clip_l14_pairs_per_s" not in fig:
            continue
        s_anchor = (k * fig[tag]["s_per_image"] + fig["masks_owlv2_sam_s_per_anchor_4_phrases"]
                    + k / fig["filter_clip_l14_pairs_per_s"])
        fig[f"edited_cf_per_gpu_hour_{recipe}"] = round(3600 / s_anchor * k)
        if pass_rate is not None:
            fig[f"kept_cf_per_gpu_hour_{recipe}_at_assumed_pass_rate_{pass_rate}"] = round(3600 / s_anchor * k * pass_rate)


def markdown(fig: dict, head: str) -> str:
    lines = [head, "", "| figure | value |", "|---|---|"]
    for k, v in fig.items():
        lines.append(f"| {k} | {json.dumps(v) if isinstance(v, dict) else v} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench_gpu")
    ap.add_argument("--tiny", action="store_true", help="tiny configs on any device: the smoke test")
    ap.add_argument("--steps", default="40,15")
    ap.add_argument("--pass-rate", type=float, default=None,
                    help="a filter pass rate measured elsewhere (e.g. a real run's stats): adds kept cf per GPU-hour")
    ap.add_argument("--only", default="sdxl,masks,filter,train,vlm")
    a = ap.parse_args(argv)
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not a.tiny:
        raise SystemExit("bench/gpu.py needs a CUDA GPU (or --tiny for the CPU smoke test)")
    steps = (2, 1) if a.tiny else tuple(int(x) for x in a.steps.split(","))
    fig: dict = {}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for part in a.only.split(","):
            t = time.time()
            {"sdxl": lambda: bench_sdxl(d / "sdxl", a.tiny, device, steps, fig),
             "masks": lambda: bench_masks(d / "masks", a.tiny, device, fig),
             "filter": lambda: bench_filter(d / "filter", a.tiny, device, fig),
             "train": lambda: bench_train(d / "train", a.tiny, device, fig),
             "vlm": lambda: bench_vlm(d / "vlm", a.tiny, device, fig)}[part]()
            fig[f"{part}_bench_s"] = round(time.time() - t, 1)
    per_gpu_hour(fig, a.pass_rate)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"machine": machine(), "tiny": a.tiny, "steps": list(steps), "pass_rate_given": a.pass_rate,
            "wall_s": round(time.time() - t0, 1), "figures": fig}
    (out / "gpu.json").write_text(json.dumps(info, indent=1))
    rate = f"filter pass rate given: {a.pass_rate}" if a.pass_rate is not None else "no filter pass rate assumed"
    (out / "gpu.md").write_text(markdown(fig, f"{info['machine']}; steps {steps}; {rate}; SDXL rows: median of 3 "
                                              f"warmed runs per batch size; wall {info['wall_s']} s") + "\n")
    print((out / "gpu.md").read_text())
    return info


if __name__ == "__main__":
    main()
