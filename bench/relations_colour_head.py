"""One session-12 run of bench/relations.md: the grounding head asked for colour positions only
(shapes' positions not asked), with the other settings of the 65%-colourless run. Not shipped.

    python bench/relations_colour_head.py OUT      # about 8 minutes on one core
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

    def __init__(self, dim: int, scenes: list, weight: float):
        torch.nn.Module.__init__(self)
        self.linear = torch.nn.Linear(dim, 2 * len(self.FEATURES))
        self.weight = weight
        target = torch.zeros(len(scenes), len(self.FEATURES), 2)
        count = torch.zeros(len(scenes), len(self.FEATURES), 1)
        index = {f: i for i, f in enumerate(self.FEATURES)}
        for n, scene in enumerate(scenes):
            for o in scene.objects:
                target[n, index[o.color]] += torch.tensor([o.x - 0.5, o.y - 0.5])
                count[n, index[o.color]] += 1
        self.register_buffer("target", (target / count.clamp(min=1)).flatten(1), persistent=False)
        self.register_buffer("present", (count > 0).expand(-1, -1, 2).flatten(1).float(), persistent=False)


def main() -> None:
    import calibrate
    P.GroundingHead = ColourHead            # what pretrain_stand_in builds, for this run only
    sys.argv = ["calibrate.py", sys.argv[1], "--world-seeds", "0", "--set", "ground_weight=100",
                "--set", "twin_prob=0.5", "--set", "twin_kind=relation", "--set", "object_only_prob=0.65",
                "--set", "eval_every=500", "--set", "threads=1"]
    calibrate.main()


if __name__ == "__main__":
    main()
