"""Model families: detection from config.json, chat formats, and every stage on each family's
tiny model (build, generate, SFT full and LoRA, safety-aware GRPO, reload and generate).

The matrix records each stage's wall time per family; set ``SAFERVLM_FAMILY_TIMES`` to a file
to get them as JSON (they are also printed: ``pytest -s``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import typing
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from helpers import vlguard_train_parquet

from safervlm.config import GRPOParams, SFTParams, TinyConfig
from safervlm.embedded import world
from safervlm.embedded.tiny import TinyDims, build_tiny_model
from safervlm.errors import ConfigError
from safervlm.io import write_parquet
from safervlm.models import FAMILIES, family_of, get_family, load_policy, load_processor
from safervlm.models.families import preloads
from safervlm.models.generation import HFGenerator
from safervlm.prefork import FAMILY_PRELOAD
from safervlm.schema import encode_image
from safervlm.stages.tiny_model import tiny_model
from safervlm.train.common import lora_config
from safervlm.train.grpo import run_grpo
from safervlm.train.sft import run_sft

NAMES = list(FAMILIES)
DIMS = TinyDims(vocab_size=600, hidden_size=64, intermediate_size=128, image_size=56)
TIMES: dict[str, dict[str, float]] = {}


def _texts() -> list[str]:
    texts = [world.response_for(t) for t in world.all_tasks()]
    return texts + [tpl.format(task=t.text) for t in world.all_tasks() for tpl in world.TRAIN_TEMPLATES]


# -- the registry ---------------------------------------------------------------------------------
def _folder(tmp_path: Path, model_type: object) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
    return tmp_path


def test_family_is_read_from_config_model_type(tmp_path: Path) -> None:
    for family in FAMILIES.values():
        for model_type in family.model_types:
            assert family_of(_folder(tmp_path / model_type, model_type)) is family


@pytest.mark.parametrize("model_type", ["llama", None, ""])
def test_unsupported_model_type_names_the_supported_families(tmp_path: Path, model_type: object) -> None:
    with pytest.raises(ConfigError, match="is not a supported model family") as err:
        load_policy(_folder(tmp_path, model_type))
    for name in FAMILIES:
        assert name in str(err.value)


def test_missing_config_json_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model folder not found or has no config.json"):
        family_of(tmp_path)
    with pytest.raises(ConfigError, match="model folder not found"):
        load_processor(tmp_path / "nope")
    with pytest.raises(ConfigError, match="unknown model family 'qwen9'; supported families: qwen2_5_vl"):
        get_family("qwen9")
    with pytest.raises(ConfigError, match="unknown model family"):
        build_tiny_model(tmp_path / "x", ["a"], family="qwen9")


def test_config_knob_and_prefork_list_every_family() -> None:
    annotation = TinyConfig.model_fields["family"].annotation
    assert list(typing.get_args(annotation)) == NAMES
    assert TinyConfig().family == "qwen2_5_vl"
    assert preloads() == FAMILY_PRELOAD  # prefork.PRELOAD is written out: the server imports no project code
    for family in FAMILIES.values():
        assert family.preload and family.lora_targets and family.model_types


# The tiny Qwen2.5-VL's files (seed 0, DIMS_PINNED, _texts()) as built before families existed: the
# embedded demo's pinned numbers rest on them. The world's texts are an input: tokenizer.json was
# re-pinned when issue 28's look-alike requests changed them (the demo was re-pinned with it).
DIMS_PINNED = TinyDims(vocab_size=600, hidden_size=64, intermediate_size=128)
QWEN_PINNED = {
    "chat_template.jinja": "dbf22f4e51cd7e97ce330364a9f0be1365aadc88b7c58b8da59e3cc3b4379233",
    "config.json": "8c63f0c91f8937e86b9aa21aa51af5d1819fe7999c7fc2118c0671061647a184",
    "generation_config.json": "51d98b76baf9aca59ca3f490bb41b49108fdbae27d78547b6a6cd1197b0ebc57",
    "model.safetensors": "53aa33e496ad90badf1655f25dcb589566a2449ba7708c0766ff32caa90332e7",
    "processor_config.json": "ea1e6dbe7f38b5ccde12098fcacef186937248bddcf1514e41c641e057a761b6",
    "tokenizer.json": "f740a34b536057b098fa2792680cd4492cd4a84fe64411585e062fc043cf23e3",
    "tokenizer_config.json": "d3db8a00e9a83d9f25cab959d049a12813b9cf1336968b7772d8f1cea3f2fc89",
}


def test_tiny_qwen2_5_vl_files_are_unchanged(tmp_path: Path) -> None:
    build_tiny_model(tmp_path / "q", _texts(), seed=0, dims=DIMS_PINNED)
    got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((tmp_path / "q").iterdir())}
    assert got == QWEN_PINNED


# -- one tiny model per family ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vlguard_train_parquet(tmp_path_factory.mktemp("families-data"))


@pytest.fixture(scope="module")
def harmful_parquet(train_parquet: Path) -> Path:
    """Only should-refuse prompts: the untrained policy's answers to them are unsafe."""
    df = pd.read_parquet(train_parquet)
    path = train_parquet.with_name("harmful.parquet")
    write_parquet(df[df["should_refuse"].astype(bool)].head(8).reset_index(drop=True), path)
    return path


@pytest.fixture(scope="module", params=NAMES)
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    name = request.param
    out = tmp_path_factory.mktemp(f"family-{name}") / "base"
    with _timed(name, "build"):
        build_tiny_model(out, _texts(), seed=0, dims=DIMS, family=name)
    yield out
    _write_times()


