"""Image bytes <-> pixels, shared by the world, the editors, the trainer and eval."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def decode_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def encode_image(img: Image.Image | np.ndarray, fmt: str = "jpg", quality: int = 95) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format="JPEG" if fmt in ("jpg", "jpeg") else fmt.upper(),
             **({"quality": quality} if fmt in ("jpg", "jpeg", "webp") else {}))
    return buf.getvalue()
