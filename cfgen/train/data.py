"""Training data: a WebDataset pipeline over final shards -> micro-batches of anchors and
their (up to K) counterfactuals, preprocessed with the model's own processor.

Order is a pure function of (seed, epoch): shards and the shuffle buffer are seeded, so a
resumed run skips exactly the samples already consumed in the epoch and sees the same data.
Corrupt samples or shards are skipped with a warning and counted, never fatal.
"""
from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

import torch
import webdataset as wds
from ..datamodel import Sample
from ..io.images import decode_rgb
from ..seeds import stable_hash32

log = logging.getLogger("cfgen.train")


URL_SCHEMES = ("pipe:", "http://", "https://", "s3://", "gs://", "hf://")


def shard_urls(specs: list[str], say: bool = True) -> list[str]:
    """The shards to train on. A spec the user wrote as a URL or `pipe:` command is passed to
    WebDataset as is; everything else (files, brace lists, globs, directories) becomes absolute
    local paths, so no file name found by listing a directory is ever run as a command. `say`:
    log a run folder taken for its final shards (once per training, not at every expansion)."""
    from ..io.reader import expand_inputs
    out: list[str] = []
    for spec in specs:
        if spec.startswith(URL_SCHEMES):
            out.append(spec)
            continue
        if (Path(spec) / "manifest.json").is_file() and (Path(spec) / "final").is_dir():
            if say:
                log.info("--shards %s is a run folder: training on its filtered shards, %s", spec, Path(spec) / "final")
            spec = str(Path(spec) / "final")
        found = [p for p in expand_inputs(spec) if p.endswith(".tar")]
        test = [p for p in found if Path(p).parent.name == "test" and (Path(p).parent.parent / "world.json").is_file()]
        if test:
            raise ValueError(f"--shards {spec}: {test[0]} is a scene world's held-out test split; train on its "
                             "train/ split or on a run's final/ shards")
        out.extend(found)
    if not out:
        raise ValueError(f"no .tar shards in --shards {' '.join(specs)}")
    return out


def run_k(urls: list[str]) -> int | None:
    """The K that made these shards: the manifest's, when they are a run's final shards (None: not
    a run's, or a run that did not record it)."""
    from ..run import Manifest
    runs = {Path(u).parent.parent for u in urls if Path(u).parent.name == "final"}
    ks = {Manifest.read(r).k for r in runs if Manifest.path(r).is_file()} - {None}
    return max(ks) if ks else None


@dataclass
class Batch:
    pixel_values: torch.Tensor         # [N + M, 3, H, W]: N anchors, then M counterfactual images
                                       # ([N, ...] when the recipe reads only the counterfactual captions)
    input_ids: torch.Tensor            # [N + M, L]: N anchor captions, then M counterfactual captions
    attention_mask: torch.Tensor
    n: int                             # anchors
    cf_owner: torch.Tensor             # [M] anchor index of each counterfactual
    cf_slot: torch.Tensor              # [M] its slot k < K
    mask: torch.Tensor                 # [N, K] valid counterfactual slots
    local: torch.Tensor                # [N, K] valid slots whose edit is local (for L_fcd)
    keys: list[str] = field(default_factory=list)
    skipped: int = 0                   # corrupt samples/shards the loader skipped since its last batch

    def pin_memory(self) -> "Batch":
        """Called by the DataLoader's pin-memory thread (it pins any object with this method), so
        the trainer's `.to(device, non_blocking=True)` copies are asynchronous."""
        return dataclasses.replace(self, **{f.name: getattr(self, f.name).pin_memory()
                                            for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), torch.Tensor)})


class SkipCounter:
    """A webdataset handler that logs and counts what it skips. It runs where the loader runs (a
    DataLoader worker's copy counts that worker's skips), so each batch carries the count taken
    since the worker's previous batch (`take`) to the main process."""

    def __init__(self) -> None:
        self.skipped = 0
        self._taken = 0

    def __call__(self, exn: Exception) -> bool:
        self.skipped += 1
        log.warning("skipping corrupt training data: %s: %s", type(exn).__name__, exn)
        return True

    def take(self) -> int:
        new, self._taken = self.skipped - self._taken, self.skipped
        return new


def _use_cf(key: str, cf_ratio: float, seed: int) -> bool:
    if cf_ratio >= 1.0:
        return True
    return stable_hash32(seed, key) / 2**32 < cf_ratio


