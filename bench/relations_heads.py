"""Variants of the grounding head for bench/relations.md. Not shipped.

Session 12 (`PretrainConfig.ground_weight` 100, relation twins 0.5, 65% colourless, 2,500 steps):

    python bench/relations_heads.py OUT colour        # the head asked for colour positions only
    python bench/relations_heads.py OUT decay 1000    # its weight falls linearly to 0 by step 1000

Session 13 (head 100, twins 0.5, 75% colourless, 5,000 steps): the head starts late, so that
relation's onset comes where the learning rate is small:

    python bench/relations_heads.py OUT late 3000     # weight 0 before step 3000, then 100

About 8 minutes (session 12) or 16 minutes (session 13) each on one core.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).parent))
import cfgen.demo.pretrain as P  # noqa: E402
from cfgen.world.scene import COLORS  # noqa: E402


class ColourHead(P.GroundingHead):
    """`GroundingHead` with targets for the colours only."""

    FEATURES = tuple(COLORS)

    @staticmethod
    def features_of(o) -> tuple[str, ...]:
        return (o.color,)


def scheduled_head(factor: Callable[[int], float]) -> type:
    class ScheduledHead(P.GroundingHead):
        """`GroundingHead` whose loss is scaled by `factor(step)` (step 1 first; one call per step)."""

        calls = 0

        def forward(self, idx: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return factor(self.calls) * super().forward(idx, img)
    return ScheduledHead


def decaying_head(until: int) -> type:
    """Weight falling linearly to 0 by step `until`."""
    return scheduled_head(lambda step: max(0.0, 1 - (step - 1) / until))


def late_head(start: int) -> type:
    """Weight 0 up to step `start`, full after."""
    return scheduled_head(lambda step: float(step > start))


def main() -> None:
    import calibrate
    out, kind = sys.argv[1], sys.argv[2]
    heads = {"colour": lambda: ColourHead, "decay": lambda: decaying_head(int(sys.argv[3])),
             "late": lambda: late_head(int(sys.argv[3]))}
    P.GroundingHead = heads[kind]()          # this run only
    common = ["--set", "ground_weight=100", "--set", "twin_prob=0.5", "--set", "twin_kind=relation",
              "--set", "eval_every=500", "--set", "threads=1"]
    session = (["--world-seeds", "0,1,2", "--set", "object_only_prob=0.75", "--set", "steps=5000"] if kind == "late"
               else ["--world-seeds", "0", "--set", "object_only_prob=0.65"])
    sys.argv = ["calibrate.py", out, *session, *common]
    calibrate.main()


if __name__ == "__main__":
    main()
