"""The evaluation sections: ``judge``, ``reward_judge``, ``generate``, ``eval`` and ``audit``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, model_validator

from safervlm.config.base import Real, Section
from safervlm.schema import HARM_SUCCESS

Attack = Literal["none", "vanilla", "typo", "sd_typo", "figstep"]
JudgeName = Literal["reference", "openai", "hf"]
# A (reasoning model, base model) pair.
Pair = Annotated[list[str], Field(min_length=2, max_length=2)]
# Judge params never hold an API key: keys come from the environment variable api_key_env.
_NO_SECRETS: dict[str, JsonValue] = {
    "not": {"anyOf": [{"required": ["api_key"]}, {"required": ["key"]}, {"required": ["token"]}]}
}


class JudgeConfig(Section):
    """The judge used for evaluation."""

    name: JudgeName = Field("reference", description="Judge registry name.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Judge parameters (openai - model, base_url, api_key_env, concurrency, timeout, "
        "max_attempts, retry_budget, rubric, rubrics, verdict_channel (structured, the default: "
        "response_format with the rubric's JSON schema; envelope: for endpoints without structured "
        "output); hf - model_path, batch_size, rubric, rubrics). Never an API key: keys come from the "
        "environment variable named by api_key_env.",
        json_schema_extra=_NO_SECRETS,
    )
    cache: str | None = Field(
        None, description="SQLite reply cache of model judges (null = results/cache/judge.sqlite)."
    )


class JudgeSpec(Section):
    """One judge of the judge dimension (an entry of ``eval.judges``)."""

    section = "eval.judges"

    name: JudgeName = Field("reference", description="Judge registry name.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Judge parameters (as for judge.params; never an API key).",
        json_schema_extra=_NO_SECRETS,
    )


class RewardJudgeConfig(Section):
    """The scorer inside the structured reward (QI scoring and GRPO), e.g. a local GRM."""

    name: JudgeName = Field("reference", description="Judge registry name.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Judge parameters (as for judge.params; never an API key).",
        json_schema_extra=_NO_SECRETS,
    )


# Default token budgets of a response: a reasoning model needs room for its chain of thought.
DEFAULT_MAX_NEW_TOKENS = 64
REASONING_MAX_NEW_TOKENS = 4096


class GenerateParams(Section):
    """The ``generate`` stage's params: the section's keys after a model's overrides."""

    section = "generate"

    backend: Literal["hf", "openai", "vllm"] = Field(
        "hf",
        description="hf (transformers, batched); openai (an OpenAI-compatible server such as vllm serve); "
        "vllm (offline engine).",
    )
    batch_size: int = Field(32, ge=1, description="Prompts per batch.")
    max_new_tokens: int | None = Field(
        None,
        ge=1,
        description="Tokens per response (null = 64, or 4096 for a model declared reasoning: a reasoning "
        "model's chain of thought needs the room; a cut-off response is flagged truncated).",
    )
    reasoning: bool = Field(
        False,
        description="The model reasons before it answers (a reasoning model): its default max_new_tokens "
        "is 4096 instead of 64.",
    )
    do_sample: bool = Field(False, description="Sample instead of greedy decoding.")
    temperature: Real = Field(0.0, ge=0, description="Temperature when sampling.")
    system_prompt: str | None = Field(None, description="System prompt (null = model default).")
    prompt_template: str = Field(
        "{question}",
        pattern=r"\{question\}",
        description="The user turn; {question} is replaced by the benchmark question.",
    )
    base_url: str | None = Field(None, description="openai backend - server URL (http://host:8000/v1).")
    served_model: str | None = Field(
        None, description="openai backend - served model name (null = model path)."
    )
    api_key_env: str | None = Field(None, description="openai backend - env var with the key (null = none).")
    concurrency: int = Field(8, ge=1, description="openai backend - requests in flight.")
    timeout: Real = Field(
        600.0,
        gt=0,
        description="openai backend - seconds per request attempt (a long reasoning reply takes minutes).",
    )
    max_attempts: int = Field(
        5,
        ge=1,
        description="openai backend - attempts per request (429, 5xx, timeouts and connection "
        "errors are retried with backoff; other errors fail the job at once).",
    )
    reasoning_effort: str | None = Field(
        None,
        description="openai backend - sent as reasoning_effort (e.g. low, medium, high) to servers that "
        "take it (OpenAI o-series, vLLM with gpt-oss); null = not sent.",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="openai backend - further request fields passed through to the server, e.g. "
        "{chat_template_kwargs: {enable_thinking: true}} (Qwen3 on vLLM) or {top_k: 20}. They never "
        "replace the fields the generator sets (model, messages, max_tokens, temperature, seed). "
        "Never an API key.",
        json_schema_extra=_NO_SECRETS,
    )
    cache_implementation: Literal["dynamic", "static"] = Field(
        "dynamic",
        description="hf backend - KV cache: dynamic (grows per token) or static (preallocated to prompt + "
        "max_new_tokens; the shape a compiled forward needs). Greedy outputs are the same either way.",
    )
    compile: bool = Field(
        False,
        description="hf backend - torch.compile the decoding forward (needs cache_implementation static). "
        "Pays two compilations per run (the second makes the prompt length dynamic): for GPUs and long "
        "runs; on CPU a decoding step was 0.86x (bench/RESULTS.md).",
    )

    @property
    def effective_max_new_tokens(self) -> int:
        """``max_new_tokens``, or its default: 4096 for a reasoning model, else 64."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        return REASONING_MAX_NEW_TOKENS if self.reasoning else DEFAULT_MAX_NEW_TOKENS

    @model_validator(mode="after")
    def _compile_needs_static(self) -> GenerateParams:
        if self.compile and self.cache_implementation != "static":
            raise ValueError(
                "compile needs cache_implementation: static (a compiled forward needs fixed shapes)"
            )
        return self


def _overrides_schema(schema: dict[str, Any]) -> None:
    """Per-model overrides: any of GenerateParams' keys, nothing filled in."""
    item = GenerateParams.model_json_schema()
    for prop in item["properties"].values():
        for key in ("default", "title", "description"):
            prop.pop(key, None)
    schema["additionalProperties"] = {
        "type": "object",
        "additionalProperties": False,
        "properties": item["properties"],
    }


