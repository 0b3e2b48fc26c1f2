"""Tiny models for tests and benchmarks — NOT for production: random weights, built from
configs, saved with `save_pretrained` and loaded back through the same `from_pretrained` code real
checkpoints use (no download). Shipped in the wheel so the benchmarks and a user's own tests can
build them without the repository's tests/ folder.

`build_causal_lm`: a tiny Llama-architecture LM with a locally trained BPE tokenizer, for the
`transformers` captions backend. `build_sdxl`: SDXL base + refiner pipelines (tiny, or the
published sizes with random weights for GPU benchmarks). `build_grounding`: OWLv2 / Grounding
DINO / SAM / CLIPSeg checkpoints. `build_llava`, `build_qwen2_vl`: tiny generative VLMs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from .demo.clip import BOS, EOS, write_clip_tokenizer


def build_causal_lm(out: str | Path, corpus: Iterable[str] = (), vocab_size: int = 400, seed: int = 0) -> Path:
    """A tiny random-weight Llama-architecture LM with a BPE tokenizer trained here."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    texts = list(corpus) or ["1. a red car\n2. a blue car\n3. two dogs on the grass\n"]
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="</s>")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


# ---------------------------------------------------------------------------------- SDXL
def _sdxl_parts(full: bool) -> dict[str, Any]:
    """UNet / VAE / text-encoder configs: the published SDXL 1.0 sizes, or a tiny variant."""
    if full:
        te1 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                   projection_dim=768, hidden_act="quick_gelu")
        te2 = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                   projection_dim=1280, hidden_act="gelu")
        base = dict(block_out_channels=(320, 640, 1280), layers_per_block=2, transformer_layers_per_block=(1, 2, 10),
                    attention_head_dim=(5, 10, 20), cross_attention_dim=2048, addition_time_embed_dim=256,
                    projection_class_embeddings_input_dim=2816, sample_size=128,
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
        refiner = dict(block_out_channels=(384, 768, 1536, 1536), layers_per_block=2, transformer_layers_per_block=4,
                       attention_head_dim=(6, 12, 24, 24), cross_attention_dim=1280, addition_time_embed_dim=256,
                       projection_class_embeddings_input_dim=2560, sample_size=128,
                       down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
        vae = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=1024,
                   down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                   scaling_factor=0.13025)
    else:
        te1 = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                   projection_dim=32, hidden_act="gelu")
        te2 = dict(te1)
        base = dict(block_out_channels=(32, 64), layers_per_block=1, transformer_layers_per_block=(1, 1),
                    attention_head_dim=(2, 4), cross_attention_dim=64, addition_time_embed_dim=8,
                    projection_class_embeddings_input_dim=6 * 8 + 32, sample_size=16,
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
        refiner = dict(base, cross_attention_dim=32, projection_class_embeddings_input_dim=5 * 8 + 32)
        vae = dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=64,
                   down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    return {"te1": te1, "te2": te2, "base": base, "refiner": refiner, "vae": vae}


def build_sdxl(base_out: str | Path, refiner_out: str | Path | None = None, full: bool = False,
               seed: int = 0) -> tuple[Path, Path | None]:
    """Random-weight SDXL Base (+ Refiner sharing VAE and text_encoder_2), saved as diffusers
    pipelines that `StableDiffusionXL*Pipeline.from_pretrained` loads like the real ones."""
    import torch
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline,
                           StableDiffusionXLPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
    parts = _sdxl_parts(full)
    tok_dir = Path(base_out) / "_tok"
    write_clip_tokenizer(tok_dir, "a an the red blue green dog cat photo of".split())
    tok = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    tok.pad_token = EOS
    ids = dict(vocab_size=len(tok), bos_token_id=tok.convert_tokens_to_ids(BOS),
               eos_token_id=tok.convert_tokens_to_ids(EOS), pad_token_id=tok.convert_tokens_to_ids(EOS),
               max_position_embeddings=77)
    if full:
        ids["vocab_size"] = 49408
    torch.manual_seed(seed)
    te1 = CLIPTextModel(CLIPTextConfig(**parts["te1"], **ids))
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**parts["te2"], **ids))
    common_unet = dict(in_channels=4, out_channels=4, use_linear_projection=True, addition_embed_type="text_time")
    unet = UNet2DConditionModel(**common_unet, **parts["base"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **parts["vae"])
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   steps_offset=1, timestep_spacing="leading")
    StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok,
                              unet=unet, scheduler=sched).save_pretrained(base_out)
    ref_path = None
    if refiner_out is not None:
        runet = UNet2DConditionModel(**common_unet, **parts["refiner"])
        StableDiffusionXLImg2ImgPipeline(vae=vae, text_encoder=None, text_encoder_2=te2, tokenizer=None,
                                         tokenizer_2=tok, unet=runet, scheduler=sched,
                                         requires_aesthetics_score=True).save_pretrained(refiner_out)
        ref_path = Path(refiner_out)
    return Path(base_out), ref_path


