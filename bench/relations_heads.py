"""Two session-12 runs of bench/relations.md, each a variant of the grounding head
(`PretrainConfig.ground_weight` 100, relation twins 0.5, 65% colourless captions). Not shipped.

    python bench/relations_heads.py OUT colour        # the head asked for colour positions only
    python bench/relations_heads.py OUT decay 1000    # its weight falls linearly to 0 by step 1000

About 8 minutes each on one core.
"""
from __future__ import annotations

import sys
from pathlib import Path

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


def decaying_head(until: int) -> type:
    class DecayingHead(P.GroundingHead):
        """`GroundingHead` whose weight falls linearly to 0 by step `until` (one call per step)."""

        calls = 0

        def forward(self, idx: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return max(0.0, 1 - (self.calls - 1) / until) * super().forward(idx, img)
    return DecayingHead


def main() -> None:
    import calibrate
    out, kind = sys.argv[1], sys.argv[2]
    P.GroundingHead = ColourHead if kind == "colour" else decaying_head(int(sys.argv[3]))   # this run only
    sys.argv = ["calibrate.py", out, "--world-seeds", "0", "--set", "ground_weight=100",
                "--set", "twin_prob=0.5", "--set", "twin_kind=relation", "--set", "object_only_prob=0.65",
                "--set", "eval_every=500", "--set", "threads=1"]
    calibrate.main()


if __name__ == "__main__":
    main()
