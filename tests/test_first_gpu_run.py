"""What would break (or quietly mislead) the first run on a GPU node, checked on CPU (issue #23,
items 1, 2, 3, 7): train mode and gradient checkpointing, every shipped recipe at 1/2/4/8
processes, LoRA adapters only where a gradient can reach, the training dtype."""
from __future__ import annotations

import json

import pytest
import torch

from cfgen.resources import pipelines_dir
from cfgen.train.trainer import WORLD_SIZES, accumulation_steps, recipe_config
from tests.helpers import finish_ranks, launch_ranks, recut_shards


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    from cfgen.testing import build_llava
    return build_llava(tmp_path_factory.mktemp("llava") / "m")


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from cfgen.testing import build_qwen2_vl
    return build_qwen2_vl(tmp_path_factory.mktemp("qwen") / "m")


def _vlm_cfg(model, world_final, out, **kw):
    return recipe_config("cf-vlm", {"shards": [str(world_final / "final")], "model": str(model), "out": str(out),
                                    "batch_size": 8, "micro_batch": 8, "max_steps": 1, "lr": 1e-3, "warmup_steps": 1,
                                    "num_workers": 0, "log_every": 1, "save_every": 0, "k": 2, "shuffle_buffer": 10,
                                    "precision": "fp32", **kw})


# ------------------------------------------------------------------------------ item 1
def test_training_runs_in_train_mode_with_checkpointed_layers_and_ends_in_eval_mode(llava, world_final, tmp_path,
                                                                                   monkeypatch):
    """from_pretrained returns eval mode, and transformers checkpoints a layer only
    `if self.gradient_checkpointing and self.training` (transformers 5.24 modeling_layers.py:94,
    GradientCheckpointingLayer); the checkpoint function it calls is modeling_utils' `checkpoint`
    (modeling_utils.py:3169, bound into a partial by gradient_checkpointing_enable)."""
    import transformers.modeling_utils as mu
    from cfgen.train import model as model_mod
    from cfgen.train.trainer import train
    calls = {"checkpoint": 0}
    real = mu.checkpoint

    def counting(*a, **kw):
        calls["checkpoint"] += 1
        return real(*a, **kw)
    monkeypatch.setattr(mu, "checkpoint", counting)
    seen: list[tuple[bool, list[str]]] = []
    forward = model_mod.FeatureModule.forward

    def recording(self, *a, **kw):
        seen.append((torch.is_grad_enabled(), [n for n, m in self.named_modules() if not m.training]))
        recording.module = self
        return forward(self, *a, **kw)
    monkeypatch.setattr(model_mod.FeatureModule, "forward", recording)

    train(_vlm_cfg(llava, world_final, tmp_path / "o", lora_rank=4, gradient_checkpointing=True, max_steps=2))
    assert seen and all(grad for grad, _ in seen)
    assert all(not not_training for _, not_training in seen), seen[0][1][:5]
    # 2 steps x (image + text forward) x 2 decoder layers; the vision tower's 2 layers on image forwards
    assert calls["checkpoint"] >= 2 * 2 * 2, calls
    assert not any(m.training for m in recording.module.modules())     # evaluation afterwards: eval mode


def test_without_gradient_checkpointing_no_layer_is_checkpointed(llava, world_final, tmp_path, monkeypatch):
    import transformers.modeling_utils as mu
    from cfgen.train.trainer import train
    calls = []
    monkeypatch.setattr(mu, "checkpoint", lambda *a, **kw: calls.append(1))
    train(_vlm_cfg(llava, world_final, tmp_path / "o", lora_rank=4, gradient_checkpointing=False))
    assert calls == []


# ------------------------------------------------------------------------------ item 2
def _shipped() -> list[tuple[str, str]]:
    """(recipe name, config file) of every shipped pipeline YAML's train section and every recipe."""
    root = pipelines_dir()
    out = [(str(p), "config") for p in sorted(root.glob("*.yaml"))]
    out += [(p.stem, "recipe") for p in sorted((root / "train").glob("*.yaml"))]
    return out


@pytest.mark.parametrize("name,kind", _shipped())
@pytest.mark.parametrize("world", WORLD_SIZES)
def test_every_shipped_recipe_and_pipeline_starts_at_1_2_4_and_8_processes(name, kind, world):
    from cfgen.config import load_yaml
    if kind == "config":
        section = load_yaml(name, "train")
        cfg = recipe_config(None, config=section) if section.get("recipe") else recipe_config("cf-vlm", section)
    else:
        cfg = recipe_config(name)
    micro, accum = accumulation_steps(cfg.batch_size, cfg.micro_batch, world)
    assert micro * world * accum == cfg.batch_size


