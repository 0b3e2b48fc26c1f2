"""One rank of the two-process check: global-batch losses and gradients with gloo.

argv: rank world port world_final_dir clip_dir out_file. Rank r takes its half of one fixed
global batch of 8 anchors; world=1 takes all 8. Gradients are averaged across ranks as DDP does.
"""
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import webdataset as wds
from safetensors.torch import save_file

rank, world, port, final_dir, clip_dir, out = sys.argv[1:]
rank, world = int(rank), int(world)
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
if world > 1:
    dist.init_process_group("gloo", rank=rank, world_size=world)

from cfgen.train.data import Collator, Decoder  # noqa: E402
from cfgen.train.model import DualEncoder, FeatureModule  # noqa: E402
from cfgen.train.losses import CFVLMLoss  # noqa: E402
from cfgen.train.trainer import TrainConfig  # noqa: E402

torch.manual_seed(0)
enc = DualEncoder.load(clip_dir)
dec = Decoder(k=4, cf_ratio=1.0, seed=0)
urls = sorted(str(p) for p in Path(final_dir, "final").glob("*.tar"))
data = wds.WebDataset(urls, shardshuffle=False, nodesplitter=lambda src: src)  # the same 8 on every rank
examples = [dec(s) for s, _ in zip(data, range(8))]
per = 8 // world
batch = Collator(enc.pre, 4)(examples[rank * per:(rank + 1) * per])
feats = FeatureModule(enc.model)
img, txt = feats(batch.pixel_values, batch.input_ids, batch.attention_mask)
cfg = TrainConfig(text_negatives="all", image_negatives=True)
losses = CFVLMLoss(cfg)(img, txt, batch.n, batch.cf_owner, batch.cf_slot, batch.mask, batch.local,
                        enc.model.logit_scale)
losses["total"].backward()
grad = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                  for p in enc.model.parameters()])
if world > 1:
    dist.all_reduce(grad)
    grad /= world
save_file({**{k: v.detach().reshape(1) for k, v in losses.items()}, "grad": grad.contiguous()}, out)
if world > 1:
    dist.destroy_process_group()
