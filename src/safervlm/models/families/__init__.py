"""Model families: one module per architecture, looked up from ``config.json``'s ``model_type``.

Each module (one per architecture: ``qwen2_5_vl``, ``gemma3``, ``internvl`` …; the
registry :data:`FAMILIES` lists them all) declares one
:class:`~safervlm.models.families.base.Family`: the model types it handles, its processor
with and without torchvision, reasoning format, chat-template quirks, pre-imports, LoRA
targets and tiny offline builder. A folder whose ``model_type`` no family claims is a
:class:`~safervlm.errors.ConfigError` naming the supported families, never a guess.

Adding a family: write ``families/<name>.py`` with its ``FAMILY`` and add it to
:data:`FAMILIES` (and its pre-imports to ``safervlm.prefork.PRELOAD``; a test checks both).
"""

from __future__ import annotations

import json
from pathlib import Path

from safervlm.errors import ConfigError
from safervlm.models.families import (
    gemma3,
    gemma4,
    glm4v,
    idefics3,
    internvl,
    llava_onevision,
    qwen2_5_vl,
    qwen3_vl,
    smolvlm,
)
from safervlm.models.families.base import Family, require_config
from safervlm.models.families.tiny import TinyDims

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        qwen2_5_vl.FAMILY,
        qwen3_vl.FAMILY,
        gemma3.FAMILY,
        llava_onevision.FAMILY,
        smolvlm.FAMILY,
        internvl.FAMILY,
        glm4v.FAMILY,
        idefics3.FAMILY,
        gemma4.FAMILY,
    )
}
_BY_MODEL_TYPE = {t: f for f in FAMILIES.values() for t in f.model_types}


def _supported() -> str:
    return "; ".join(f.describe() for f in FAMILIES.values())


def get_family(name: str) -> Family:
    """The family registered as ``name``.

    Raises:
        ConfigError: no family has that name (the message lists them).
    """
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family {name!r}; supported families: {_supported()}")
    return FAMILIES[name]


def family_of(path: str | Path) -> Family:
    """The family of the model folder ``path``, from its ``config.json``'s ``model_type``.

    Raises:
        ConfigError: no folder or ``config.json``, or a ``model_type`` no family handles.
    """
    p = require_config(path)
    try:
        model_type = json.loads((p / "config.json").read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ConfigError(f"{p / 'config.json'}: not a JSON object ({exc})") from exc
    if model_type not in _BY_MODEL_TYPE:
        raise ConfigError(
            f"{p}: model_type {model_type!r} is not a supported model family; supported families "
            f"(model_type values): {_supported()}"
        )
    return _BY_MODEL_TYPE[model_type]


def preloads() -> tuple[str, ...]:
    """Every family's pre-imports, in registry order, without repeats."""
    return tuple(dict.fromkeys(m for f in FAMILIES.values() for m in f.preload))


__all__ = ["FAMILIES", "Family", "TinyDims", "family_of", "get_family", "preloads"]
