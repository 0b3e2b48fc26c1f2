"""The procedural scene world: embedded default data and ground truth for tests."""
from .scene import (COLORS, SHAPES, SIZES, RELATIONS, NotRenderable, Obj, Scene, apply_caption,
                    caption, diff_mask, heldout_combos, mask_box, parse_caption, render)
from .generate import WorldConfig, generate_world, load_test_items

__all__ = ["COLORS", "SHAPES", "SIZES", "RELATIONS", "NotRenderable", "Obj", "Scene", "apply_caption",
           "caption", "diff_mask", "heldout_combos", "mask_box", "parse_caption", "render",
           "WorldConfig", "generate_world", "load_test_items"]
