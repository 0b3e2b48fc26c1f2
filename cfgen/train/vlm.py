"""A generative VLM (LLaVA-1.5, Qwen2-VL, Qwen2.5-VL) as a dual encoder, so the trainer, the filter
and eval use it as they use CLIP: E5-V prompt embeddings.

    image: "<image>\\nSummarize above image in one word:"      -> last token's hidden state
    text:  "<sent>\\nSummarize above sentence in one word:"     -> last token's hidden state

Both from the same language model, L2-normalised by the caller; S(I, T) = cosine, and a learned
temperature (`logit_scale`, CLIP's initial 1/0.07) for the contrastive losses; `pooling: mean`
takes the mean of the final states over the prompt's tokens instead. Saved as the VLM's own
`save_pretrained` files plus `cfgen_vlm.safetensors` (the temperature) and `cfgen_vlm.json`
(prompts, pooling).
Qwen2-VL's image tokens depend on the image size; for embeddings every image is resized to one
square side (the paper's 448 px, within the processor's pixel bounds), so a batch has one shape
([images, patches, patch dim]) and one prompt. Where torchvision is missing, transformers cannot
build a Qwen2VLProcessor (its video processor needs it): `QwenVLInputs` builds the same inputs
from the image processor and tokenizer alone.

LoRA (`TrainConfig.lora_rank > 0`, through peft): adapters on the language model's attention
projections (and the vision tower's with `lora_vision`), everything else frozen. A saved LoRA run
holds the merged model (loads with plain transformers), `adapter/` (loads with plain
`peft.PeftModel.from_pretrained` on the base model) and the base model's name for an exact resume.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import re
import shutil
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

IMAGE_PROMPT = "<image>\nSummarize above image in one word:"
TEXT_PROMPT = "{text}\nSummarize above sentence in one word:"
MARKER = "cfgen_vlm.json"
QWEN_VL = ("qwen2_vl", "qwen2_5_vl")
QWEN_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
log = logging.getLogger("cfgen.train")
QWEN_SIDE = 448                         # the paper's input size for the Qwen backbones
# last: E5-V's last-token state (the default); mean: the mean of the final states over the prompt's
# tokens, for small language models whose last token does not summarise (see the README's demo).
POOLINGS = ("last", "mean")


def check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"VLM pooling {pooling!r} is not one of {', '.join(POOLINGS)}")


def is_vlm(config: Any) -> bool:
    """An image-text-to-text model with a vision tower and a language model (LLaVA, Qwen2-VL)."""
    return hasattr(config, "vision_config") and hasattr(config, "text_config") and \
        any(a.endswith("ForConditionalGeneration") for a in (getattr(config, "architectures", None) or []))


class QwenVLInputs:
    """What Qwen2VLProcessor does for images and text, from the image processor and the tokenizer
    alone: each `<|image_pad|>` expanded to the image's token count (its patch grid / merge^2),
    and `mm_token_type_ids` (1 on image tokens) for M-RoPE."""

    files = ("chat_template.jinja", "chat_template.json", "processor_config.json", "video_preprocessor_config.json")

    def __init__(self, image_processor: Any, tokenizer: Any, chat_template: str | None = None,
                 source: Path | None = None):
        self.image_processor, self.tokenizer, self.source = image_processor, tokenizer, source
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        self.image_token = "<|image_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "QwenVLInputs":
        from transformers import AutoImageProcessor, AutoTokenizer
        path = Path(path)
        template = None
        if (path / "chat_template.jinja").is_file():
            template = (path / "chat_template.jinja").read_text()
        elif (path / "chat_template.json").is_file():
            template = json.loads((path / "chat_template.json").read_text()).get("chat_template")
        return cls(AutoImageProcessor.from_pretrained(path, trust_remote_code=False),
                   AutoTokenizer.from_pretrained(path, trust_remote_code=False), template, path)

    def __call__(self, images: Sequence[Image.Image] | None = None, text: Sequence[str] = (),
                 return_tensors: str = "pt", padding: bool | str = True) -> Any:
        from transformers import BatchFeature
        pix = self.image_processor(images=list(images), return_tensors="pt") if images else {}
        counts = (pix["image_grid_thw"].prod(-1) // self.image_processor.merge_size ** 2).tolist() if pix else []
        placeholders = sum(t.count(self.image_token) for t in text)
        if placeholders != len(counts):
            raise ValueError(f"{len(counts)} image(s) for {placeholders} {self.image_token} placeholders")
        todo = iter(counts)
        texts = [self.image_token.join(p if i == 0 else self.image_token * (next(todo) - 1) + p
                                       for i, p in enumerate(t.split(self.image_token))) for t in text]
        enc = self.tokenizer(texts, padding=padding, return_tensors="pt")
        enc["mm_token_type_ids"] = (enc["input_ids"] == self.image_token_id).long()
        return BatchFeature({**enc, **pix}, tensor_type=return_tensors)

    def apply_chat_template(self, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(messages, chat_template=self.chat_template, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def save_pretrained(self, out: str | Path) -> None:
        """The image processor and tokenizer, plus the checkpoint's own processor files verbatim,
        so the saved model loads with AutoProcessor wherever torchvision is installed."""
        out = Path(out)
        self.image_processor.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        for name in self.files if self.source else ():
            src = self.source / name
            if src.is_file() and not src.is_symlink() and not (out / name).exists():
                shutil.copyfile(src, out / name)


def load_processor(path: str | Path) -> Any:
    """The checkpoint's processor; for Qwen2-VL without torchvision, `QwenVLInputs`."""
    from transformers import AutoConfig, AutoProcessor
    if AutoConfig.from_pretrained(path, trust_remote_code=False).model_type in QWEN_VL and importlib.util.find_spec("torchvision") is None:
        return QwenVLInputs.from_pretrained(path)
    return AutoProcessor.from_pretrained(path, trust_remote_code=False)


