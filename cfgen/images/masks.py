"""Masks of the edited object: text-grounded detection of the edit's `from` object (OWLv2 or
Grounding DINO), optionally refined by SAM, dilated and feathered; CLIPSeg as a lighter path.

A mask that cannot be found with enough confidence returns None: the caller then handles the
edit as global (and records so), never drops it silently.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageFilter

from ..datamodel import Edit


@dataclass
class MaskConfig:
    detector: str = "google/owlv2-base-patch16-ensemble"
    kind: str = "owlv2"                  # owlv2 | grounding-dino | clipseg
    sam: str | None = "facebook/sam-vit-base"
    box_threshold: float = 0.2
    text_threshold: float = 0.25         # grounding-dino
    clipseg_threshold: float = 0.4
    dilate: float = 0.03                 # fraction of the image's longer side
    feather: float = 0.015
    dtype: str = "auto"                  # auto (float16 on GPU, float32 on CPU) | float16 | bfloat16 | float32


@dataclass
class MaskResult:
    mask: Image.Image                    # "L", 0..255, dilated and feathered
    box: list[int]                       # [x0, y0, x1, y1] of the binary mask
    score: float
    phrase: str


def grounding_phrase(caption: str, edit: Edit) -> str:
    """The noun phrase of the edited object: the `from` span and the words up to its head noun
    ("red" in "a red frisbee in the park" -> "red frisbee"; quantity "a" -> "dog")."""
    from ..captions.nlp import load_nlp
    doc = load_nlp()(caption)
    words = [t.text.lower() for t in doc]
    span = edit.from_.split(" ... ")[0].split()
    start = next((i for i in range(len(words)) if words[i:i + len(span)] == span), None)
    if start is None:
        return edit.from_.split(" ... ")[0]
    end = start + len(span)
    while end < len(doc) and doc[end].pos_ in ("ADJ", "NOUN", "PROPN", "NUM") and end - start < 5:
        end += 1
    phrase = [t.text for t in doc[start:end] if t.pos_ not in ("DET", "NUM") and t.lower_ not in ("a", "an")]
    return " ".join(phrase).lower() or edit.from_


def dilate(binary: np.ndarray, d: int) -> np.ndarray:
    """Dilation by a (2d+1)-square, as PIL's MaxFilter(2d+1), in O(H*W) with an integral image
    (the MaxFilter is O(H*W*d^2): seconds per 1024-px mask on the GPU worker's serial path)."""
    if d <= 0:
        return binary.astype(bool)
    k = 2 * d + 1
    c = np.pad(binary.astype(np.int32), ((d + 1, d), (d + 1, d))).cumsum(0).cumsum(1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) > 0


def _postprocess(binary: np.ndarray, cfg: MaskConfig, score: float, phrase: str) -> MaskResult | None:
    if not binary.any():
        return None
    ys, xs = np.nonzero(binary)
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    side = max(binary.shape)
    m = Image.fromarray(dilate(binary, int(round(cfg.dilate * side))).astype(np.uint8) * 255, "L")
    f = cfg.feather * side
    if f > 0:
        m = m.filter(ImageFilter.GaussianBlur(f))
    return MaskResult(m, box, score, phrase)


class Masker(Protocol):
    """What the SDXL editor asks of a masker (tests/test_masker_contract.py runs it over each):
    `__call__(image, phrase)`, the mask of one phrase, or None when nothing is found with enough
    confidence. The ability `many(image, phrases)`, all of an anchor's masks in one grounding
    pass, is declared here with its default (one call per phrase); a masker names this class as
    a base to inherit it, and overrides it when it can ground several phrases at once."""

    def __call__(self, image: Image.Image, phrase: str) -> MaskResult | None: ...

    def many(self, image: Image.Image, phrases: list[str]) -> list[MaskResult | None]:
        """One mask or None per phrase, in order."""
        return [self(image, p) for p in phrases]


class GroundedMasker(Masker):
    """Grounded masks with transformers models (loaded once per worker)."""

    def __init__(self, cfg: MaskConfig, device: str = "cpu"):
        import torch
        from transformers import AutoProcessor
        self.cfg, self.device, self.torch = cfg, device, torch
        name = cfg.dtype if cfg.dtype != "auto" else ("float16" if device.startswith("cuda") else "float32")
        self.dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]
        self.processor = AutoProcessor.from_pretrained(cfg.detector, trust_remote_code=False)
        if cfg.kind == "owlv2":
            from transformers import Owlv2ForObjectDetection as cls
        elif cfg.kind == "grounding-dino":
            from transformers import GroundingDinoForObjectDetection as cls
        elif cfg.kind == "clipseg":
            from transformers import CLIPSegForImageSegmentation as cls
        else:
            raise ValueError(f"unknown mask model kind {cfg.kind!r} (owlv2, grounding-dino, clipseg)")
        self.model = cls.from_pretrained(cfg.detector, dtype=self.dtype, trust_remote_code=False).to(device).eval()
        self.sam = self.sam_processor = None
        if cfg.sam and cfg.kind != "clipseg":
            from transformers import SamModel, SamProcessor
            self.sam = SamModel.from_pretrained(cfg.sam, dtype=self.dtype, trust_remote_code=False).to(device).eval()
            self.sam_processor = SamProcessor.from_pretrained(cfg.sam, trust_remote_code=False)

    def _inputs(self, batch: Any) -> dict[str, Any]:
        """Processor output on the device, floating tensors in the models' dtype."""
        return {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                if hasattr(v, "is_floating_point") else v for k, v in batch.items()}

    def __call__(self, image: Image.Image, phrase: str) -> MaskResult | None:
        return self.many(image, [phrase])[0]

    def many(self, image: Image.Image, phrases: list[str]) -> list[MaskResult | None]:
        """Masks of several phrases on one image: each distinct phrase once, the detector's image
        features once (OWLv2 takes every phrase as a query of one forward), one SAM call for all
        the boxes found."""
        uniq = list(dict.fromkeys(phrases))
        with self.torch.no_grad():
            if self.cfg.kind == "clipseg":
                got = {p: self._clipseg(image, p) for p in uniq}
                return [got[p] for p in phrases]
            found = self._detect_owlv2(image, uniq) if self.cfg.kind == "owlv2" else \
                {p: self._detect_dino(image, p) for p in uniq}
            hits = [p for p in uniq if found[p] is not None]
            binaries = self._sam(image, [found[p][0] for p in hits]) if self.sam is not None and hits else {}
            got: dict[str, MaskResult | None] = {p: None for p in uniq}
            for j, p in enumerate(hits):
                box, score = found[p]
                binary = binaries[j] if binaries is not None and len(binaries) else None
                if binary is None or not binary.any():
                    binary = np.zeros((image.height, image.width), bool)
                    x0, y0, x1, y1 = [int(round(v)) for v in box]
                    binary[max(y0, 0):y1, max(x0, 0):x1] = True
                got[p] = _postprocess(binary, self.cfg, score, p)
        return [got[p] for p in phrases]

    def _float(self, out: Any) -> Any:
        """Detector outputs in float32 for post-processing (the processors' box maths)."""
        for k, v in out.items():
            if hasattr(v, "is_floating_point") and v.is_floating_point():
                out[k] = v.float()
        return out

    @staticmethod
    def _best(boxes: list[list[float]], scores: list[float], w: int, h: int) -> tuple[list[float], float] | None:
        best = None
        for box, score in zip(boxes, scores):
            x0, y0, x1, y1 = max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3])
            if x1 - x0 >= 1 and y1 - y0 >= 1 and (best is None or score > best[1]):
                best = ([x0, y0, x1, y1], float(score))
        return best

    def _detect_owlv2(self, image: Image.Image, phrases: list[str]) -> dict[str, tuple[list[float], float] | None]:
        w, h = image.size
        inputs = self._inputs(self.processor(text=[phrases], images=image, return_tensors="pt"))
        out = self._float(self.model(**inputs))
        side = max(w, h)            # OWLv2 pads to a square: boxes are relative to the padded image
        res = self.processor.post_process_grounded_object_detection(
            out, threshold=self.cfg.box_threshold, target_sizes=[(side, side)], text_labels=[phrases])[0]
        labels, boxes, scores = res["labels"].tolist(), res["boxes"].tolist(), res["scores"].tolist()
        return {p: self._best([b for b, l in zip(boxes, labels) if l == q], [s for s, l in zip(scores, labels) if l == q],
                              w, h) for q, p in enumerate(phrases)}

    def _detect_dino(self, image: Image.Image, phrase: str) -> tuple[list[float], float] | None:
        w, h = image.size
        inputs = self._inputs(self.processor(images=image, text=phrase.lower().rstrip(".") + ".", return_tensors="pt"))
        out = self._float(self.model(**inputs))
        res = self.processor.post_process_grounded_object_detection(
            out, inputs["input_ids"], threshold=self.cfg.box_threshold, text_threshold=self.cfg.text_threshold,
            target_sizes=[(h, w)])[0]
        return self._best(res["boxes"].tolist(), res["scores"].tolist(), w, h)

    def _sam(self, image: Image.Image, boxes: list[list[float]]) -> Any:
        """One SAM forward for all boxes of an image: [n_boxes, H, W] bool."""
        inputs = self._inputs(self.sam_processor(images=image, input_boxes=[boxes], return_tensors="pt"))
        out = self.sam(**inputs, multimask_output=False)
        masks = self.sam_processor.image_processor.post_process_masks(
            out.pred_masks.float().cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu())
        return masks[0][:, 0].numpy().astype(bool)

    def _clipseg(self, image: Image.Image, phrase: str) -> MaskResult | None:
        inputs = self._inputs(self.processor(text=[phrase], images=[image], padding=True, return_tensors="pt"))
        logits = self.model(**inputs).logits.float()
        prob = self.torch.sigmoid(logits.reshape(logits.shape[-2:])).float().cpu().numpy()
        score = float(prob.max())
        if score < self.cfg.clipseg_threshold:
            return None
        up = np.asarray(Image.fromarray((prob * 255).astype(np.uint8)).resize(image.size, Image.BILINEAR)) / 255.0
        return _postprocess(up >= self.cfg.clipseg_threshold, self.cfg, score, phrase)

