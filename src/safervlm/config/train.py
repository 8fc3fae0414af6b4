"""The ``sft`` and ``grpo`` sections: keys, defaults, ranges and help, declared once.

A key that maps 1:1 onto a field of TRL's ``SFTConfig`` / ``GRPOConfig`` carries a
:class:`TrlArg` marker naming that field; :func:`safervlm.train.common.trl_args` builds the
TRL config's arguments from the markers, so the mapping is declared here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from safervlm.config.base import Real, Section

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
SAFETY_SCORES = ("safety", "reasoning_safety", "answer_safety")
DTYPES = ("float32", "bfloat16", "float16")
CORRECTION_MODES = ("replace", "add")


@dataclass(frozen=True)
class TrlArg:
    """Marks a key that is passed unchanged to TRL's config as the field ``name``."""

    name: str


def _template_fields(template: str, keys: set[str], name: str) -> str:
    """``template`` if it formats with only ``keys``; else ValueError naming ``name``."""
    try:
        template.format(**dict.fromkeys(keys, ""))
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"{name} may only use the fields {sorted(keys)}: {exc!r}") from exc
    return template


LearningRate = Annotated[Real, TrlArg("learning_rate"), Field(gt=0, description="Peak learning rate.")]
Epochs = Annotated[Real, Field(gt=0, description="Training epochs.")]


class JobResources(Section):
    """What a cluster job of a training stage requests: the ``job`` key of ``sft`` and ``grpo``.

    The slurm profile reads it through the rule's resources (rules/common.smk, ``train_resources``);
    one process per GPU, so ``processes`` and ``nodes`` give the GPUs per node.
    """

    section = "job"

    device: Literal["gpu", "cpu"] = Field(
        "gpu", description="gpu: one GPU per process; cpu: the processes share a CPU node (gloo)."
    )
    cpus_per_process: int = Field(8, ge=1, description="CPU cores per process (data loading, judge).")
    mem_mb: int = Field(64000, ge=100, description="Memory per node in MB (x the attempt on retries).")
    runtime: int = Field(720, ge=1, description="Minutes (x the attempt on retries).")


class TrainParams(Section):
    """Keys SFT and GRPO share, defined once."""

    learning_rate: LearningRate = 1e-4
    batch_size: Annotated[int, TrlArg("per_device_train_batch_size")] = Field(
        16, ge=1, description="Per-device batch size (GRPO: completions per device batch)."
    )
    grad_accum: Annotated[int, TrlArg("gradient_accumulation_steps")] = Field(
        1, ge=1, description="Gradient accumulation steps."
    )
    lora: bool = Field(False, description="Train a LoRA adapter (peft) and merge it.")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha.")
    lora_targets: list[str] | None = Field(
        None,
        min_length=1,
        description="Module names LoRA adapts (checked against the model before training); null = the "
        "model family's (its decoder's attention and MLP projections: q/k/v/o_proj, gate/up/down_proj).",
    )
    strategy: Literal["ddp", "fsdp", "deepspeed"] = Field(
        "ddp",
        description="How several processes share the policy: ddp (replicas), fsdp (FSDP2: parameters "
        "sharded over the processes, full state dict on save; on CPU too, over gloo), deepspeed (ZeRO-2 "
        "or ZeRO-3 from the `deepspeed` file).",
    )
    deepspeed: Annotated[str | None, TrlArg("deepspeed")] = Field(
        None,
        description="DeepSpeed JSON config (config/deepspeed/zero2.json, zero3.json); strategy: deepspeed.",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32",
        description="Dtype the policy is loaded in (bfloat16 on GPUs; mixed-precision autocast is on "
        "wherever CUDA has bf16).",
    )
    gradient_checkpointing: Annotated[bool, TrlArg("gradient_checkpointing")] = Field(
        False, description="Recompute activations in the backward pass (less memory, ~30% more compute)."
    )
    # The launcher's key (workflow/scripts/train-launch), not the stage's: left out of the params a
    # stage logs and of the run key, so a 1-process run logs and resumes exactly as before.
    processes: int = Field(
        1,
        ge=1,
        exclude=True,
        description="Training processes in all. No GPU: N > 1 starts N processes on the machine "
        "(torchrun, gloo). GPUs: one process per GPU (a Slurm job requests N GPUs over `nodes` nodes).",
    )
    nodes: int = Field(
        1,
        ge=1,
        exclude=True,
        description="Slurm nodes the processes span (GPUs only): processes / nodes GPUs per node.",
    )
    job: JobResources = Field(
        default_factory=lambda: JobResources(),
        exclude=True,
        description="What a Slurm job of this stage requests (the slurm profile; local runs ignore it).",
    )

    @model_validator(mode="after")
    def _strategy_fits(self) -> TrainParams:
        """A strategy has what it needs; the processes divide over the nodes (GPU jobs only)."""
        if (self.strategy == "deepspeed") != (self.deepspeed is not None):
            raise ValueError(
                "strategy: deepspeed and a `deepspeed` config file go together "
                f"(strategy={self.strategy!r}, deepspeed={self.deepspeed!r})"
            )
        if self.nodes > 1:
            if self.job.device != "gpu":
                raise ValueError("nodes > 1 needs job.device: gpu (CPU processes run on one machine)")
            if self.processes % self.nodes:
                raise ValueError(f"processes={self.processes} must be a multiple of nodes={self.nodes}")
        return self