# ---------------------------------------------------------------------------------- grounding
def build_grounding(out: str | Path, kind: str = "owlv2", seed: int = 0, full: bool = False) -> Path:
    """Tiny random-weight OWLv2, SAM or CLIPSeg with processors, saved for `from_pretrained`;
    `full`: the published base sizes (OWLv2 B/16 at 960 px, SAM ViT-B at 1024 px, CLIPSeg
    rd64), for benchmarks."""
    import torch
    from transformers import CLIPTokenizer
    out = Path(out)
    torch.manual_seed(seed)
    small_text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      max_position_embeddings=16)
    small_vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                        image_size=32, patch_size=8)
    if kind in ("owlv2", "clipseg"):
        write_clip_tokenizer(out, "a an the red blue green dog cat frisbee".split())
        tok = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), model_max_length=16)
        tok.pad_token = "!"
        text = dict(small_text, vocab_size=len(tok), bos_token_id=tok.convert_tokens_to_ids(BOS),
                    eos_token_id=tok.convert_tokens_to_ids(EOS), pad_token_id=tok.convert_tokens_to_ids("!"))
    if full and kind in ("owlv2", "clipseg"):
        text = dict(vocab_size=49408, bos_token_id=text["bos_token_id"], eos_token_id=text["eos_token_id"],
                    pad_token_id=text["pad_token_id"])
    if full and kind == "owlv2":
        from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessorPil, Owlv2Processor
        model = Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=dict(image_size=960, patch_size=16)))
        proc = Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": 960, "width": 960}), tokenizer=tok)
    elif full and kind == "sam":
        from transformers import SamConfig, SamImageProcessorPil, SamModel, SamProcessor
        model = SamModel(SamConfig())
        proc = SamProcessor(image_processor=SamImageProcessorPil())
    elif full and kind == "clipseg":
        from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor, ViTImageProcessorPil
        model = CLIPSegForImageSegmentation(CLIPSegConfig(text_config=text))
        proc = CLIPSegProcessor(image_processor=ViTImageProcessorPil(size={"height": 352, "width": 352},
                                                                     image_mean=[0.485, 0.456, 0.406],
                                                                     image_std=[0.229, 0.224, 0.225]), tokenizer=tok)
    elif kind == "owlv2":
        from transformers import (Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessorPil,
                                  Owlv2Processor)
        model = Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=small_vision, projection_dim=32))
        # a zeroed box output layer predicts one patch-sized box per patch (the model's box bias)
        # instead of the degenerate boxes random weights give
        torch.nn.init.zeros_(model.box_head.dense2.weight)
        torch.nn.init.zeros_(model.box_head.dense2.bias)
        proc = Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tok)
    elif kind == "clipseg":
        from transformers import (CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor,
                                  ViTImageProcessorPil)
        model = CLIPSegForImageSegmentation(CLIPSegConfig(text_config=text, vision_config=small_vision,
                                                          projection_dim=32, extract_layers=[1], reduce_dim=16,
                                                          decoder_num_attention_heads=2,
                                                          decoder_intermediate_size=32))
        proc = CLIPSegProcessor(image_processor=ViTImageProcessorPil(size={"height": 32, "width": 32},
                                                                     image_mean=[0.5] * 3, image_std=[0.5] * 3),
                                tokenizer=tok)
    elif kind == "sam":
        from transformers import (SamConfig, SamImageProcessorPil, SamMaskDecoderConfig, SamModel,
                                  SamProcessor, SamPromptEncoderConfig, SamVisionConfig)
        vision = SamVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                 image_size=64, patch_size=8, output_channels=16, window_size=4,
                                 global_attn_indexes=[1], mlp_dim=64, num_pos_feats=8)
        prompt = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4)
        decoder = SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32,
                                       iou_head_hidden_dim=16)
        model = SamModel(SamConfig(vision_config=vision.to_dict(), prompt_encoder_config=prompt.to_dict(),
                                   mask_decoder_config=decoder.to_dict()))
        proc = SamProcessor(image_processor=SamImageProcessorPil(size={"longest_edge": 64},
                                                                 pad_size={"height": 64, "width": 64}))
    else:
        raise ValueError(kind)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


