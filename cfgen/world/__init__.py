"""The procedural scene world: embedded default data and ground truth for tests."""
from .scene import (COLORS, SHAPES, SIZES, RELATIONS, NotRenderable, Obj, Scene, apply_caption,
                    caption, diff_mask, heldout_combos, mask_box, parse_caption, render)
from .generate import WorldConfig, generate_world, load_test_items

__all__ = ["COLORS", "SHAPES", "SIZES", "RELATIONS", "NotRenderable", "Obj", "Scene", "apply_caption",
           "caption", "diff_mask", "heldout_combos", "mask_box", "parse_caption", "render",
           "WorldConfig", "generate_world", "load_test_items"]


def world_vocab() -> dict[str, list[str]]:
    """Target words the scene renderer can draw, for the `rules` backend's `rules_vocab`."""
    return {"color": list(COLORS), "shape": list(SHAPES), "size": list(SIZES), "quantity": ["two", "one"]}


def world_words() -> list[str]:
    """The world's caption vocabulary (whole-word tokens for a small CLIP tokenizer)."""
    rel = [w for r in RELATIONS for w in r.split()]
    return sorted(set(list(COLORS) + list(SHAPES) + [s + "s" for s in SHAPES] + list(SIZES) + rel
                      + ["a", "an", "two", "one", "three"]))
