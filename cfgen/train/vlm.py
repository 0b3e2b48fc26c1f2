"""A generative VLM (LLaVA-1.5 style: a fixed number of image tokens) as a dual encoder, so the
trainer, the filter and eval use it as they use CLIP: E5-V prompt embeddings.

    image: "<image>\\nSummarize above image in one word:"      -> last token's hidden state
    text:  "<sent>\\nSummarize above sentence in one word:"     -> last token's hidden state

Both from the same language model, L2-normalised by the caller; S(I, T) = cosine, and a learned
temperature (`logit_scale`, CLIP's initial 1/0.07) for the contrastive losses. Saved as the VLM's
own `save_pretrained` files plus `cfgen_vlm.safetensors` (the temperature) and `cfgen_vlm.json`.
Qwen2-VL (a variable number of image tokens per image) is not supported yet.

LoRA (`TrainConfig.lora_rank > 0`, through peft): adapters on the language model's attention
projections (and the vision tower's with `lora_vision`), everything else frozen. A saved LoRA run
holds the merged model (loads with plain transformers), `adapter/` (loads with plain
`peft.PeftModel.from_pretrained` on the base model) and the base model's name for an exact resume.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

IMAGE_PROMPT = "<image>\nSummarize above image in one word:"
TEXT_PROMPT = "{text}\nSummarize above sentence in one word:"
MARKER = "cfgen_vlm.json"


def is_vlm(config: Any) -> bool:
    """An image-text-to-text model with a vision tower and a language model (LLaVA family)."""
    return hasattr(config, "vision_config") and hasattr(config, "text_config") and \
        any(a.endswith("ForConditionalGeneration") for a in (getattr(config, "architectures", None) or []))


class VLMEmbedder(torch.nn.Module):
    """The VLM plus a temperature; `image_features` / `text_features` as a CLIP model has them."""

    def __init__(self, vlm: torch.nn.Module, image_ids: torch.Tensor, logit_scale: float = math.log(1 / 0.07),
                 base: str = ""):
        super().__init__()
        self.vlm = vlm
        self.base = base                       # the checkpoint a LoRA run started from
        self.config = vlm.config
        self.logit_scale = torch.nn.Parameter(torch.tensor(float(logit_scale)))
        self.register_buffer("image_ids", image_ids.long(), persistent=False)     # the image prompt, expanded

    def _last_hidden(self, **kw: Any) -> torch.Tensor:
        out = self.vlm(**kw, output_hidden_states=True, return_dict=True)
        h = out.hidden_states[-1]
        mask = kw["attention_mask"]
        last = mask.shape[1] - 1 - mask.flip(1).int().argmax(1)
        return h[torch.arange(h.shape[0], device=h.device), last]

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        ids = self.image_ids.to(pixel_values.device).expand(pixel_values.shape[0], -1)
        return self._last_hidden(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixel_values)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        return self._last_hidden(input_ids=input_ids, attention_mask=mask)

    @property
    def is_lora(self) -> bool:
        return hasattr(self.vlm, "peft_config")

    def save_pretrained(self, out: str | Path, **kw: Any) -> None:
        """The (merged) model, the temperature, and with LoRA the adapter and the base's name."""
        import copy
        from safetensors.torch import save_file
        out = Path(out)
        info: dict[str, Any] = {"image_prompt": IMAGE_PROMPT, "text_prompt": TEXT_PROMPT}
        if self.is_lora:
            self.vlm.save_pretrained(out / "adapter")
            copy.deepcopy(self.vlm).merge_and_unload().save_pretrained(out, **kw)
            info["lora_base"] = self.base
        else:
            self.vlm.save_pretrained(out, **kw)
        save_file({"logit_scale": self.logit_scale.detach().float().cpu().reshape(1)}, str(out / "cfgen_vlm.safetensors"))
        (out / MARKER).write_text(json.dumps(info))

    def add_lora(self, rank: int, alpha: int, dropout: float = 0.0, vision: bool = False,
                 targets: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj", "out_proj"),
                 adapter: Path | None = None) -> None:
        """Freeze the VLM and put LoRA adapters on its attention projections (language model,
        and the vision tower with `vision`); `adapter`: start from a saved adapter (resume)."""
        try:
            from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
        except ImportError as e:
            raise RuntimeError("train option lora_rank needs peft: pip install 'cfgen[vlm]'") from e
        towers = "language_model|vision_tower|vision_model" if vision else "language_model"
        pattern = rf".*({towers}).*\.({'|'.join(targets)})$"
        self.vlm = get_peft_model(self.vlm, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                                                        target_modules=pattern))
        if adapter is not None:
            from safetensors.torch import load_file
            set_peft_model_state_dict(self.vlm, load_file(str(adapter / "adapter_model.safetensors")))


class VLMPreprocessor:
    """Images through the VLM's image processor; texts wrapped in the E5-V prompt (picklable)."""

    def __init__(self, processor: Any, max_length: int = 128):
        self.processor, self.kind, self.max_length = processor, "vlm", max_length

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]

    def tokens(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        tok = self.processor.tokenizer
        enc = tok([TEXT_PROMPT.format(text=t) for t in texts], padding=True, truncation=True,
                  max_length=self.max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def load_vlm(path: str | Path, dtype: torch.dtype | None = None) -> tuple[VLMEmbedder, Any]:
    """(embedder, processor) from a VLM checkpoint or a directory cfgen saved."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    processor = AutoProcessor.from_pretrained(path)
    kw = {"dtype": dtype} if dtype is not None else {}
    vlm = AutoModelForImageTextToText.from_pretrained(path, **kw)
    probe = processor(images=[Image.new("RGB", (8, 8))], text=[IMAGE_PROMPT], return_tensors="pt")
    return VLMEmbedder(vlm, probe["input_ids"][0], saved_logit_scale(Path(path)), base=str(path)), processor


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