def qwen_side(image_processor: Any) -> int:
    """The square side every image is resized to for Qwen embeddings: QWEN_SIDE, rounded to the
    patch grid (patch * merge) and kept within the processor's pixel bounds, so its own resize is
    the identity and every image has the same token count."""
    unit = image_processor.patch_size * image_processor.merge_size
    size = image_processor.size
    lo = getattr(image_processor, "min_pixels", None) or size["shortest_edge"]
    hi = getattr(image_processor, "max_pixels", None) or size["longest_edge"]
    low, high = math.ceil(math.sqrt(lo) / unit) * unit, math.floor(math.sqrt(hi) / unit) * unit
    return max(low, min(high, round(QWEN_SIDE / unit) * unit))


class VLMEmbedder(torch.nn.Module):
    """The VLM plus a temperature; `image_features` / `text_features` as a CLIP model has them."""

    def __init__(self, vlm: torch.nn.Module, image_ids: torch.Tensor, logit_scale: float = math.log(1 / 0.07),
                 base: str = "", pooling: str = "last"):
        super().__init__()
        check_pooling(pooling)
        self.vlm = vlm
        self.pooling = pooling
        self.base = base                       # the checkpoint a LoRA run started from
        self.config = vlm.config
        self.qwen = vlm.config.model_type in QWEN_VL
        self.logit_scale = torch.nn.Parameter(torch.tensor(float(logit_scale)))
        self.register_buffer("image_ids", image_ids.long(), persistent=False)     # the image prompt, expanded

    def _pooled(self, **kw: Any) -> torch.Tensor:
        # logits for one position only: the full-vocabulary logits of every token are never used
        out = self.vlm(**kw, output_hidden_states=True, return_dict=True, logits_to_keep=1)
        h = out.hidden_states[-1]
        mask = kw["attention_mask"]
        if self.pooling == "mean":
            m = mask.to(h.dtype).unsqueeze(-1)
            return (h * m).sum(1) / m.sum(1).clamp_min(1)
        last = mask.shape[1] - 1 - mask.flip(1).int().argmax(1)
        return h[torch.arange(h.shape[0], device=h.device), last]

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        n = pixel_values.shape[0]
        ids = self.image_ids.to(pixel_values.device).expand(n, -1)
        kw: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if self.qwen:                          # [images, patches, dim]: one square grid for all
            side = math.isqrt(pixel_values.shape[1])
            kw["pixel_values"] = pixel_values.reshape(-1, pixel_values.shape[-1])
            kw["image_grid_thw"] = torch.tensor([[1, side, side]] * n, device=pixel_values.device)
            kw["mm_token_type_ids"] = (ids == self.config.image_token_id).long()
        else:
            kw["pixel_values"] = pixel_values
        return self._pooled(**kw)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        return self._pooled(input_ids=input_ids, attention_mask=mask)

    @property
    def is_lora(self) -> bool:
        return hasattr(self.vlm, "peft_config")

    def save_pretrained(self, out: str | Path, merged: bool = True, **kw: Any) -> None:
        """The (merged) model, the temperature, and with LoRA the adapter and the base's name.
        `merged=False` (training checkpoints): a LoRA run saves only its adapter, not a full
        merged copy of the model each time."""
        import copy
        from safetensors.torch import save_file
        out = Path(out)
        info: dict[str, Any] = {"image_prompt": IMAGE_PROMPT, "text_prompt": TEXT_PROMPT, "pooling": self.pooling}
        if self.is_lora:
            self.vlm.save_pretrained(out / "adapter")
            if merged:
                copy.deepcopy(self.vlm).merge_and_unload().save_pretrained(out, **kw)
            info["lora_base"] = self.base
        else:
            self.vlm.save_pretrained(out, **kw)
        save_file({"logit_scale": self.logit_scale.detach().float().cpu().reshape(1)}, str(out / "cfgen_vlm.safetensors"))
        (out / MARKER).write_text(json.dumps(info))

    def add_lora(self, rank: int, alpha: int, dropout: float = 0.0, vision: bool = False,
                 targets: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
                 vision_targets: Sequence[str] = ("q_proj", "k_proj", "v_proj", "out_proj", "qkv", r"attn\.proj"),
                 adapter: Path | None = None) -> None:
        """Freeze the VLM and put LoRA adapters on its attention projections (language model,
        and the vision tower with `vision`); `adapter`: start from a saved adapter (resume)."""
        try:
            from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
        except ImportError as e:
            raise RuntimeError("train option lora_rank needs peft: pip install 'cfgen[vlm]'") from e
        pattern = rf".*language_model.*\.({'|'.join(targets)})$"
        if vision:
            pattern += rf"|.*(vision_tower|vision_model|visual).*\.({'|'.join(vision_targets)})$"
        skip = unused_vision_layers(self.vlm.config)
        layer = re.compile(r"(vision_tower|vision_model).*\.layers\.(\d+)\.")
        names = [n for n, _ in self.vlm.named_modules()
                 if re.fullmatch(pattern, n) and not ((m := layer.search(n)) and int(m.group(2)) in skip)]
        if vision and skip:
            log.info("LoRA: no adapters on vision layers %s: the language model never reads their output",
                     sorted(skip))
        self.vlm = get_peft_model(self.vlm, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                                                        target_modules=names))
        if adapter is not None:
            from safetensors.torch import load_file
            set_peft_model_state_dict(self.vlm, load_file(str(adapter / "adapter_model.safetensors")))


