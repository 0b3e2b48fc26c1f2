"""Shard write/read: cfgen's atomic writer and Sample decoding next to plain webdataset reading the
same files. The figures are samples/s and MB/s, and the ratio cfgen / webdataset."""
import argparse
import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from common import report, timer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    import webdataset as wds
    from cfgen.datamodel import Counterfactual, Edit, Sample
    from cfgen.io.writer import AtomicTarWriter
    buf = io.BytesIO()
    Image.fromarray((np.random.RandomState(0).rand(a.size, a.size, 3) * 255).astype("uint8")).save(buf, "JPEG")
    jpg = buf.getvalue()
    cfs = [Counterfactual(i, f"cf {i}", Edit("color", "red", "blue", "local"), jpg, [0, 0, 8, 8], {"s": 0.1}, i)
           for i in range(4)]
    fig: dict = {}
    with tempfile.TemporaryDirectory() as d:
        paths = [Path(d) / f"part-{s:05d}.tar" for s in range(5)]
        per = a.n // len(paths)
        with timer(fig, "write_s"):
            for s, p in enumerate(paths):
                with AtomicTarWriter(p) as w:
                    for i in range(per):
                        w.write(Sample(f"{s:05d}{i:04d}", "a caption", jpg, {"k": i}, cfs).to_wds())
        mb = sum(os.path.getsize(p) for p in paths) / 1e6
        urls = [str(p) for p in paths]
        with timer(fig, "read_wds_raw_s"):
            n1 = sum(1 for _ in wds.WebDataset(urls, shardshuffle=False))
        with timer(fig, "read_cfgen_samples_s"):
            n2 = sum(len(Sample.from_wds(s).cfs) >= 0 for s in wds.WebDataset(urls, shardshuffle=False))
        assert n1 == n2 == per * len(paths)
    n = per * len(paths)
    fig.update(samples=n, MB=round(mb, 1), write_samples_per_s=round(n / fig["write_s"]),
               write_MB_per_s=round(mb / fig["write_s"], 1), wds_read_samples_per_s=round(n / fig["read_wds_raw_s"]),
               cfgen_read_samples_per_s=round(n / fig["read_cfgen_samples_s"]),
               read_ratio_cfgen_over_wds=round(fig["read_wds_raw_s"] / fig["read_cfgen_samples_s"], 3))
    report("shards", vars(a), fig)


if __name__ == "__main__":
    main()
