"""Images stage: the `scene` editor (images/s over a world run, filter off), CLIP filter pairs/s
with a ViT-B/32-size CLIP built from config, and on a GPU the full-size SDXL Base + Refiner
inpainting (random weights from the published configs) at 1024 and 512 px, 40 + 15 steps."""
import argparse
import tempfile
from pathlib import Path

from common import report, timer


def scene(n: int, fig: dict) -> None:
    from cfgen.captions.stage import CaptionsConfig, run_captions
    from cfgen.images.stage import ImagesConfig, run_images
    from cfgen.world import world_vocab
    from cfgen.world.generate import WorldConfig, generate_world
    with tempfile.TemporaryDirectory() as d:
        generate_world(Path(d) / "w", WorldConfig(n=n, n_test=10))
        run_captions(CaptionsConfig(input=[str(Path(d) / "w" / "train")], out=str(Path(d) / "r"), rules_vocab=world_vocab()))
        with timer(fig, "scene_stage_s"):
            s = run_images(ImagesConfig(run=str(Path(d) / "r"), filter=False))
        fig.update(scene_anchors=n, scene_cf=s["extra"]["cf_kept"],
                   scene_images_per_s=s["extra"]["images_per_s"],
                   scene_kept_cf_per_device_hour=s["extra"]["kept_cf_per_device_hour"])


def clip_filter(n: int, fig: dict, device: str) -> None:
    from PIL import Image
    from cfgen.images.filter import ClipScorer
    from cfgen.demo.clip import build_clip
    with tempfile.TemporaryDirectory() as d:
        build_clip(d, image_size=224, patch_size=32, width=768, layers=12, text_width=512, text_layers=12,
                   heads=8, embed_dim=512, max_length=77)
        sc = ClipScorer(d, device=device)
        img = Image.new("RGB", (224, 224), (120, 30, 30))
        sc.score(img, "a", [img] * 4, ["b"] * 4)
        with timer(fig, "filter_s"):
            for _ in range(n // 4):
                sc.score(img, "a red thing", [img] * 4, ["a blue thing"] * 4)
    fig["filter_pairs_per_s"] = round(n / fig["filter_s"], 1)


def sdxl(fig: dict, steps: tuple[int, int]) -> None:
    import torch
    from cfgen.datamodel import Anchor, Edit, Rewrite
    from cfgen.images.editors import encode_image
    from cfgen.images.masks import Masker, MaskResult
    from cfgen.images.sdxl import SDXLConfig, SDXLEditor
    from cfgen.testing import build_sdxl
    from PIL import Image

    class Box(Masker):
        def __call__(self, img, phrase):
            m = Image.new("L", img.size, 0)
            w, h = img.size
            m.paste(255, (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
            return MaskResult(m, [w // 4, h // 4, 3 * w // 4, 3 * h // 4], 1.0, phrase)
    with tempfile.TemporaryDirectory() as d:
        base, ref = build_sdxl(Path(d) / "base", Path(d) / "ref", full=True)
        for res, crop in ((1024, False), (512, False), (512, True)):
            ed = SDXLEditor(SDXLConfig(base=str(base), refiner=str(ref), base_steps=steps[0], refiner_steps=steps[1],
                                       resolution=res, crop=crop, batch_size=4, dtype="float16"),
                            masker=Box(), device="cuda")
            a = Anchor("k", "a red car", encode_image(Image.new("RGB", (1024, 1024), (90, 90, 90))))
            rws = [Rewrite("k", i, "a blue car", "kept", edit=Edit("color", "red", "blue", "local")) for i in range(4)]
            ed.edit(a, rws[:1], [0])
            torch.cuda.synchronize()
            with timer(fig, f"sdxl_{res}{'_crop' if crop else ''}_4img_s"):
                ed.edit(a, rws, [1, 2, 3, 4])
                torch.cuda.synchronize()
            fig[f"sdxl_{res}{'_crop' if crop else ''}_s_per_image"] = round(fig[f"sdxl_{res}{'_crop' if crop else ''}_4img_s"] / 4, 3)
            del ed
            torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="scene anchors")
    ap.add_argument("--pairs", type=int, default=256, help="filter pairs")
    ap.add_argument("--steps", default="40,15")
    a = ap.parse_args()
    import torch
    fig: dict = {}
    scene(a.n, fig)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    clip_filter(a.pairs, fig, dev)
    if dev == "cuda":
        sdxl(fig, tuple(int(x) for x in a.steps.split(",")))
    else:
        fig["sdxl"] = "skipped: needs a CUDA GPU"
    report("images", vars(a), fig)


if __name__ == "__main__":
    main()