def unused_vision_layers(config: Any) -> set[int]:
    """Vision encoder layers whose output never reaches the language model. LLaVA reads the vision
    tower's hidden_states[vision_feature_layer] (-2 by default; transformers modeling_llava.py), so
    the layers after it get no gradient, and an adapter there stops DDP's reducer at step 2."""
    idx = getattr(config, "vision_feature_layer", None)
    if idx is None:
        return set()
    n = config.vision_config.num_hidden_layers
    read = max(i if i >= 0 else n + 1 + i for i in ([idx] if isinstance(idx, int) else idx))
    return set(range(read, n))            # hidden_states[h] is the output after h layers


class VLMPreprocessor:
    """Images through the VLM's image processor (Qwen: resized to one square side first, patches
    kept per image); texts wrapped in the E5-V prompt (picklable)."""

    def __init__(self, processor: Any, max_length: int = 128, qwen: bool = False):
        self.processor, self.kind, self.max_length = processor, "vlm", max_length
        self.side = qwen_side(processor.image_processor) if qwen else None

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        ip = self.processor.image_processor
        if self.side is None:
            return ip(images=list(images), return_tensors="pt")["pixel_values"]
        sq = [im.convert("RGB").resize((self.side, self.side), Image.BICUBIC) for im in images]
        flat = ip(images=sq, return_tensors="pt")["pixel_values"]            # [images * patches, patch dim]
        return flat.reshape(len(sq), -1, flat.shape[-1])

    @property
    def short_side(self) -> int | None:
        """Training images are decoded down to this short side (Qwen: its square side; LLaVA:
        the image processor's shortest edge)."""
        if self.side is not None:
            return self.side
        from .model import size_field
        short = size_field(self.processor.image_processor.size, "shortest_edge")
        return int(short) if short else None

    def transport_pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.pixels(images)        # the VLM processors' pixels are not a plain rescale of uint8

    def on_device(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def tokens(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        tok = self.processor.tokenizer
        enc = tok([TEXT_PROMPT.format(text=t) for t in texts], padding=True, truncation=True,
                  max_length=self.max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def load_vlm(path: str | Path, dtype: torch.dtype | None = None) -> tuple[VLMEmbedder, Any]:
    """(embedder, processor) from a VLM checkpoint or a directory cfgen saved."""
    from transformers import AutoModelForImageTextToText
    processor = load_processor(path)
    kw: dict[str, Any] = {"dtype": dtype} if dtype is not None else {}
    if dtype in (torch.bfloat16, torch.float16) and torch.cuda.is_available() and importlib.util.find_spec("flash_attn"):
        kw["attn_implementation"] = "flash_attention_2"
    vlm = AutoModelForImageTextToText.from_pretrained(path, trust_remote_code=False, **kw)
    if vlm.config.model_type in QWEN_VL:
        side = qwen_side(processor.image_processor)
        probe = processor(images=[Image.new("RGB", (side, side))], text=[IMAGE_PROMPT.replace("<image>", QWEN_IMAGE)],
                          return_tensors="pt")
    else:
        probe = processor(images=[Image.new("RGB", (8, 8))], text=[IMAGE_PROMPT], return_tensors="pt")
    return VLMEmbedder(vlm, probe["input_ids"][0], saved_logit_scale(Path(path)), base=str(path),
                       pooling=saved_pooling(Path(path))), processor


def saved_pooling(model_dir: Path) -> str:
    """The embedding pooling cfgen saved beside a VLM, else E5-V's last token."""
    marker = model_dir / MARKER
    return json.loads(marker.read_text()).get("pooling", "last") if marker.is_file() else "last"


def saved_logit_scale(model_dir: Path) -> float:
    """The temperature cfgen saved beside a VLM, else CLIP's initial 1/0.07."""
    from safetensors.torch import load_file
    saved = model_dir / "cfgen_vlm.safetensors"
    return float(load_file(str(saved))["logit_scale"][0]) if saved.is_file() else math.log(1 / 0.07)


def lora_resume_source(model_dir: Path) -> tuple[str, Path] | None:
    """(base model, adapter dir) of a saved LoRA checkpoint, else None."""
    marker = model_dir / MARKER
    if not marker.is_file() or not (model_dir / "adapter").is_dir():
        return None
    base = json.loads(marker.read_text()).get("lora_base")
    return (base, model_dir / "adapter") if base else None
