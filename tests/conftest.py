"""Shared fixtures: tiny data built in code, nothing downloaded."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def jpeg_bytes(color=(200, 30, 30), size=32) -> bytes:
    buf = io.BytesIO()
    arr = np.zeros((size, size, 3), np.uint8)
    arr[...] = color
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


def caption_shards(folder: Path, captions: list[str], shards: int = 2) -> str:
    """`shards` input tars (units 0, 1, ...) in `folder`, each one JPEG per caption."""
    for s in range(shards):
        members = []
        for i, c in enumerate(captions):
            members += [(f"{s:05d}{i:04d}.jpg", jpeg_bytes()), (f"{s:05d}{i:04d}.txt", c.encode())]
        write_tar(folder / f"{s:05d}.tar", members)
    return str(folder)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A small scene world (300 train anchors, 60 test items), shared by the session."""
    from cfgen.world.generate import WorldConfig, generate_world
    out = tmp_path_factory.mktemp("world")
    generate_world(out, WorldConfig(n=300, n_test=60, per_shard=100, seed=1))
    return out


@pytest.fixture(scope="session")
def world_final(small_world, tmp_path_factory):
    """The small world through captions (rules) and images (scene editor): final shards."""
    from cfgen.captions.stage import CaptionsConfig, run_captions
    from cfgen.images.stage import ImagesConfig, run_images
    from cfgen.world import world_vocab
    run = tmp_path_factory.mktemp("world_run")
    run_captions(CaptionsConfig(input=[str(small_world / "train")], out=str(run), rules_vocab=world_vocab()))
    run_images(ImagesConfig(run=str(run), filter=False))
    return run


@pytest.fixture(scope="session")
def world_clip(tmp_path_factory):
    """A tiny random-weight CLIP with the world's vocabulary, saved locally."""
    from cfgen.demo.clip import build_clip
    from cfgen.world import world_words
    return build_clip(tmp_path_factory.mktemp("clip"), words=world_words(), image_size=32, patch_size=8,
                      width=32, layers=2, text_width=32, text_layers=1, heads=2, embed_dim=32)
