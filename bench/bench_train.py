"""Trainer throughput (images/s, anchor + counterfactual images) next to a bare PyTorch loop doing
the same forward/backward on the same batches; the ratio is the figure. Models are built from config
(`--size b32`: ViT-B/32 dimensions; `tiny`: the demo's CLIP)."""
import argparse
import json
import tempfile
import time
from pathlib import Path

from common import report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=["tiny", "b32"], default="b32")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--anchors", type=int, default=400)
    a = ap.parse_args()
    import torch
    from cfgen.captions.stage import CaptionsConfig, run_captions
    from cfgen.images.stage import ImagesConfig, run_images
    from cfgen.demo.clip import build_clip
    from cfgen.train.data import make_loader
    from cfgen.train.model import DualEncoder, FeatureModule
    from cfgen.train.losses import CFVLMLoss
    from cfgen.train.trainer import TrainConfig, recipe_config, train
    from cfgen.world import world_vocab, world_words
    from cfgen.world.generate import WorldConfig, generate_world
    dims = (dict(image_size=224, patch_size=32, width=768, layers=12, text_width=512, text_layers=12, heads=8,
                 embed_dim=512, max_length=77) if a.size == "b32" else dict(image_size=64, patch_size=8))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        generate_world(d / "w", WorldConfig(n=a.anchors, n_test=10, image_size=224 if a.size == "b32" else 64))
        run_captions(CaptionsConfig(input=[str(d / "w" / "train")], out=str(d / "r"), rules_vocab=world_vocab()))
        run_images(ImagesConfig(run=str(d / "r"), filter=False))
        build_clip(d / "m", words=world_words(), **dims)
        cfg = recipe_config("cf-vlm", {"shards": [str(d / "r" / "final")], "model": str(d / "m"), "out": str(d / "o"),
                                       "max_steps": a.steps, "batch_size": a.batch, "micro_batch": a.batch,
                                       "num_workers": 0, "save_every": 0, "log_every": 1, "warmup_steps": 1})
        t = time.perf_counter()
        train(cfg)
        trainer_s = time.perf_counter() - t
        logs = [json.loads(x) for x in (d / "o" / "train_log.jsonl").read_text().splitlines()]
        ips_trainer = sum(x["images_per_s"] for x in logs[1:]) / max(len(logs) - 1, 1)
        # bare loop: same model, same batches (pre-loaded), plain AdamW, same losses
        enc = DualEncoder.load(d / "m")
        batches = [b for b, _ in zip(make_loader([str(p) for p in sorted((d / "r" / "final").glob("*.tar"))], enc.pre,
                                                 micro_batch=a.batch, num_workers=0), range(a.steps))]
        feats = FeatureModule(enc.model)
        opt = torch.optim.AdamW(enc.model.parameters(), lr=1e-5)
        n_img, t_bare = 0, 0.0
        for i, b in enumerate(batches):
            t = time.perf_counter()
            img, txt = feats(b.pixel_values, b.input_ids, b.attention_mask)
            loss = CFVLMLoss(TrainConfig())(img, txt, b.n, b.cf_owner, b.cf_slot, b.mask, b.local,
                                            enc.model.logit_scale)["total"]
            loss.backward()
            opt.step()
            opt.zero_grad()
            if i:
                t_bare += time.perf_counter() - t
                n_img += b.pixel_values.shape[0]
        ips_bare = n_img / t_bare
    report("train", vars(a), {"trainer_images_per_s": round(ips_trainer, 1), "bare_loop_images_per_s": round(ips_bare, 1),
                              "ratio_trainer_over_bare": round(ips_trainer / ips_bare, 3),
                              "trainer_wall_s": round(trainer_s, 1)})


if __name__ == "__main__":
    main()
