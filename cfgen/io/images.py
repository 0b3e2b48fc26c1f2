"""Image bytes <-> pixels, shared by the world, the editors, the trainer and eval."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


MAX_PIXELS = 40_000_000     # decoded width x height accepted anywhere (a PNG of 600 KB can hold 156 MP)


def decode_rgb(data: bytes, max_pixels: int = MAX_PIXELS, short_side: int | None = None) -> Image.Image:
    """Decoded RGB; ValueError before decoding an image larger than `max_pixels`. With
    `short_side`, an image whose shorter side is longer is brought down to it as it is decoded
    (JPEG's reduced-scale decoding, then a resize), so nothing downstream holds the full image."""
    with Image.open(io.BytesIO(data)) as im:
        if im.width * im.height > max_pixels:
            raise ValueError(f"image_too_large: {im.width}x{im.height} pixels")
        if short_side is None or min(im.size) <= short_side:
            return im.convert("RGB")
        scale = short_side / min(im.size)
        size = (max(short_side, round(im.width * scale)), max(short_side, round(im.height * scale)))
        im.draft("RGB", size)                  # JPEG: decode at 1/2, 1/4 or 1/8 scale, never below `size`
        return im.convert("RGB").resize(size, Image.BICUBIC, reducing_gap=3.0)


def encode_image(img: Image.Image | np.ndarray, fmt: str = "jpg", quality: int = 95) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format="JPEG" if fmt in ("jpg", "jpeg") else fmt.upper(),
             **({"quality": quality} if fmt in ("jpg", "jpeg", "webp") else {}))
    return buf.getvalue()
