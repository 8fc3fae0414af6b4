"""The ``sources`` and ``curate`` sections.

Each curation stage gets some of the ``curate`` keys as its ``--params``; each stage's
params model is a part of :class:`CurateConfig`, which is all of them together.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from safervlm.config.base import Real, Section, optional_key


class RuleWhen(Section):
    """The conditions of one ``category_rules`` entry (all given ones must hold)."""

    model_config = {"json_schema_extra": {"minProperties": 1}}

    subset: str | None = Field(
        None,
        description="The row's subset (VLGuard safe_safes/safe_unsafes/unsafes, BeaverTails-V config, "
        "SPA-VL split).",
        json_schema_extra=optional_key,
    )
    label: str | None = Field(
        None,
        description="The source label (VLGuard harmful_category, SPA-VL class1, BeaverTails-V category).",
        json_schema_extra=optional_key,
    )
    subcategory: str | None = Field(
        None,
        description="The finer label (VLGuard harmful_subcategory, SPA-VL class2; BeaverTails-V has none).",
        json_schema_extra=optional_key,
    )


class CategoryRule(Section):
    """One ``category_rules`` entry: rows matching ``when`` get ``category``."""

    when: RuleWhen = Field(
        description='All given conditions must hold (exact strings; "" matches an empty value).'
    )
    category: str = Field(description='A curate.taxonomy category or "other".')

    def matches(self, subset: str, label: str, subcategory: str) -> bool:
        """Whether a row with these values meets every condition of ``when``."""
        row = {"subset": subset, "label": label, "subcategory": subcategory}
        return all(row[k] == v for k, v in self.when.model_dump().items() if v is not None)


class SourceSpec(Section):
    """One training source of the QI-Safe pool (an entry of the ``sources`` section)."""

    root: str | None = Field(
        None, description="Local copy in the official format; null uses the synthetic fixture."
    )
    cap: int | None = Field(
        None, ge=1, description="Keep a seeded uniform sample of at most this many rows (null = all)."
    )
    configs: list[str] | None = Field(
        None, description="Dataset configs to read (BeaverTails-V harm categories; null = all)."
    )
    category_map: dict[str, str] = Field(
        default_factory=dict,
        description="Source label -> curate.taxonomy category "
        '(unlisted labels outside the taxonomy go to "other").',
    )
    category_rules: list[CategoryRule] = Field(
        default_factory=list,
        description="Ordered rules applied before category_map, first match wins; rows with no label and a "
        'benign request stay "benign" whatever the rules say.',
    )


class PoolParams(Section):
    """The ``pool`` stage's ``curate`` keys."""

    section = "curate"

    taxonomy: list[str] = Field(
        default_factory=lambda: ["benign"],
        min_length=1,
        description='The one category taxonomy every source label maps to ("other" is implied).',
    )


class DecontaminateParams(Section):
    """The ``decontaminate`` stage's ``curate`` keys."""

    section = "curate"

    shingle_size: int = Field(5, ge=1, description="Character shingle length for near-duplicate text.")
    near_text_threshold: Real = Field(
        0.75,
        gt=0,
        le=1,
        description="Remove a pool question whose shingle Jaccard with an eval question is at least this.",
    )
    minhash_perm: int = Field(128, ge=16, description="MinHash permutations (LSH candidates).")
    image_hash: Literal["phash", "dhash", "ahash", "whash"] = Field(
        "phash", description="Perceptual image hash (imagehash)."
    )
    image_hash_size: int = Field(16, ge=2, description="Hash side; the hash has size^2 bits.")
    near_image_distance: int = Field(
        12, ge=0, description="Remove a pool image within this Hamming distance of an eval image's hash."
    )


class QIScoreParams(Section):
    """The ``qi_score`` stage's ``curate`` keys."""

    section = "curate"

    k_samples: int = Field(4, ge=2, description="Sampled answers per prompt (num_return_sequences).")
    temperature: Real = Field(1.0, gt=0, description="Sampling temperature.")
    max_new_tokens: int = Field(48, ge=1, description="Tokens per sampled answer.")
    batch_size: int = Field(32, ge=1, description="Prompts per generation batch.")
    score: Literal[
        "reward",
        "safety",
        "helpfulness",
        "grounding",
        "format",
        "hallucination",
        "contradiction",
        "reasoning_safety",
        "answer_safety",
    ] = Field(
        "reward",
        description='Per-answer score, "reward" (grpo.reward over the judgment) or a judge score column.',
    )


class QISelectParams(Section):
    """The ``qi_select`` stage's ``curate`` keys: the quality-instability box and the draw."""

    section = "curate"

    quality_range: list[Real] = Field(
        default_factory=lambda: [0.0, 1.0],
        min_length=2,
        max_length=2,
        description="The box's quality bounds (inclusive) on a prompt's mean score.",
    )
    min_instability: Real = Field(0.0, ge=0, description="The box's lower bound on a prompt's score std.")
    target_size: int | None = Field(None, ge=1, description="QI-Safe size (null = the whole box).")
    allocation: Literal["proportional", "equal"] = Field(
        "proportional",
        description="How the target is shared among categories (proportional to the box, or equal with "
        "water-filling).",
    )

    @model_validator(mode="after")
    def _ordered_range(self) -> QISelectParams:
        lo, hi = self.quality_range
        if lo > hi:
            raise ValueError(f"quality_range low {lo} > high {hi}")
        return self


class CurateConfig(PoolParams, DecontaminateParams, QIScoreParams, QISelectParams):
    """QI-Safe curation (pool taxonomy, decontamination, QI scoring and selection)."""
