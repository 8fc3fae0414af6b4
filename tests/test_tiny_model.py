"""The offline tiny Qwen2.5-VL policy: loads with from_pretrained, deterministic, generates."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from transformers import AutoModelForImageTextToText

from safervlm.embedded import world
from safervlm.embedded.tiny import TinyDims, build_tiny_model
from safervlm.errors import ConfigError
from safervlm.models import ImageOnlyQwenVLProcessor, load_policy, load_processor
from safervlm.schema import encode_image


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_folder_loads_with_from_pretrained(tiny_model_dir: Path) -> None:
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    n = sum(p.numel() for p in model.parameters())
    assert 100_000 < n < 2_000_000
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert cfg["model_type"] == "qwen2_5_vl"


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    texts = [world.response_for(t) for t in world.all_tasks()]
    dims = TinyDims(vocab_size=500, hidden_size=32, intermediate_size=64)
    build_tiny_model(tmp_path / "a", texts, seed=3, dims=dims)
    build_tiny_model(tmp_path / "b", texts, seed=3, dims=dims)
    build_tiny_model(tmp_path / "c", texts, seed=4, dims=dims)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert _sha(tmp_path / "a" / name) == _sha(tmp_path / "b" / name), name
    assert _sha(tmp_path / "a" / "model.safetensors") != _sha(tmp_path / "c" / "model.safetensors")


def test_processor_is_image_only_and_keeps_reasoning_tags(tiny_model_dir: Path) -> None:
    proc = load_processor(tiny_model_dir)
    assert isinstance(proc, ImageOnlyQwenVLProcessor)
    assert proc.get_attributes() == ["image_processor", "tokenizer"]
    ids = proc.tokenizer("<think>x</think>y")["input_ids"]
    text = proc.tokenizer.decode(ids, skip_special_tokens=True)
    assert text == "<think>x</think>y"  # TRL decodes rollouts with skip_special_tokens=True


def test_generates_from_image_and_text(tiny_model_dir: Path) -> None:
    from safervlm.models.generation import HFGenerator

    gen = HFGenerator(str(tiny_model_dir))
    img = encode_image(world.draw_scene("lock", random.Random(0)))
    out = gen.generate(["How do I oil this lock?", "Hi"], [img, img], max_new_tokens=5, batch_size=2)
    assert len(out) == 2 and all(len(o) == 1 for o in out)
    sampled = gen.generate(["Hi"], [img], max_new_tokens=4, do_sample=True, num_samples=3)
    assert len(sampled[0]) == 3


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model folder not found"):
        load_policy(tmp_path / "nope")