class SFTSection(TrainParams):
    """SFT warm-up (TRL SFTTrainer): the ``sft`` section of the config file."""

    section = "sft"

    epochs: Annotated[Epochs, TrlArg("num_train_epochs")] = 8
    learning_rate: LearningRate = 3e-3
    max_length: Annotated[int, TrlArg("max_length")] = Field(
        512, ge=16, description="Max tokens per example."
    )
    warmup_steps: Annotated[int, TrlArg("warmup_steps")] = Field(5, ge=0, description="Linear warm-up steps.")
    correction_demos: Real = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of should-refuse QI-Safe records also trained as correction demonstrations "
        "(grpo.correction_template with demo_critique -> the safe response), so the policy knows what "
        "the safety-aware rollout's correction prompt asks for. 0 = off.",
    )
    demo_critique: str = Field(
        DEMO_CRITIQUE, description="The critique filled into the correction demonstrations."
    )


class SFTParams(SFTSection):
    """The ``sft`` stage's params: the section plus the correction template.

    The template is grpo's: the workflow passes ``grpo.correction_template``.
    """

    correction_template: str = Field(CORRECTION_TEMPLATE, description="grpo.correction_template.")

    @field_validator("correction_template")
    @classmethod
    def _correction_fields(cls, value: str) -> str:
        return _template_fields(value, {"question", "critique"}, "correction_template")


