"""Typed stage parameters, validated at the CLI boundary.

Snakemake validates the whole config against ``workflow/schemas/config.schema.yaml``;
each stage's CLI receives its section as JSON and checks it again here, so a stage run
by hand gets the same clear error for a missing key or a value of the wrong type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from safervlm.errors import ConfigError

T = TypeVar("T")


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, list | tuple)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is Any:
        return True
    return isinstance(value, hint)


def from_dict(cls: type[T], data: dict[str, Any] | None, *, section: str) -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types.

    Args:
        cls: a dataclass type whose fields carry defaults.
        data: the config section (missing keys take the defaults).
        section: the section's name, used in error messages.

    Raises:
        ConfigError: naming the section, key, expected type and value.
    """
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"config section '{section}': unknown keys {unknown}; known: {sorted(names)}")
    for key, value in data.items():
        if not _type_ok(value, hints[key]):
            raise ConfigError(
                f"config section '{section}': key '{key}' must be {hints[key]}, got {value!r} "
                f"({type(value).__name__})"
            )
    return cls(**data)


def parse_json_arg(text: str, *, what: str) -> dict[str, Any]:
    """Parse a ``--params`` JSON argument, with a clear error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}: not valid JSON ({exc}): {text[:200]}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def config_hash(config: Any) -> str:
    """A short, stable hash of a config (sorted-key JSON)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


@dataclass
class CurateParams:
    """Decontamination and quality–instability selection (``curate`` section)."""

    ngram: int = 8
    k_samples: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 48
    batch_size: int = 32
    quality_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    min_instability: float = 0.0
    max_samples: int | None = None
    min_samples: int = 0


@dataclass
class TrainParams:
    """Fields SFT and GRPO share, defined once."""

    learning_rate: float = 1e-4
    batch_size: int = 16
    grad_accum: int = 1
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    deepspeed: str | None = None


@dataclass
class SFTParams(TrainParams):
    """SFT warm-up (``sft`` section)."""

    epochs: float = 8
    learning_rate: float = 3e-3
    max_length: int = 512
    warmup_steps: int = 5


@dataclass
class GRPOParams(TrainParams):
    """GRPO (``grpo`` section)."""

    max_steps: int = 30
    num_generations: int = 4
    max_completion_length: int = 48
    temperature: float = 1.0
    beta: float = 0.0
    reward: str = "structured"
    reward_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerateParams:
    """Batched generation (``generate`` section)."""

    batch_size: int = 32
    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 0.0
    system_prompt: str | None = None
    prompt_template: str = "{question}"  # the user turn; "{question}" is replaced
    backend: str = "hf"  # hf | openai (OpenAI-compatible server, e.g. vllm serve) | vllm (offline)
    base_url: str | None = None  # openai backend: http://host:8000/v1
    served_model: str | None = None  # openai backend: model name on the server (null = model path)
    api_key_env: str | None = None  # openai backend: env var holding the key (null = no key)
    concurrency: int = 8  # openai backend: requests in flight