def test_a_batch_that_cannot_split_names_the_keys_and_the_fix():
    with pytest.raises(ValueError) as e:
        accumulation_steps(256, 256, 8)
    msg = str(e.value)
    assert "batch_size 256" in msg and "micro_batch 256" in msg and "8 process" in msg
    assert "set micro_batch to 0" in msg and ": 1, 2, 4, 8, 16, 32" in msg       # 32 x 8 = 256 works everywhere


@pytest.mark.slow
def test_paper_train_section_runs_one_step_on_8_gloo_processes(world_final, world_clip, tmp_path):
    """pipelines/paper.yaml's train section as shipped (batch 256), a tiny CLIP, 8 processes."""
    recut_shards(world_final / "final", tmp_path / "shards", [36] * 8)
    out = tmp_path / "out"
    procs = launch_ranks(["-m", "cfgen.cli", "train", "--config", str(pipelines_dir() / "paper.yaml"),
                          "--shards", str(tmp_path / "shards"), "--model", str(world_clip), "--out", str(out),
                          "--max-steps", "1", "--num-workers", "0", "--precision", "fp32", "--log-every", "1",
                          "--save-every", "0"], 8)
    finish_ranks(procs)
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 1 and log[-1]["global_batch"] == 256


# ------------------------------------------------------------------------------ item 3
def _one_backward(model_dir, world_final, vision: bool):
    from cfgen.train.data import make_loader
    from cfgen.train.model import DualEncoder, FeatureModule
    enc = DualEncoder.load(model_dir)
    enc.model.add_lora(4, 8, 0.0, vision)
    shard = sorted((world_final / "final").glob("*.tar"))[0]
    b = next(iter(make_loader([str(shard)], enc.pre, k=1, micro_batch=2, seed=0, epoch=0, shuffle_buffer=1,
                              num_workers=0)))
    img, txt = FeatureModule(enc.model).train()(b.pixel_values, b.input_ids, b.attention_mask)
    (img.sum() + txt.sum()).backward()
    return {n: p for n, p in enc.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("which", ["llava", "qwen"])
def test_every_lora_adapter_gets_a_gradient(which, llava, qwen, world_final):
    """DDP needs a gradient for every trainable parameter at every step. LLaVA reads the vision
    tower's hidden_states[vision_feature_layer] (-2: transformers 5.24 modeling_llava.py:142), so
    an adapter on its last layer would never get one."""
    params = _one_backward(llava if which == "llava" else qwen, world_final, vision=True)
    vision = [n for n in params if "vision_tower" in n or "visual" in n]
    assert vision, "lora_vision put no adapter on the vision tower"
    assert [n for n, p in params.items() if p.grad is None and n != "logit_scale"] == []
    if which == "llava":      # 2 vision layers, features from hidden_states[-2] = after layer 0
        assert all(".layers.0." in n for n in vision), vision


@pytest.mark.slow
@pytest.mark.parametrize("which", ["llava", "qwen"])
def test_lora_vision_finishes_three_steps_on_two_processes(which, llava, qwen, world_final, tmp_path):
    recut_shards(world_final / "final", tmp_path / "shards", [40, 40])
    out = tmp_path / "out"
    procs = launch_ranks(["-m", "cfgen.cli", "train", "--shards", str(tmp_path / "shards"), "--model",
                          str(llava if which == "llava" else qwen), "--out", str(out), "--recipe", "cf-vlm",
                          "--batch-size", "8", "--micro-batch", "2", "--max-steps", "3", "--k", "2",
                          "--num-workers", "0", "--precision", "fp32", "--log-every", "1", "--save-every", "0",
                          "--warmup-steps", "1", "--lora-rank", "4", "--lora-vision"], 2)
    finish_ranks(procs)
    assert json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])["step"] == 3


