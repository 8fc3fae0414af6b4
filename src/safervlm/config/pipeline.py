"""The data sections and :class:`PipelineConfig`, the whole config file.

``PipelineConfig`` is what ``workflow/schemas/config.schema.yaml`` is generated from
(:mod:`safervlm.config.schema`); Snakemake validates the config against that schema and
fills in every default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from safervlm.config.base import Section
from safervlm.config.curate import CurateConfig, SourceSpec
from safervlm.config.evaluate import AuditConfig, EvalConfig, GenerateConfig, JudgeConfig, RewardJudgeConfig
from safervlm.config.train import GRPOParams, SFTSection


class MlflowConfig(Section):
    """Experiment tracking."""

    enabled: bool = Field(True, description="Log every stage to MLflow.")
    tracking_uri: str = Field(
        "sqlite:///results/mlflow/mlflow.db",
        description="MLflow tracking URI (relative sqlite paths resolve against the workflow dir).",
    )
    artifact_location: str = Field(
        "results/mlflow/artifacts", description="Artifact root for a newly created experiment."
    )
    experiment: str = Field("safervlm", description="MLflow experiment name.")
    records: str | None = Field(
        "results/mlflow/records",
        description=(
            "Folder where light stages leave their run records, logged to MLflow in one batch by the "
            "mlflow_runs job (and at the end of every snakemake run); null: every stage logs its run "
            "itself (seconds of MLflow start-up per job). Training always logs live."
        ),
    )


class FixturesConfig(Section):
    """Synthetic fixtures in each benchmark's official format."""

    build: bool = Field(True, description="Build fixtures for any root left null.")
    n_per_benchmark: int = Field(24, ge=4, description="Records per evaluation benchmark.")
    n_train_per_source: int = Field(120, ge=4, description="Records per training source.")


# The registry's names (safervlm.models.families.FAMILIES; a test keeps the two equal).
FamilyName = Literal[
    "qwen2_5_vl",
    "qwen3_vl",
    "gemma3",
    "llava_onevision",
    "smolvlm",
    "internvl",
    "glm4v",
    "idefics3",
    "gemma4",
]


class TinyConfig(Section):
    """Family and sizes of the offline tiny model (used when base_model.path is null): ``--dims``."""

    section = "base_model.tiny"

    family: FamilyName = Field(
        "qwen2_5_vl",
        description="Model family of the tiny model (its architecture, processor and chat format); "
        "the demo's numbers are Qwen2.5-VL's.",
    )
    vocab_size: int = Field(2048, ge=300, description="BPE vocabulary size.")
    hidden_size: int = Field(96, ge=16, description="Decoder width.")
    intermediate_size: int = Field(256, ge=16, description="Decoder MLP width.")
    num_layers: int = Field(2, ge=1, description="Decoder layers.")
    num_heads: int = Field(4, ge=1, description="Attention heads.")
    num_kv_heads: int = Field(2, ge=1, description="Key/value heads.")
    vision_depth: int = Field(2, ge=1, description="Vision blocks.")
    vision_hidden: int = Field(64, ge=16, description="Vision width.")
    image_size: int = Field(112, ge=56, description="Image side in pixels.")


class BaseModelConfig(Section):
    """The policy that SFT starts from (also evaluated as "base")."""

    name: str = Field("tiny-qwen2.5-vl", description="Display name.")
    path: str | None = Field(
        None,
        description="Local folder of a model of a supported family (config.json's model_type: "
        "qwen2_5_vl, qwen2_vl, qwen3_vl, gemma3, llava_onevision, smolvlm, internvl, glm4v, "
        "idefics3, gemma4); null builds the tiny model offline.",
    )
    tiny: TinyConfig = Field(
        default_factory=TinyConfig, description="Sizes of the offline tiny model (used when path is null)."
    )


class DataConfig(Section):
    """Reading untrusted benchmark and training-source files (prepare, pool)."""

    max_image_pixels: int = Field(
        178956970,
        ge=1,
        description="Refuse images over this many pixels (width x height), checked on the header before "
        "decoding (exit 2 naming file and record). Default = twice PIL's default limit, where PIL itself "
        "refuses an image; real benchmark images are a few megapixels.",
    )


class BenchmarkRoot(Section):
    """An evaluation benchmark's local copy (an entry of the ``benchmarks`` section)."""

    root: str | None = Field(
        None, description="Local copy in the official format; null uses the synthetic fixture."
    )
    limit: int | None = Field(None, ge=1, description="Read at most this many samples (null = all).")


class PipelineConfig(Section):
    """SaFeR-VLM pipeline configuration (experiment metadata only; resources live in profiles)."""

    seed: int = Field(0, description="Global seed for fixtures, model init, training and sampling.")
    seeds: list[int] = Field(
        default_factory=list,
        description="The seed dimension: curation sampling (qi_score, qi_select), SFT, both GRPO runs, "
        "generation, judging and scoring run once per seed under <results>/seeds/<seed>/, and the report "
        "gives per-seed values, their mean and 95% interval, and paired tests over seed-level means. "
        "Empty = [seed] (today's paths). Fixtures, the pool and the base model use seed.",
    )
    results: str = Field("results", description="Folder for every output (git-ignored, DVC-versioned).")
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig, description=MlflowConfig.__doc__)
    fixtures: FixturesConfig = Field(default_factory=FixturesConfig, description=FixturesConfig.__doc__)
    base_model: BaseModelConfig = Field(default_factory=BaseModelConfig, description=BaseModelConfig.__doc__)
    data: DataConfig = Field(default_factory=DataConfig, description=DataConfig.__doc__)
    benchmarks: dict[str, BenchmarkRoot] = Field(
        default_factory=dict,
        description="Evaluation benchmarks by registry name, each with its local root; empty = every "
        "registered benchmark (benchmarks/catalog.py, in its order) on the synthetic fixtures.",
    )
    sources: dict[str, SourceSpec] = Field(
        default_factory=dict,
        description="Training sources for the QI-Safe pool, by name, each with its local root, cap and "
        "category map.",
    )
    curate: CurateConfig = Field(default_factory=CurateConfig, description=CurateConfig.__doc__)
    sft: SFTSection = Field(default_factory=SFTSection, description=SFTSection.__doc__)
    grpo: GRPOParams = Field(default_factory=GRPOParams, description="GRPO (TRL GRPOTrainer) with the "
                             "safety-aware rollout, rewarded by the judge-based reward.")  # fmt: skip
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description=JudgeConfig.__doc__)
    reward_judge: RewardJudgeConfig = Field(
        default_factory=RewardJudgeConfig, description=RewardJudgeConfig.__doc__
    )
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description=GenerateConfig.__doc__)
    eval: EvalConfig = Field(default_factory=EvalConfig, description=EvalConfig.__doc__)
    audit: AuditConfig = Field(default_factory=AuditConfig, description=AuditConfig.__doc__)
