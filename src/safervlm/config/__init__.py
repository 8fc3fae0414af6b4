"""Config, declared once: one pydantic model per section (keys, types, defaults, ranges, help).

Snakemake validates the config file against ``workflow/schemas/config.schema.yaml``, which
is generated from these models (:mod:`safervlm.config.schema`); each stage's CLI parses
its ``--params`` JSON into the same models (:func:`from_dict`), so a stage run by hand gets
the same clear error for an unknown key or a value of the wrong type.
"""

from safervlm.config.base import Real, Section, config_hash, format_errors, from_dict, parse_json_arg
from safervlm.config.curate import (
    CategoryRule,
    CurateConfig,
    DecontaminateParams,
    PoolParams,
    QIScoreParams,
    QISelectParams,
    RuleWhen,
    SourceSpec,
)
from safervlm.config.evaluate import (
    AuditConfig,
    EvalConfig,
    GenerateConfig,
    GenerateParams,
    JudgeConfig,
    JudgeSpec,
    RewardJudgeConfig,
    SafeMLRMConfig,
)
from safervlm.config.pipeline import (
    BaseModelConfig,
    BenchmarkRoot,
    DataConfig,
    FixturesConfig,
    MlflowConfig,
    PipelineConfig,
    TinyConfig,
)
from safervlm.config.train import (
    CORRECTION_MODES,
    CORRECTION_TEMPLATE,
    DEMO_CRITIQUE,
    DTYPES,
    REFLECTION_TEMPLATE,
    SAFETY_SCORES,
    GRPOParams,
    JobResources,
    SFTParams,
    SFTSection,
    TrainParams,
    TrlArg,
)

__all__ = [
    "CORRECTION_MODES",
    "CORRECTION_TEMPLATE",
    "DEMO_CRITIQUE",
    "DTYPES",
    "REFLECTION_TEMPLATE",
    "SAFETY_SCORES",
    "AuditConfig",
    "BaseModelConfig",
    "BenchmarkRoot",
    "CategoryRule",
    "CurateConfig",
    "DataConfig",
    "DecontaminateParams",
    "EvalConfig",
    "FixturesConfig",
    "GRPOParams",
    "JobResources",
    "GenerateConfig",
    "GenerateParams",
    "JudgeConfig",
    "JudgeSpec",
    "MlflowConfig",
    "PipelineConfig",
    "PoolParams",
    "QIScoreParams",
    "QISelectParams",
    "Real",
    "RewardJudgeConfig",
    "RuleWhen",
    "SFTParams",
    "SFTSection",
    "SafeMLRMConfig",
    "Section",
    "SourceSpec",
    "TinyConfig",
    "TrainParams",
    "TrlArg",
    "config_hash",
    "format_errors",
    "from_dict",
    "parse_json_arg",
]