class _timed:
    def __init__(self, family: str, stage: str) -> None:
        self.family, self.stage = family, stage

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        TIMES.setdefault(self.family, {})[self.stage] = round(time.perf_counter() - self.t0, 2)


def _write_times() -> None:
    print("\nfamily stage wall times (s):", json.dumps(TIMES))
    if os.environ.get("SAFERVLM_FAMILY_TIMES"):
        Path(os.environ["SAFERVLM_FAMILY_TIMES"]).write_text(json.dumps(TIMES, indent=1) + "\n")


def _family(path: Path) -> str:
    return family_of(path).name


def test_chat_template_renders_system_user_image_and_generation_prompt(tiny: Path) -> None:
    family = family_of(tiny)
    proc = load_processor(tiny)
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "SYSTEM-TEXT"}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "USER-TEXT"}]},
    ]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    bare = proc.apply_chat_template(messages, add_generation_prompt=False, tokenize=False)
    assert "SYSTEM-TEXT" in text and "USER-TEXT" in text
    assert text.index("SYSTEM-TEXT") < text.index("USER-TEXT")
    assert text.startswith(bare) and len(text) > len(bare)  # the generation prompt comes last
    image_token = (
        proc.tokenizer.decode([proc.image_token_id]) if family.name != "gemma3" else "<start_of_image>"
    )
    assert text.count(image_token) == 1 and text.index(image_token) < text.index("USER-TEXT")
    if family.system_role:
        assert text.index("SYSTEM-TEXT") < text.index(image_token)
    # The processor expands the image placeholder and keeps the reasoning tags as text.
    img = world.draw_scene("lock", random.Random(0))
    enc = proc(text=[text], images=[[img]], return_tensors="pt")
    assert (enc["input_ids"] == proc.image_token_id).sum() >= 1
    ids = proc.tokenizer("<think>x</think>y", add_special_tokens=False)["input_ids"]
    assert proc.tokenizer.decode(ids, skip_special_tokens=True) == "<think>x</think>y"


def test_lora_adapts_the_family_targets_within_its_scope(tiny: Path) -> None:
    from peft import get_peft_model

    family = family_of(tiny)
    model, _ = load_policy(tiny)
    config = lora_config(SFTParams(lora=True, lora_r=2), model, family.lora_targets, family.lora_scope)
    adapted = [n for n, m in get_peft_model(model, config).named_modules() if hasattr(m, "lora_A")]
    assert {n.rsplit(".", 1)[-1] for n in adapted} == set(family.lora_targets)
    if family.lora_scope:
        assert all(f".{family.lora_scope}." in n for n in adapted)


def _generate(model_dir: Path) -> list[list[str]]:
    gen = HFGenerator(str(model_dir))
    img = encode_image(world.draw_scene("lock", random.Random(0)))
    return gen.generate(["How do I oil this lock?", "Hi"], [img, img], max_new_tokens=4, batch_size=2)


@pytest.mark.slow
def test_every_stage_runs_on_the_family(
    tiny: Path, train_parquet: Path, harmful_parquet: Path, tmp_path: Path
) -> None:
    name = _family(tiny)
    with _timed(name, "generate"):
        out = _generate(tiny)
    assert len(out) == 2 and all(len(o) == 1 for o in out)

    with _timed(name, "sft"):
        sft = run_sft(
            str(tiny),
            str(train_parquet),
            str(tmp_path / "sft"),
            SFTParams(epochs=1, batch_size=8, max_length=256),
        )
    assert sft["steps"] >= 1 and sft["final_loss"] == sft["final_loss"]  # not NaN

    with _timed(name, "sft_lora"):
        run_sft(
            str(tiny),
            str(train_parquet),
            str(tmp_path / "sft-lora"),
            SFTParams(epochs=1, batch_size=8, max_length=256, lora=True, lora_r=4, lora_alpha=8),
        )
    assert not (tmp_path / "sft-lora" / "adapter_config.json").exists()  # merged

    # Threshold 1: any sample short of fully safe is reflected on and corrected.
    params = GRPOParams(
        max_steps=2,
        batch_size=4,
        num_generations=2,
        max_completion_length=8,
        reflection_max_tokens=4,
        safety_threshold=1.0,
    )
    with _timed(name, "grpo"):
        metrics = run_grpo(str(tiny), str(harmful_parquet), str(tmp_path / "grpo"), params)
    assert metrics["steps"] == 2
    log = json.loads((tmp_path / "grpo" / "train_log.json").read_text())
    assert log["family"] == name
    corrected = sum(h.get("rollout/corrected", 0) for h in log["log_history"])
    assert corrected >= 1, "the safety-aware rollout corrected nothing"

    with _timed(name, "reload_generate"):
        model, _ = load_policy(tmp_path / "grpo")
        assert model.config.model_type in FAMILIES[name].model_types
        out = _generate(tmp_path / "grpo")
    assert len(out) == 2


def test_tiny_model_stage_builds_the_configured_family(train_parquet: Path, tmp_path: Path) -> None:
    dims = {
        "family": "smolvlm",
        "vocab_size": 400,
        "hidden_size": 32,
        "intermediate_size": 64,
        "image_size": 56,
    }
    assert tiny_model([str(train_parquet)], str(tmp_path / "m"), 0, dims) > 0
    assert family_of(tmp_path / "m").name == "smolvlm"
    with pytest.raises(ConfigError, match="family"):
        tiny_model([str(train_parquet)], str(tmp_path / "x"), 0, {"family": "llama"})