# ------------------------------------------------------------------------------ item 7
def test_a_vlm_whose_config_says_float16_trains_in_fp32_on_cpu(llava, world_final, tmp_path):
    """llava-1.5-7b-hf's config.json names float16; transformers 5 loads the config's dtype by
    default, so the trainer must name its own."""
    import shutil
    from cfgen.train.trainer import prepare
    half = tmp_path / "half"
    shutil.copytree(llava, half)
    cfg = json.loads((half / "config.json").read_text())
    cfg["dtype"] = "float16"
    (half / "config.json").write_text(json.dumps(cfg))
    from transformers import AutoModelForImageTextToText
    assert next(AutoModelForImageTextToText.from_pretrained(half).parameters()).dtype == torch.float16
    run = prepare(_vlm_cfg(half, world_final, tmp_path / "o", lora_rank=4))
    assert {p.dtype for p in run.model.parameters()} == {torch.float32}


# ------------------------------------------------------------------------------ item 9 (training side)
def test_batches_are_pinned_by_the_dataloader(world_final, world_clip, monkeypatch):
    """torch's pin-memory thread pins an object only through its `pin_memory()` method
    (torch/utils/data/_utils/pin_memory.py, `pin_memory`: the `hasattr(data, "pin_memory")` branch);
    a plain dataclass comes back unpinned and every host-to-device copy blocks."""
    from torch.utils.data._utils.pin_memory import pin_memory
    from cfgen.train.data import make_loader
    from cfgen.train.model import DualEncoder
    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a, **kw: pinned.append(self.shape) or self)
    enc = DualEncoder.load(world_clip)
    b = next(iter(make_loader([str(sorted((world_final / "final").glob("*.tar"))[0])], enc.pre, k=2, micro_batch=4,
                              shuffle_buffer=1)))
    out = pin_memory(b)
    assert type(out) is type(b) and out.n == b.n
    assert {tuple(s) for s in pinned} >= {tuple(b.pixel_values.shape), tuple(b.input_ids.shape),
                                          tuple(b.attention_mask.shape), tuple(b.mask.shape)}


def test_only_the_newest_checkpoints_are_kept_and_a_lora_checkpoint_holds_only_adapters(llava, world_final,
                                                                                       tmp_path):
    from cfgen.train.trainer import train
    out = tmp_path / "o"
    train(_vlm_cfg(llava, world_final, out, lora_rank=4, max_steps=4, save_every=1, keep_checkpoints=2))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000003", "step-0000004"]
    model = out / "checkpoints" / "step-0000004" / "model"
    assert (model / "adapter" / "adapter_model.safetensors").is_file()
    assert not list(model.glob("model*.safetensors"))               # no merged copy per checkpoint
    assert (out / "model.safetensors").is_file() or list(out.glob("model-*.safetensors"))   # merged once, at the end


def test_pixels_travel_as_uint8_and_normalise_on_the_device_to_the_same_values(world_final, tmp_path):
    """The trainer's batches carry uint8 pixels (a quarter of float32's bytes) when shards are
    stored at the model's resolution; `on_device` gives exactly what the processor path gives,
    computed here by hand from CLIP's mean and std."""
    from cfgen.io.images import decode_rgb
    from cfgen.train.data import make_loader
    from cfgen.train.model import DualEncoder
    from cfgen.world import world_words
    from cfgen.demo.clip import build_clip
    import webdataset as wds
    first = next(iter(wds.WebDataset(str(sorted((world_final / "final").glob("*.tar"))[0]), shardshuffle=False)))
    side = decode_rgb(first["jpg"]).size[0]
    enc = DualEncoder.load(build_clip(tmp_path / "clip", words=world_words(), image_size=side, patch_size=side // 4,
                                      width=32, layers=1, text_width=32, text_layers=1, heads=2, embed_dim=32))
    shard = [str(sorted((world_final / "final").glob("*.tar"))[0])]
    kw = dict(k=2, micro_batch=4, shuffle_buffer=1, seed=0, epoch=0)
    small = next(iter(make_loader(shard, enc.pre, uint8_pixels=True, **kw)))
    full = next(iter(make_loader(shard, enc.pre, **kw)))
    assert small.pixel_values.dtype == torch.uint8 and full.pixel_values.dtype == torch.float32
    ip = enc.processor.image_processor
    by_hand = (small.pixel_values.float() / 255 - torch.tensor(ip.image_mean).view(1, 3, 1, 1)) \
        / torch.tensor(ip.image_std).view(1, 3, 1, 1)
    assert torch.allclose(enc.pre.on_device(small.pixel_values), by_hand, atol=1e-6)
    assert torch.equal(enc.pre.on_device(small.pixel_values), full.pixel_values)
