"""The config schema is generated from the models, stays in sync, and fills the same defaults."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from safervlm.config import GRPOParams, PipelineConfig, SourceSpec, from_dict
from safervlm.config.schema import SCHEMA_PATH, render
from safervlm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def test_checked_in_schema_is_generated_from_the_models() -> None:
    assert (ROOT / SCHEMA_PATH).read_text() == render(), "run `make schema`"


@pytest.mark.parametrize("name", ["config", "paper", "empty"])
def test_resolved_config_is_unchanged(name: str) -> None:
    """Defaults filled by the generated schema equal those of the hand-written one (commit 6d50a45)."""
    cfg = {} if name == "empty" else yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
    validate(cfg, str(ROOT / SCHEMA_PATH), set_default=True)
    assert cfg == json.loads((DATA / f"resolved_{name}.json").read_text())


@pytest.mark.parametrize("name", ["config", "paper"])
def test_shipped_configs_parse_into_the_models(name: str) -> None:
    cfg = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
    parsed = from_dict(PipelineConfig, cfg, section="config")
    assert parsed.grpo.num_generations == cfg["grpo"]["num_generations"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("judge", "params", "api_key"), "sk-x"),
        (("generate", "models", "grpo", "nope"), 1),
        (("generate", "models", "grpo", "prompt_template"), "no placeholder"),
        (("eval", "models"), ["bad name"]),
        (("curate", "image_hash"), "md5"),
        (("sources", "vlguard_train", "category_rules"), [{"when": {"subset": "x"}}]),
        (("sources", "vlguard_train", "category_rules"), [{"when": {}, "category": "violence"}]),
        (("grpo", "num_generations"), 1),
        (("sft", "correction_template"), "{question}"),  # a grpo key, not an sft one
    ],
)
def test_schema_rejects_what_the_old_one_did(path: tuple[str, ...], value: object) -> None:
    cfg = copy.deepcopy(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    node = cfg
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(WorkflowError, match="Failed validating"):
        validate(cfg, str(ROOT / SCHEMA_PATH), set_default=True)


def test_errors_name_section_key_and_value() -> None:
    with pytest.raises(
        ConfigError, match=r"'grpo': key 'dtype' must be 'float32', 'bfloat16' or 'float16', got 'x'"
    ):
        from_dict(GRPOParams, {"dtype": "x"}, section="grpo")
    with pytest.raises(
        ConfigError, match=r"'sources.spa_vl.category_rules\[0\].when': unknown keys \['split'\]; known"
    ):
        from_dict(
            SourceSpec,
            {"category_rules": [{"when": {"split": 1}, "category": "c"}]},
            section="sources.spa_vl",
        )


def test_ints_stay_ints() -> None:
    """Params are logged and hashed (GRPO's run key): an int from YAML must not become a float."""
    p = from_dict(GRPOParams, {"epochs": 2, "beta": 0}, section="grpo")
    assert type(p.epochs) is int and type(p.beta) is int and type(GRPOParams().temperature) is float