class Decoder:
    """Raw tar sample -> example dict (picklable for DataLoader workers), through the data
    model's own reader of the final sample (`Sample.from_wds`). `cf_images` False: the
    counterfactuals' captions only (their images stay undecoded, None; so a corrupt
    counterfactual image skips its sample only for recipes that decode it)."""

    def __init__(self, k: int, cf_ratio: float, seed: int, use_cf: bool = True, short_side: int | None = None,
                 cf_images: bool = True):
        self.k, self.cf_ratio, self.seed, self.use_cf, self.short_side = k, cf_ratio, seed, use_cf, short_side
        self.cf_images = cf_images

    def _rgb(self, data: bytes) -> Any:
        return decode_rgb(data, short_side=self.short_side)

    def __call__(self, s: dict[str, Any]) -> dict[str, Any]:
        sample = Sample.from_wds({k: v for k, v in s.items() if not k.startswith("__") or k == "__key__"})
        cfs = []
        if self.use_cf and _use_cf(sample.key, self.cf_ratio, self.seed):
            cfs = [(self._rgb(c.image) if self.cf_images else None, c.text, c.edit.scope == "local")
                   for c in sample.cfs[: self.k]]
        return {"key": sample.key, "image": self._rgb(sample.image), "caption": sample.caption, "cfs": cfs}


class Collator:
    """Examples -> a Batch. `uint8`: pixels travel as uint8 and the trainer normalises them on the
    device (`pre.on_device`)."""

    def __init__(self, pre: Any, k: int, uint8: bool = False, skips: SkipCounter | None = None):
        self.pre, self.k, self.uint8, self.skips = pre, k, uint8, skips

    def __call__(self, examples: list[dict[str, Any]]) -> Batch:
        n = len(examples)
        imgs = [e["image"] for e in examples]
        txts = [e["caption"] for e in examples]
        owner, slot = [], []
        mask = torch.zeros(n, self.k, dtype=torch.bool)
        local = torch.zeros(n, self.k, dtype=torch.bool)
        for i, e in enumerate(examples):
            for j, (im, t, is_local) in enumerate(e["cfs"]):
                if im is not None:
                    imgs.append(im)
                txts.append(t)
                owner.append(i)
                slot.append(j)
                mask[i, j] = True
                local[i, j] = is_local
        tok = self.pre.tokens(txts)
        pixels = self.pre.transport_pixels(imgs) if self.uint8 else self.pre.pixels(imgs)
        return Batch(pixel_values=pixels, input_ids=tok["input_ids"],
                     attention_mask=tok.get("attention_mask", torch.ones_like(tok["input_ids"])), n=n,
                     cf_owner=torch.tensor(owner, dtype=torch.long), cf_slot=torch.tensor(slot, dtype=torch.long),
                     mask=mask, local=local, keys=[e["key"] for e in examples],
                     skipped=self.skips.take() if self.skips else 0)


class _Skip:
    """Drop the samples of the first `batches` micro-batches (this worker's share of them:
    the DataLoader takes batches from its workers in turn)."""

    def __init__(self, batches: int, micro_batch: int):
        self.batches, self.micro_batch = batches, micro_batch

    def __call__(self, src: Iterator[Any]) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        w, n_workers = (info.id, info.num_workers) if info else (0, 1)
        mine = max(0, -(-(self.batches - w) // n_workers))
        return islice(src, mine * self.micro_batch, None)


def make_loader(urls: list[str], pre: Any, *, k: int = 4, cf_ratio: float = 1.0, use_cf: bool = True,
                cf_images: bool = True, micro_batch: int = 32, seed: int = 0, epoch: int = 0, skip_batches: int = 0,
                shuffle_buffer: int = 1000, num_workers: int = 0, handler: SkipCounter | None = None,
                rank: int = 0, world_size: int = 1, uint8_pixels: bool = False) -> torch.utils.data.DataLoader:
    """Micro-batches for one epoch, on this rank; `skip_batches` already consumed are skipped.
    `cf_images` False: batches carry the counterfactual captions but no counterfactual images."""
    rng = random.Random(f"{seed}-{epoch}")
    shards = list(urls)
    rng.shuffle(shards)
    if world_size > 1:
        shards = shards[rank::world_size]        # split by node; every rank needs >= 1 shard
    handler = handler or SkipCounter()
    ds = (wds.WebDataset(shards, shardshuffle=False, handler=handler, empty_check=False,
                         nodesplitter=None, workersplitter=wds.split_by_worker)
          .shuffle(shuffle_buffer, rng=random.Random(f"buf-{seed}-{epoch}"))
          .compose(_Skip(skip_batches, micro_batch))
          .map(Decoder(k, cf_ratio, seed, use_cf, pre.short_side, cf_images), handler=handler)
          .batched(micro_batch, collation_fn=Collator(pre, k, uint8_pixels, handler), partial=False))
    return torch.utils.data.DataLoader(ds, batch_size=None, num_workers=num_workers, persistent_workers=False,
                                       pin_memory=torch.cuda.is_available())