# ------------------------------------------------------------------------------- LLaVA
def build_llava(out: str | Path, seed: int = 0, image_size: int = 32, patch: int = 8) -> Path:
    """A tiny random-weight LLaVA-1.5-architecture VLM (CLIP vision tower, MLP projector, Llama LM)
    with a BPE tokenizer trained here (with `<image>`, "Yes", "No") and a CLIP image processor."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    corpus = ["USER: Does this image show: a red car? Answer yes or no. ASSISTANT: Yes", "No", "Is there a dog "
              "in the image? Please answer yes or no. ASSISTANT: No"]
    tk.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<image>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="</s>", extra_special_tokens={"image_token": "<image>"})
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, patch_size=patch, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                      vision_feature_select_strategy="default", vision_feature_layer=-2)
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(cfg).save_pretrained(out)
    ip = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=patch, vision_feature_select_strategy="default",
                   num_additional_image_tokens=1).save_pretrained(out)
    return out


# ------------------------------------------------------------------------------- Qwen2-VL
# The released Qwen2-VL chat template, shortened to the parts a single-turn image question uses.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build_qwen2_vl(out: str | Path, seed: int = 0, patch: int = 4, max_side: int = 32, v25: bool = False,
                   full: bool = False) -> Path:
    """A tiny random-weight Qwen2-VL (ViT with 2x2 patch merger, M-RoPE language model), or with
    `v25` a Qwen2.5-VL (windowed attention ViT), its image processor (the PIL one: no
    torchvision) and a BPE tokenizer with Qwen's special tokens and chat template. Saved as a
    real checkpoint is laid out: no processor_config (building Qwen's processor needs torchvision
    here), so it loads as cfgen loads a checkpoint without it. `full`: Qwen2-VL-2B's published
    sizes (random bf16 weights, the released image processor's bounds) for the GPU benchmark."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                              Qwen2VLConfig, Qwen2VLForConditionalGeneration)
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    special = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>"]
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    corpus = ["user\nDoes this image show: a red car? Answer yes or no.\nassistant\nYes", "No",
              "Is there a dog in the image? Please answer yes or no. Summarize above sentence in one word:"]
    tk.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=320, special_tokens=special,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", unk_token="<unk>",
                                  pad_token="<|endoftext|>", chat_template=QWEN_CHAT_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in special}
    vision = dict(depth=2, hidden_size=32, num_heads=2, patch_size=patch, spatial_merge_size=2,
                  temporal_patch_size=2, in_channels=3)
    vision.update(dict(intermediate_size=64, out_hidden_size=32, window_size=4 * patch, fullatt_block_indexes=[1])
                  if v25 else dict(embed_dim=32, mlp_ratio=2))
    config_cls, model_cls = (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration) if v25 else \
        (Qwen2VLConfig, Qwen2VLForConditionalGeneration)
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, max_position_embeddings=1024,
                rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})
    if full:                                    # Qwen2-VL-2B-Instruct's config.json
        patch, max_side = 14, 1280 ** 0.5 * 28
        vision = dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
        text = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                    num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                    tie_word_embeddings=True, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]})
    cfg = config_cls(
        vision_config=vision,
        text_config=dict(text, bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    torch.manual_seed(seed)
    if full:
        cfg.dtype = torch.bfloat16
    model_cls(cfg).to(torch.bfloat16 if full else torch.float32).save_pretrained(out)
    tok.save_pretrained(out)
    unit = patch * 2
    Qwen2VLImageProcessorPil(patch_size=patch, merge_size=2, temporal_patch_size=2,
                             size={"shortest_edge": unit * unit, "longest_edge": int(max_side * max_side)}
                             ).save_pretrained(out)
    return out