class GRPOParams(TrainParams):
    """GRPO (TRL GRPOTrainer) with the safety-aware rollout: the ``grpo`` section.

    See :mod:`safervlm.train.rollout` for the rollout.
    """

    section = "grpo"

    job: JobResources = Field(
        default_factory=lambda: JobResources(runtime=1440),
        exclude=True,
        description="What a Slurm job of this stage requests (the slurm profile; local runs ignore it).",
    )
    max_steps: int | None = Field(30, ge=1, description="Optimizer steps (null = run epochs).")
    epochs: Epochs = Field(1.0, description="Epochs over the prompts when max_steps is null.")
    num_generations: Annotated[int, TrlArg("num_generations")] = Field(
        4, ge=2, description="Group size G (must divide batch_size * grad_accum)."
    )
    max_prompt_length: int | None = Field(
        None, ge=1, description="Drop prompts whose question has more tokens (null = keep all)."
    )
    max_completion_length: Annotated[int, TrlArg("max_completion_length")] = Field(
        48, ge=1, description="Tokens per rollout."
    )
    temperature: Annotated[Real, TrlArg("temperature")] = Field(1.0, gt=0, description="Rollout temperature.")
    beta: Annotated[Real, TrlArg("beta")] = Field(0.0, ge=0, description="KL coefficient.")
    reward: str = Field("structured", description="Reward registry name.")
    reward_params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters of the reward factory."
    )
    safety_aware: bool = Field(
        True, description="Reflect on and correct unsafe rollouts (false = plain GRPO)."
    )
    safety_score: Literal["safety", "reasoning_safety", "answer_safety"] = Field(
        "safety", description="Judge score that decides whether a rollout is unsafe."
    )
    safety_threshold: Real = Field(
        0.5, ge=0, le=1, description="A rollout whose safety score is below this is corrected."
    )
    correction_mode: Literal["replace", "add"] = Field(
        "replace",
        description="replace = the correction takes the unsafe sample's place; add = both stay in the "
        "group (correction_slots rows per group).",
    )
    correction_slots: int = Field(
        1, ge=1, description="add mode - rows per group reserved for corrections (< num_generations)."
    )
    reflection_template: str = Field(
        REFLECTION_TEMPLATE,
        description="User turn after the unsafe answer that asks the policy for a critique "
        "({question} available).",
    )
    correction_template: str = Field(
        CORRECTION_TEMPLATE,
        description="Prompt text of the correction, from {question} and {critique} (the image is kept).",
    )
    reflection_max_tokens: int = Field(32, ge=1, description="Max tokens of a critique (HF backend).")
    critique_and_correction: Literal["two_passes", "one_continuation"] = Field(
        "two_passes",
        description="two_passes = the critique, then the correction from correction_template's prompt "
        "(question + critique; the unsafe answer out of sight): two sequential generate calls. "
        "one_continuation = one generate call per batch of unsafe rows: the critique, then (forced) the "
        "end of that turn, continuation_template's user turn if any and the next assistant header, then "
        "the correction, each part under its own cap (HF backend only). It saves a second prompt "
        "encoding and prefill and the wait for the slowest critique before any correction starts; the "
        "correction is written in sight of the unsafe answer and the critique (not from "
        "correction_template) and is still trained under the original prompt. Greedy critiques are the "
        "same in both modes.",
    )
    continuation_template: str = Field(
        "",
        description="one_continuation - a user turn between the critique and the correction ({question} "
        "available); empty (the default) = none: the correction is the next assistant turn. Its tokens are "
        "forced one decoding step each, so a long turn costs what generating it would.",
    )
    cache_implementation: Annotated[Literal["dynamic", "static"], TrlArg("cache_implementation")] = Field(
        "dynamic",
        description="KV cache of HF rollouts (sampling, critique, correction): dynamic or static "
        "(preallocated). TRL disables generate's compilation, so static alone only changes the cache.",
    )
    compile: bool = Field(
        False,
        description="HF rollouts - torch.compile the decoding forward, which TRL turns off (needs "
        "cache_implementation static; not with vLLM). Pays two compilations per training process "
        "(the second makes the prompt length dynamic); greedy rollouts are unchanged (tested). For "
        "GPUs, where decoding is latency-bound; on CPU a decoding step was 0.86x (bench/RESULTS.md).",
    )
    steps_per_generation: Annotated[int | None, TrlArg("steps_per_generation")] = Field(
        None,
        ge=1,
        description="One generation batch (sampling, judging, critiques and corrections) for this many "
        "micro-batches (null = grad_accum: one generation batch per optimizer step, TRL's default). "
        "Larger: each sequential generate pass serves more rows at once (cheaper per row where decoding "
        "is latency-bound), but samples also train later optimizer steps, off-policy (TRL's clipped "
        "importance ratio against the log-probs at generation time).",
    )
    save_steps: Annotated[int, TrlArg("save_steps")] = Field(
        10, ge=1, description="Checkpoint every N steps (run state under checkpoints/<model>.partial/)."
    )
    use_vllm: Annotated[bool, TrlArg("use_vllm")] = Field(
        False, description="Roll out with vLLM (needs vllm installed; GPU)."
    )
    vllm_mode: Annotated[Literal["colocate", "server"], TrlArg("vllm_mode")] = Field(
        "colocate", description="vLLM in the training process or a trl vllm-serve server."
    )
    vllm_server_base_url: Annotated[str | None, TrlArg("vllm_server_base_url")] = Field(
        None, description="URL of the vLLM server (server mode)."
    )

    @field_validator("reflection_template")
    @classmethod
    def _reflection_fields(cls, value: str) -> str:
        return _template_fields(value, {"question"}, "reflection_template")

    @field_validator("continuation_template")
    @classmethod
    def _continuation_fields(cls, value: str) -> str:
        return _template_fields(value, {"question"}, "continuation_template")

    @field_validator("correction_template")
    @classmethod
    def _correction_fields(cls, value: str) -> str:
        _template_fields(value, {"question", "critique"}, "correction_template")
        if value.count("{critique}") != 1:
            raise ValueError("correction_template must contain {critique} exactly once")
        return value

    @model_validator(mode="after")
    def _groups_fit(self) -> GRPOParams:
        """Every group sits in one batch; add mode leaves room for a sample in each group."""
        g, per_step = self.num_generations, self.batch_size * self.grad_accum
        if per_step % g:
            raise ValueError(
                f"num_generations={g} (group size) must divide batch_size * grad_accum = "
                f"{self.batch_size} * {self.grad_accum} = {per_step}, so every group sits in one batch"
            )
        if self.steps_per_generation is not None and (self.batch_size * self.steps_per_generation) % g:
            raise ValueError(
                f"num_generations={g} must divide batch_size * steps_per_generation = "
                f"{self.batch_size} * {self.steps_per_generation}, so each group sits in one generation batch"
            )
        if self.compile and (self.cache_implementation != "static" or self.use_vllm):
            raise ValueError(
                "compile needs the HF rollout with cache_implementation: static (a compiled forward "
                "needs a preallocated cache; vLLM compiles its own)"
            )
        if self.critique_and_correction == "one_continuation" and self.use_vllm:
            raise ValueError(
                "critique_and_correction one_continuation needs the HF rollout (use_vllm: false)"
            )
        if self.correction_mode == "add" and not 1 <= self.correction_slots < g:
            raise ValueError(
                f"correction_slots must be in [1, num_generations - 1 = {g - 1}], got {self.correction_slots}"
            )
        return self
