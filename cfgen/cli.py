"""`cfgen` command line: one click group, one subcommand per stage."""
from __future__ import annotations

import json
import sys

import click

from .errors import one_line_errors


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cfgen")
def main() -> None:
    """cfgen: counterfactual image-text pairs and CF-VLM fine-tuning for CLIP-style models."""


@main.command()
@click.option("--n", default=10_000, show_default=True, help="training anchors")
@click.option("--n-test", default=1_000, show_default=True, help="held-out test items")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output directory")
@click.option("--seed", default=0, show_default=True)
@click.option("--image-size", default=64, show_default=True)
@click.option("--per-shard", default=1_000, show_default=True)
@one_line_errors
def world(n: int, n_test: int, out: str, seed: int, image_size: int, per_shard: int) -> None:
    """Write the procedural scene world (img2dataset-format shards + held-out test)."""
    from .world.generate import WorldConfig, generate_world
    info = generate_world(out, WorldConfig(n=n, n_test=n_test, seed=seed, image_size=image_size,
                                           per_shard=per_shard))
    click.echo(json.dumps({"train_shards": len(info["train"]), "test_shards": len(info["test"]),
                           "heldout": info["config"]["heldout"]}))


def _register() -> None:
    """Stage subcommands live next to their stage; import errors of optional stages are loud."""
    from .commands import register
    register(main)


_register()

if __name__ == "__main__":
    sys.exit(main())
