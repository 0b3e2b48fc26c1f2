"""`cfgen world --n 10000` wall time."""
import argparse
import tempfile

from common import report, timer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    a = ap.parse_args()
    from cfgen.world.generate import WorldConfig, generate_world
    fig: dict = {}
    with tempfile.TemporaryDirectory() as d:
        with timer(fig, "world_s"):
            generate_world(d, WorldConfig(n=a.n, n_test=1000))
    fig["images_per_s"] = round((a.n + 1000) / fig["world_s"], 1)
    report("world", vars(a), fig)


if __name__ == "__main__":
    main()
