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


# The decoder's attention and MLP projections (Qwen2.5-VL names).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
REFLECTION_TEMPLATE = (
    "Your answer above may be unsafe. In one or two sentences, say what was unsafe about it "
    "and how a safe answer would handle the request."
)
CORRECTION_TEMPLATE = (
    "{question}\n\nA critique of an earlier, unsafe answer to this request: {critique}\n"
    "Answer again: think about whether the request is harmful or illegal, and if it is, refuse "
    "and offer a safe alternative."
)

DEMO_CRITIQUE = (
    "The answer went along with a harmful request. A safe answer refuses it and offers a safe alternative."
)


@dataclass
class TrainParams:
    """Fields SFT and GRPO share, defined once."""

    learning_rate: float = 1e-4
    batch_size: int = 16
    grad_accum: int = 1
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    deepspeed: str | None = None
    dtype: str = "float32"
    gradient_checkpointing: bool = False


@dataclass
class SFTParams(TrainParams):
    """SFT warm-up (``sft`` section)."""

    epochs: float = 8
    learning_rate: float = 3e-3
    max_length: int = 512
    warmup_steps: int = 5
    # Correction demonstrations: the share of should-refuse records also trained as
    # (correction prompt with a canned critique -> the safe response), so the policy knows
    # what the safety-aware rollout's correction prompt asks for. The template is grpo's
    # (the workflow passes grpo.correction_template).
    correction_demos: float = 0.0
    demo_critique: str = DEMO_CRITIQUE
    correction_template: str = CORRECTION_TEMPLATE


@dataclass
class GRPOParams(TrainParams):
    """GRPO with the safety-aware (reflect-and-correct) rollout (``grpo`` section).

    See :mod:`safervlm.train.rollout` for the rollout and :func:`check_grpo_params` for the
    cross-field checks run before training starts.
    """

    max_steps: int | None = 30
    epochs: float = 1.0
    num_generations: int = 4
    max_prompt_length: int | None = None
    max_completion_length: int = 48
    temperature: float = 1.0
    beta: float = 0.0
    reward: str = "structured"
    reward_params: dict[str, Any] = field(default_factory=dict)
    safety_aware: bool = True
    safety_score: str = "safety"
    safety_threshold: float = 0.5
    correction_mode: str = "replace"
    correction_slots: int = 1
    reflection_template: str = REFLECTION_TEMPLATE
    correction_template: str = CORRECTION_TEMPLATE
    reflection_max_tokens: int = 32
    save_steps: int = 10
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    vllm_server_base_url: str | None = None


SAFETY_SCORES = ("safety", "reasoning_safety", "answer_safety")
DTYPES = ("float32", "bfloat16", "float16")


def check_dtype(params: TrainParams, section: str) -> None:
    """The policy dtype must be one torch loads; raises ConfigError naming the section."""
    if params.dtype not in DTYPES:
        raise ConfigError(
            f"config section {section!r}: dtype must be one of {list(DTYPES)}, got {params.dtype!r}"
        )


def check_sft_params(params: SFTParams) -> None:
    """Checks of the ``sft`` section before any model is loaded; raises ConfigError."""
    check_dtype(params, "sft")
    if not 0.0 <= params.correction_demos <= 1.0:
        raise ConfigError(
            f"config section 'sft': correction_demos must be in [0, 1], got {params.correction_demos}"
        )
    try:
        params.correction_template.format(question="", critique="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"config section 'sft': correction_template may only use {{question}} and {{critique}}: {exc!r}"
        ) from exc


CORRECTION_MODES = ("replace", "add")


def check_grpo_params(params: GRPOParams) -> None:
    """Cross-field checks of the ``grpo`` section, before any model is loaded.

    Raises:
        ConfigError: naming the key and the rule it breaks.
    """
    from safervlm.rewards import available_rewards

    def bad(msg: str) -> ConfigError:
        return ConfigError(f"config section 'grpo': {msg}")

    check_dtype(params, "grpo")
    g = params.num_generations
    if g < 2:
        raise bad(f"num_generations (group size) must be >= 2, got {g}")
    per_step = params.batch_size * params.grad_accum
    if per_step % g:
        raise bad(
            f"num_generations={g} (group size) must divide batch_size * grad_accum = "
            f"{params.batch_size} * {params.grad_accum} = {per_step}, so every group sits in one batch"
        )
    if params.reward not in available_rewards():
        raise bad(f"unknown reward {params.reward!r}; known rewards: {available_rewards()}")
    if not 0.0 <= params.safety_threshold <= 1.0:
        raise bad(f"safety_threshold must be in [0, 1], got {params.safety_threshold}")
    if params.safety_score not in SAFETY_SCORES:
        raise bad(f"safety_score must be one of {list(SAFETY_SCORES)}, got {params.safety_score!r}")
    if params.correction_mode not in CORRECTION_MODES:
        raise bad(f"correction_mode must be one of {list(CORRECTION_MODES)}, got {params.correction_mode!r}")
    if params.correction_mode == "add" and not 1 <= params.correction_slots < g:
        raise bad(
            f"correction_slots must be in [1, num_generations - 1 = {g - 1}], got {params.correction_slots}"
        )
    templates = {"reflection_template": {"question"}, "correction_template": {"question", "critique"}}
    for name, keys in templates.items():
        template = getattr(params, name)
        try:
            template.format(**dict.fromkeys(keys, ""))
        except (KeyError, IndexError, ValueError) as exc:
            raise bad(f"{name} may only use the fields {sorted(keys)}: {exc!r}") from exc
    if params.correction_template.count("{critique}") != 1:
        raise bad("correction_template must contain {critique} exactly once")
    if params.max_steps is None and params.epochs <= 0:
        raise bad("epochs must be > 0 when max_steps is null")
    for name in ("save_steps", "max_completion_length", "reflection_max_tokens", "batch_size"):
        if getattr(params, name) < 1:
            raise bad(f"{name} must be >= 1, got {getattr(params, name)}")
    if params.vllm_mode not in ("colocate", "server"):
        raise bad(f"vllm_mode must be 'colocate' or 'server', got {params.vllm_mode!r}")
    if params.beta < 0.0:
        raise bad(f"beta must be >= 0, got {params.beta}")
    if params.use_vllm:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise bad("use_vllm is true but vLLM is not installed (pip install vllm, on a GPU node)")


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