class GenerateConfig(GenerateParams):
    """Batched generation for evaluation: the ``generate`` section."""

    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-model overrides of the keys above (system prompt, format, backend ...), "
        "by model name.",
        json_schema_extra=_overrides_schema,
    )


class SafeMLRMConfig(Section):
    """SafeMLRM analysis settings."""

    threshold: Real = Field(
        HARM_SUCCESS, ge=1, le=5, description="Attack success: harm score >= threshold (1-5 scale)."
    )
    missing: Literal["count", "exclude"] = Field(
        "count",
        description="Unscored/empty parts - count (in denominators, never a success) or exclude.",
    )


class EvalConfig(Section):
    """What is evaluated and reported."""

    models: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]] = Field(
        default_factory=lambda: ["base", "sft", "grpo_plain", "grpo"],
        min_length=1,
        description="Models to evaluate, in report order (base, sft, grpo_plain, grpo, "
        "or a name in model_paths).",
    )
    model_paths: dict[str, str] = Field(
        default_factory=dict,
        description="Local folders of further models by name (external baselines, other checkpoints).",
    )
    benchmarks: list[str] | None = Field(
        None,
        description="Benchmarks to evaluate (each must appear under benchmarks); null = every benchmark "
        "of the benchmarks section, in its order.",
    )
    n_bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for CIs.")
    attacks: list[Attack] = Field(
        default_factory=lambda: list[Attack](["none"]),
        min_length=1,
        description="Jailbreak transforms applied to every benchmark (none = as given).",
    )
    benchmark_attacks: dict[str, Annotated[list[Attack], Field(min_length=1)]] = Field(
        default_factory=dict, description="Per-benchmark attack lists that replace attacks."
    )
    attack_image_size: int = Field(336, ge=28, description="Side of rendered attack images (px).")
    pairs: list[Pair] = Field(
        default_factory=list,
        description="(reasoning model, its base model) pairs: the Reasoning Tax, blind spots and paired "
        "tests (safety and attack success). Two models that are not a reasoning model and its base go "
        "under compare.",
    )
    compare: list[Pair] = Field(
        default_factory=list,
        description="(a, b) pairs of any two evaluated models (e.g. a served model and a checkpoint) "
        "compared item by item: paired tests of safety only (b - a), no Reasoning Tax or blind spots. "
        "Every pair above (base -> reasoning), sft -> grpo and grpo_plain -> grpo are compared too.",
    )
    safemlrm: SafeMLRMConfig = Field(
        default_factory=SafeMLRMConfig, description="SafeMLRM analysis settings."
    )
    judges: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")], JudgeSpec] = Field(
        default_factory=dict,
        description="The judge dimension, by label: every response is judged by each (judgments.<label>."
        "parquet) and the report gives every headline metric per judge, their agreement and how far "
        "each number moves across judges. Empty = the judge section alone (today's paths). The first "
        "judge's verdicts feed the main tables.",
    )


class AuditConfig(Section):
    """`safervlm audit` / the `audit` target - every reported number recomputed from the judgments."""

    expected: list[str] = Field(
        default_factory=lambda: ["config/audit/published.yaml"],
        description="Expectation files (relative to the workflow folder) whose cells are recomputed.",
    )
    pairs: list[Pair] = Field(
        default_factory=list,
        description="(reasoning model, base model) eval.models names that published cells with "
        "'pairs - config' stand for.",
    )
    strict: bool = Field(
        False, description="Fail the audit job when a cell does not match (or is not reproduced)."
    )
    artifacts: dict[str, str] = Field(
        default_factory=lambda: {"opensafemlrm": "imports/opensafemlrm"},
        description="Imported third-party releases (name -> folder relative to the workflow folder, "
        "pinned by 'safervlm import-artifact' with its .dvc file) that cells with 'artifact - name' "
        "are recomputed from; a folder not imported leaves its cells absent.",
    )
