"""`cfgen inspect`: a contact sheet of final samples so a person can judge quality at a glance.

One row per anchor: the anchor with its caption, then each counterfactual with its caption,
edit type and scope, the mask box outlined, and its filter scores.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw

from ..datamodel import Sample
from ..io.images import decode_rgb


def contact_sheet(run: str | Path, out: str | Path, n: int = 8, thumb: int = 160, max_cf: int = 4) -> int:
    import webdataset as wds
    tars = sorted(str(p.resolve()) for p in (Path(run) / "final").glob("part-*.tar"))
    if not tars:
        raise FileNotFoundError(f"no final shards under {run}/final")
    samples = []
    for raw in wds.WebDataset(tars, shardshuffle=False, empty_check=False):
        where = f"{raw.get('__url__', run)}: sample {raw.get('__key__')!r}"
        try:
            s = Sample.from_wds(raw)
            for data in [s.image] + [c.image for c in s.cfs[:max_cf]]:
                decode_rgb(data)
        except Exception as e:
            raise ValueError(f"{where} is corrupt ({type(e).__name__}: {str(e)[:80]})") from None
        samples.append(s)
        if len(samples) >= n:
            break
    cell_w, text_h = thumb + 10, 64
    sheet = Image.new("RGB", (cell_w * (1 + max_cf), (thumb + text_h) * len(samples)), "white")
    d = ImageDraw.Draw(sheet)
    for row, s in enumerate(samples):
        y = row * (thumb + text_h)
        cells = [(s.image, s.caption, "anchor", None)] + [
            (c.image, c.text, f"{c.edit.type}/{c.edit.scope}  " + " ".join(
                f"{k}={v:.2f}" for k, v in c.scores.items() if k in ("s_cf_tcf", "margin", "s_img")), c.mask_box)
            for c in s.cfs[:max_cf]]
        for col, (data, text, label, box) in enumerate(cells):
            im = decode_rgb(data)
            sx, sy = thumb / im.width, thumb / im.height
            im = im.resize((thumb, thumb))
            x = col * cell_w
            sheet.paste(im, (x, y))
            if box:
                d.rectangle([x + box[0] * sx, y + box[1] * sy, x + box[2] * sx - 1, y + box[3] * sy - 1],
                            outline=(255, 0, 255))
            lines = textwrap.wrap(text, 28)[:3] + [label[:40]]
            d.multiline_text((x + 2, y + thumb + 2), "\n".join(lines), fill="black", spacing=1)
    sheet.save(out)
    return len(samples)
