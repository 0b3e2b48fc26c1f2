"""Mask post-processing (dilate + feather) per local edit: PIL MaxFilter (before) vs the
integral-image dilation (now), on random blobs at the sizes the images stage sees.

    python bench/bench_masks.py
"""
import time

import numpy as np
from PIL import Image, ImageFilter

from cfgen.images.masks import MaskConfig, dilate


def blob(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    cy, cx, r = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 4, 3 * w // 4), min(h, w) // 5
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2


def timed(fn, reps: int = 3) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main() -> None:
    cfg = MaskConfig()
    print("| size | d | PIL MaxFilter s | integral image s | speed-up | identical |")
    print("|---|---|---|---|---|---|")
    for h, w in [(480, 640), (1024, 1024)]:
        b = blob(h, w)
        d = int(round(cfg.dilate * max(h, w)))
        im = Image.fromarray(b.astype(np.uint8) * 255, "L")
        old = timed(lambda: im.filter(ImageFilter.MaxFilter(2 * d + 1)))
        new = timed(lambda: dilate(b, d))
        same = np.array_equal(np.asarray(im.filter(ImageFilter.MaxFilter(2 * d + 1))) > 0, dilate(b, d))
        print(f"| {w}x{h} | {d} | {old:.3f} | {new:.4f} | {old / new:.0f}x | {same} |")


if __name__ == "__main__":
    main()
