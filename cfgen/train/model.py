"""One dual-encoder wrapper over transformers CLIP and SigLIP (and generative VLMs through
`vlm.py`'s prompt embeddings): preprocessing, normalised features and the score S(image, text),
shared by the filter, the trainer and eval."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from PIL import Image


def _features(out: Any) -> torch.Tensor:
    """transformers v5 returns a model output from get_*_features; v4 a tensor."""
    return getattr(out, "pooler_output", out)


def size_field(size: Any, name: str) -> Any:
    """`name` of an image processor's size or crop_size: a dict in some transformers releases and
    processors, a SizeDict object in others; None where absent."""
    return size.get(name) if isinstance(size, dict) else getattr(size, name, None)


def is_siglip(config: Any) -> bool:
    """SigLIP (sigmoid loss, a logit bias, max-length padding, no attention mask) or CLIP."""
    return config.model_type.startswith("siglip")


def image_features(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """Unnormalised image embeddings of a CLIP/SigLIP model."""
    return _features(model.get_image_features(pixel_values=pixel_values))


def text_features(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Unnormalised text embeddings (SigLIP is trained without an attention mask)."""
    kw = {} if attention_mask is None or is_siglip(model.config) else {"attention_mask": attention_mask}
    return _features(model.get_text_features(input_ids=input_ids, **kw))


class FeatureModule(torch.nn.Module):
    """forward(pixels, ids, mask) -> normalised fp32 (image, text) features: the module the
    trainer hands to accelerate (DDP wraps a module, not the DualEncoder)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = image_features(self.model, pixel_values)
        txt = text_features(self.model, input_ids, attention_mask)
        return F.normalize(img.float(), dim=-1), F.normalize(txt.float(), dim=-1)


class Preprocessor:
    """The model's own image processor and tokenizer (picklable: used in loader workers)."""

    def __init__(self, processor: Any, kind: str, max_length: int):
        self.processor, self.kind, self.max_length = processor, kind, max_length

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        images = list(images)
        if self._at_fast_size(images):
            return self.on_device(self._uint8(images))
        return self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]

    def _at_fast_size(self, images: list[Image.Image]) -> bool:
        fast = self._fast_size()
        return bool(fast and images and all(im.mode == "RGB" and im.size == (fast, fast) for im in images))

    def _fast_size(self) -> int | None:
        """The square size at which the processor only rescales and normalises (its resize and
        centre crop are identities), so a batched tensor path gives the same pixels: shards
        stored at training resolution skip the per-image processor."""
        ip = self.processor.image_processor
        size, crop = getattr(ip, "size", None), getattr(ip, "crop_size", None)
        short = size_field(size, "shortest_edge")
        if not (short and crop is not None and size_field(crop, "height") == size_field(crop, "width") == short
                and getattr(ip, "do_rescale", False) and getattr(ip, "do_normalize", False)):
            return None
        return int(short)

    @property
    def short_side(self) -> int | None:
        """The processor's target short side (it resizes the shorter side to this, then crops):
        training images are decoded down to it, never held at full size."""
        size = self.processor.image_processor.size
        short = size_field(size, "shortest_edge")
        if short is None:
            h, w = size_field(size, "height"), size_field(size, "width")
            short = max(h, w) if h and w else None
        return int(short) if short else None

    @staticmethod
    def _uint8(images: list[Image.Image]) -> torch.Tensor:
        import numpy as np
        return torch.from_numpy(np.stack([np.asarray(im, dtype=np.uint8) for im in images])).permute(0, 3, 1, 2)

    def transport_pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Pixels for the trip to the device: uint8 [B, 3, H, W] (a quarter of float32's bytes)
        where the processor would only rescale and normalise, which `on_device` then does on
        the accelerator; otherwise the processor's float pixels."""
        images = list(images)
        return self._uint8(images) if self._at_fast_size(images) else self.pixels(images)

    def on_device(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 pixels from `transport_pixels` -> the model's normalised float pixels, where x is."""
        if x.dtype != torch.uint8:
            return x
        ip = self.processor.image_processor
        x = x.float() * float(ip.rescale_factor)
        mean = torch.tensor(ip.image_mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(ip.image_std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()

    def tokens(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        pad = "max_length" if self.kind == "siglip" else True
        enc = self.processor.tokenizer(list(texts), padding=pad, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
        return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}


class DualEncoder:
    """A dual encoder with its processor: CLIP, SigLIP, or a generative VLM through `vlm.py`'s
    prompt embeddings. `kind` is "clip", "siglip" or "vlm"."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu"):
        self.model = model.to(device)
        self.processor = processor
        self.device = device
        from .vlm import VLMEmbedder, VLMPreprocessor
        self.max_length = getattr(model.config.text_config, "max_position_embeddings", 77)
        if isinstance(model, VLMEmbedder):
            self.kind = "vlm"
            self.pre: Any = VLMPreprocessor(processor, qwen=model.qwen)
        else:
            self.kind = "siglip" if is_siglip(model.config) else "clip"
            self.pre = Preprocessor(processor, self.kind, self.max_length)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", dtype: torch.dtype | None = None) -> "DualEncoder":
        from transformers import AutoConfig, AutoProcessor, CLIPModel, SiglipModel
        from ..hub import refuse_remote_code
        from .vlm import is_vlm, load_vlm
        refuse_remote_code(path)
        cfg = AutoConfig.from_pretrained(path, trust_remote_code=False)
        if is_vlm(cfg):
            return cls(*load_vlm(path, dtype), device)
        model_cls = SiglipModel if is_siglip(cfg) else CLIPModel
        kw = {"dtype": dtype} if dtype is not None else {}
        model = model_cls.from_pretrained(path, trust_remote_code=False, **kw)
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=False)
        return cls(model, processor, device)

    def save(self, out: str | Path) -> None:
        self.model.save_pretrained(out)
        self.processor.save_pretrained(out)

    # ---------------------------------------------------------------- preprocessing
    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.pre.pixels(images)

    def tokens(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.pre.tokens(texts)

    # ---------------------------------------------------------------- features
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return F.normalize(image_features(self.model, pixel_values.to(self.device)), dim=-1)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = attention_mask.to(self.device) if attention_mask is not None else None
        return F.normalize(text_features(self.model, input_ids.to(self.device), mask), dim=-1)

    @torch.no_grad()
    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> torch.Tensor:
        return torch.cat([self.image_features(self.pixels(images[i:i + batch_size]))
                          for i in range(0, len(images), batch_size)]).float().cpu()

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        return torch.cat([self.text_features(**self.tokens(texts[i:i + batch_size]))
                          for i in range(0, len(texts), batch_size)]).float().cpu()

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], texts: Sequence[str]) -> torch.Tensor:
        """S(image_i, text_j): cosine similarities, [len(images), len(texts)]."""
        return self.embed_images(images) @ self.embed_texts(texts).T

    # ---------------------------------------------------------------- temperature
    @property
    def logit_scale(self) -> torch.nn.Parameter:
        return self.model.logit_scale

    @property
    def logit_bias(self) -> torch.nn.Parameter | None:
        return getattr(self.model, "logit_bias", None)


def load_dual_encoder(path: str | Path, device: str = "cpu") -> DualEncoder:
    return DualEncoder.load(path, device=device)
