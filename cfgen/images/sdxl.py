"""The `sdxl` editor: SDXL 1.0 Base + Refiner as an ensemble of expert denoisers.

Local edits: a grounded mask of the edited object, then inpainting toward the rewrite (Base for
the first `base_steps`, Refiner for the last `refiner_steps` of one noise schedule: the paper's
40 + 15). Both passes inpaint every latent cell the feathered mask touches (`generation_mask`),
and the result is pasted into the untouched original through the feathered mask, so pixels
outside it are exactly the anchor's and every pixel taken from the result is fully denoised. With `crop`, only a square crop around the
mask is generated (at `resolution`), which is both cheaper and exactly minimal.
Global edits (relations, actions, causal flips, or a local edit whose object was not found)
regenerate the whole image from the anchor (img2img) with the rewrite as prompt.
One torch.Generator per image: counterfactual (key, i) is reproducible alone, in any batch; after
an out-of-memory the editor halves its batch and keeps the size that worked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..datamodel import Anchor, Rewrite
from ..io.images import decode_rgb, encode_image
from ..run import is_oom
from .editors import EditResult
from .masks import GroundedMasker, MaskConfig, Masker, MaskResult, grounding_phrase


@dataclass
class SDXLConfig:
    base: str = "stabilityai/stable-diffusion-xl-base-1.0"
    refiner: str | None = "stabilityai/stable-diffusion-xl-refiner-1.0"
    vae: str | None = None                 # e.g. madebyollin/sdxl-vae-fp16-fix for fp16
    base_steps: int = 40
    refiner_steps: int = 15
    guidance_scale: float = 7.5
    strength: float = 1.0                  # inpainting strength (1.0: the whole 40 + 15 schedule runs)
    global_strength: float = 0.6           # img2img strength for global edits
    resolution: int = 1024                 # generation size (longer side; crops are square)
    crop: bool = False                     # generate only a crop around the mask
    crop_context: float = 1.0              # context around the mask box, as a fraction of its size
    batch_size: int = 4
    dtype: str = "float16"                 # float16 | bfloat16 | float32 (CPU always float32)
    compile: bool = False                  # torch.compile the UNets
    size_bucket: int = 8                   # round generation sizes to this (64 with compile: few shapes)
    variant: str | None = None             # weight variant to load, e.g. "fp16" (half the download)
    negative_prompt: str = "blurry, distorted, deformed, low quality"

    @property
    def handoff(self) -> float:
        """Nominal fraction of the schedule run by Base (see `exact_handoff` for what is used)."""
        return self.base_steps / (self.base_steps + self.refiner_steps)


def exact_handoff(scheduler: Any, total: int, base: int) -> float:
    """The `denoising_end` / `denoising_start` that gives Base exactly `base` of `total` steps.

    diffusers cuts the schedule at timestep round(T * (1 - fraction)); with SDXL's "leading"
    spacing the nominal 40/55 cuts at 273 and Base runs 39 steps, the Refiner 16. Cutting half
    way between Base's last and the Refiner's first timestep makes the split exact."""
    scheduler.set_timesteps(total)
    ts = [float(t) for t in scheduler.timesteps]
    if not 0 < base < len(ts):
        return base / total
    return 1.0 - (ts[base - 1] + ts[base]) / 2 / scheduler.config.num_train_timesteps


def _round8(x: float, bucket: int = 8) -> int:
    return max(bucket, int(round(x / bucket)) * bucket)


def gen_size(w: int, h: int, res: int, bucket: int = 8) -> tuple[int, int]:
    """Generation size: longer side `res`, both sides rounded to `bucket` (8 is the VAE's
    factor; 64 keeps the number of distinct shapes, hence torch.compile recompiles, small)."""
    s = res / max(w, h)
    return _round8(w * s, bucket), _round8(h * s, bucket)


def crop_box(mask_box: list[int], w: int, h: int, context: float) -> tuple[int, int, int, int]:
    """A square box around the mask box, `context` of its size added on every side, inside the image."""
    x0, y0, x1, y1 = mask_box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * context)
    side = int(min(max(side, 16), w, h))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(min(max(cx - side / 2, 0), w - side))
    top = int(min(max(cy - side / 2, 0), h - side))
    return left, top, left + side, top + side


def generation_mask(paste: Image.Image, size: tuple[int, int], cell: int) -> Image.Image:
    """The mask both passes inpaint, at generation size: every latent cell (`cell` px, the VAE's
    factor) under a pixel that the paste can take (paste mask > 0), in full.

    The inpaint pipeline binarises its mask at 0.5 and, after every step, puts back the image's
    latents outside it (diffusers pipeline_stable_diffusion_xl_inpaint.py: `do_binarize=True`,
    the mask resized to latents by nearest `interpolate`, the `init_latents_proper` blend); given
    the feathered paste mask itself, the paste's fringe (0 < mask < 0.5) would take pixels that no
    pass denoised."""
    w, h = size
    on = np.asarray(paste.convert("L").resize(size, Image.BOX)) > 0
    cells = on.reshape(h // cell, cell, w // cell, cell).any(axis=(1, 3))
    return Image.fromarray(np.kron(cells, np.ones((cell, cell), np.uint8)) * 255, "L")


class SDXLEditor:
    """An Editor (editors.py): SDXL Base + Refiner, local edits inpainted in a grounded mask."""

    name = "sdxl"

    def __init__(self, cfg: SDXLConfig, mask_cfg: MaskConfig | None = None, device: str = "cpu",
                 image_format: str = "jpg", masker: Masker | None = None):
        import torch
        from diffusers import AutoencoderKL, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline
        self.torch, self.cfg, self.device, self.image_format = torch, cfg, device, image_format
        on_gpu = device.startswith("cuda")
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(cfg.dtype, torch.float32) if on_gpu else torch.float32
        extra = {"vae": AutoencoderKL.from_pretrained(cfg.vae, dtype=dtype)} if cfg.vae else {}
        if cfg.variant:
            extra["variant"] = cfg.variant
        self.inpaint = StableDiffusionXLInpaintPipeline.from_pretrained(cfg.base, dtype=dtype, **extra).to(device)
        self.img2img = self._twin(StableDiffusionXLImg2ImgPipeline, self.inpaint)
        self.ref_inpaint = self.ref_img2img = None
        if cfg.refiner:
            self.ref_inpaint = StableDiffusionXLInpaintPipeline.from_pretrained(
                cfg.refiner, text_encoder_2=self.inpaint.text_encoder_2, vae=self.inpaint.vae, dtype=dtype,
                **({"variant": cfg.variant} if cfg.variant else {})).to(device)
            self.ref_img2img = self._twin(StableDiffusionXLImg2ImgPipeline, self.ref_inpaint)
        for p in (self.inpaint, self.img2img, self.ref_inpaint, self.ref_img2img):
            if p is not None:
                p.set_progress_bar_config(disable=True)
        if cfg.compile:
            self.inpaint.unet = self.img2img.unet = torch.compile(self.inpaint.unet)
            if self.ref_inpaint is not None:
                self.ref_inpaint.unet = self.ref_img2img.unet = torch.compile(self.ref_inpaint.unet)
        self.batch_size = cfg.batch_size        # halved after an out-of-memory, and kept
        self.batch_sizes: list[int] = []       # every generation batch's size (benchmarks and tests read it)
        self.masker = masker
        if self.masker is None and mask_cfg is not None:
            self.masker = GroundedMasker(mask_cfg, device)

    def _twin(self, cls: Any, pipe: Any) -> Any:
        """The same weights under another pipeline class (no copy), keeping its config."""
        return cls(**pipe.components, requires_aesthetics_score=pipe.config.requires_aesthetics_score).to(self.device)

    # ------------------------------------------------------------------ public
    def edit(self, anchor: Anchor, rewrites: list[Rewrite], seeds: list[int],
             batch_size: int | None = None) -> list[EditResult]:
        return self.edit_many([(anchor, rewrites, seeds)], batch_size)[0]

    def edit_many(self, jobs: list[tuple[Anchor, list[Rewrite], list[int]]],
                  batch_size: int | None = None) -> list[list[EditResult]]:
        """Edits of several anchors, batched across anchors: local and global edits are grouped by
        generation size and run `batch_size` at a time (an anchor has at most K edits, so batching
        within one anchor never fills a batch of 8). Each image keeps its own seeded generator."""
        local: list[tuple[int, Image.Image, Rewrite, int, MaskResult]] = []
        glob: list[tuple[int, Image.Image, Rewrite, int, dict[str, Any]]] = []
        for j, (anchor, rewrites, seeds) in enumerate(jobs):
            img = decode_rgb(anchor.image)
            wants = [self.masker is not None and r.edit is not None and r.edit.scope == "local" for r in rewrites]
            phrases = [grounding_phrase(anchor.caption, r.edit) for r, w in zip(rewrites, wants) if w]
            found = iter(self.masker.many(img, phrases) if phrases else [])      # one grounding pass
            for r, s, w in zip(rewrites, seeds, wants):
                m = next(found) if w else None
                if m is not None:
                    local.append((j, img, r, s, m))
                else:
                    glob.append((j, img, r, s, {"mask": "not_found"} if (r.edit and r.edit.scope == "local") else {}))
        results: dict[tuple[int, int], EditResult] = {}
        for run, items, size_of in ((self._local, local, self._local_size), (self._global, glob, self._global_size)):
            groups: dict[tuple[int, int], list[Any]] = {}
            for it in items:
                groups.setdefault(size_of(it[1]), []).append(it)
            for size, group in groups.items():
                b = 0
                while b < len(group):
                    batch = group[b:b + (batch_size or self.batch_size)]
                    try:
                        outs = run(batch, size)
                    except Exception as e:
                        if batch_size or len(batch) == 1 or not is_oom(e):
                            raise
                        if self.torch.cuda.is_available():
                            self.torch.cuda.empty_cache()
                        self.batch_size = len(batch) // 2      # every later batch starts from what fits
                        continue
                    self.batch_sizes.append(len(batch))
                    for it, res in zip(batch, outs):
                        results[(it[0], res.i)] = res
                    b += len(batch)
        return [[results[(j, r.i)] for r in rewrites] for j, (_, rewrites, _) in enumerate(jobs)]

    # ------------------------------------------------------------------ internals
    def _gens(self, seeds: list[int]) -> list[Any]:
        dev = "cpu" if not self.device.startswith("cuda") else self.device
        return [self.torch.Generator(dev).manual_seed(s) for s in seeds]

    def _run(self, first: Any, second: Any, size: tuple[int, int], prompts: list[str], seeds: list[int],
             **kw: Any) -> list[Image.Image]:
        """Base then Refiner on one schedule (ensemble of experts); Base alone without a refiner."""
        c = self.cfg
        common = dict(prompt=prompts, negative_prompt=[c.negative_prompt] * len(prompts), guidance_scale=c.guidance_scale,
                      width=size[0], height=size[1])
        if second is None:
            return first(**common, **kw, num_inference_steps=c.base_steps, generator=self._gens(seeds)).images
        total = c.base_steps + c.refiner_steps
        handoff = exact_handoff(first.scheduler, total, c.base_steps)
        latents = first(**common, **kw, num_inference_steps=total, denoising_end=handoff, output_type="latent",
                        generator=self._gens(seeds)).images
        kw2 = {k: v for k, v in kw.items() if k != "strength"}
        kw2["image"] = latents
        return second(**common, **kw2, num_inference_steps=total, denoising_start=handoff,
                      generator=self._gens([s + 1 for s in seeds])).images

    def _local_size(self, img: Image.Image) -> tuple[int, int]:
        c = self.cfg
        return (_round8(c.resolution), _round8(c.resolution)) if c.crop else gen_size(*img.size, c.resolution,
                                                                                      c.size_bucket)

    def _global_size(self, img: Image.Image) -> tuple[int, int]:
        return gen_size(*img.size, self.cfg.resolution, self.cfg.size_bucket)

    def _local(self, items: list[tuple[int, Image.Image, Rewrite, int, MaskResult]],
               size: tuple[int, int]) -> list[EditResult]:
        c = self.cfg
        boxes = [crop_box(m.box, *img.size, c.crop_context) if c.crop else (0, 0, *img.size)
                 for _, img, _, _, m in items]
        srcs = [img.crop(b).resize(size, Image.LANCZOS) for (_, img, _, _, _), b in zip(items, boxes)]
        pastes = [m.mask.crop(b) for (_, _, _, _, m), b in zip(items, boxes)]
        masks = [generation_mask(p, size, self.inpaint.vae_scale_factor) for p in pastes]
        outs = self._run(self.inpaint, self.ref_inpaint, size, [r.text for _, _, r, _, _ in items],
                         [s for _, _, _, s, _ in items], image=srcs, mask_image=masks, strength=c.strength)
        results = []
        for (_, img, r, s, m), b, paste, out in zip(items, boxes, pastes, outs):
            region = out.resize((b[2] - b[0], b[3] - b[1]), Image.LANCZOS)
            pasted = img.copy()
            pasted.paste(region, b[:2], paste)      # exact anchor pixels where the mask is 0
            results.append(EditResult(r.i, image=encode_image(pasted, self.image_format), mask_box=m.box, scope="local",
                                      seed=s, extra={"phrase": m.phrase, "mask_score": m.score, "crop": list(b)}))
        return results

    def _global(self, items: list[tuple[int, Image.Image, Rewrite, int, dict[str, Any]]],
                size: tuple[int, int]) -> list[EditResult]:
        outs = self._run(self.img2img, self.ref_img2img, size, [r.text for _, _, r, _, _ in items],
                         [s for _, _, _, s, _ in items], image=[img.resize(size, Image.LANCZOS) for _, img, _, _, _ in items],
                         strength=self.cfg.global_strength)
        return [EditResult(r.i, image=encode_image(o.resize(img.size, Image.LANCZOS), self.image_format), scope="global",
                           seed=s, extra=note) for (_, img, r, s, note), o in zip(items, outs)]

