"""Registers the stage subcommands on the `cfgen` group."""
from __future__ import annotations

import click


def register(group: click.Group) -> None:
    pass
