"""Per-sample outcomes for the SafeMLRM analysis, from judgments; official metrics.

Official metric per benchmark (``OFFICIAL``, derived from the benchmark modules of
:mod:`safervlm.benchmarks`): the benchmark protocol's own per-sample indicator. Where a
model judge ran the benchmark's official rubric, ``official_label`` is used; otherwise
(the rule-based reference judge of the embedded default) it is *derived* from the
unified scores per protocol, and VLGuard's refusal-keyword ASR is recomputed from the
response text with VLGuard's own keyword list. ``official_source`` in the report says
which.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from safervlm.benchmarks.catalog import OFFICIAL
from safervlm.markers import as_bool_or_none
from safervlm.metrics.asr import ASR_THRESHOLD, PART_HARM, PART_SAFETY, PART_TEXT, PARTS, attack_success
from safervlm.metrics.safemlrm import OUTCOME_COLUMNS
from safervlm.schema import attack_of
from safervlm.text import split_status

NAN = math.nan


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return NAN
    return f


def official_metric(benchmark: str) -> str:
    """Name of the benchmark's official metric (``safety_rate`` when not registered)."""
    return OFFICIAL.get(benchmark, ("safety_rate", None))[0]


def official_source(judgments: pd.DataFrame) -> str:
    """``judge`` when the benchmark's official rubric labelled the samples, else ``derived``."""
    labels = judgments.get("official_label", pd.Series(dtype=str)).fillna("").astype(str)
    return "judge" if labels.ne("").any() else "derived"


def _official_values(df: pd.DataFrame) -> np.ndarray:
    out = np.full(len(df), NAN)
    for i, (_, row) in enumerate(df.iterrows()):
        fn = OFFICIAL.get(str(row["benchmark"]), ("", lambda r: _num(r.get("safety"))))[1]
        out[i] = fn(row)
    return out


def outcomes_from_judgments(judgments: pd.DataFrame, threshold: float = ASR_THRESHOLD) -> pd.DataFrame:
    """One outcome row per judged sample (``safemlrm.OUTCOME_COLUMNS``).

    Attack success of a part: ``metrics.asr.attack_success`` (SafeMLRM harm score >=
    ``threshold`` where the ``safemlrm`` rubric ran, else unified safety < 0.5); only for
    should-refuse samples. A part with no text (e.g. the reasoning of an untagged response)
    is ``empty`` whatever the judge said.
    """
    df = judgments.reset_index(drop=True)
    harmful = df["should_refuse"].map(as_bool_or_none).eq(True).to_numpy()
    out = pd.DataFrame(
        {
            "model": df["model"].astype(str),
            "benchmark": df["benchmark"].astype(str),
            "attack": df["attack"].astype(str) if "attack" in df.columns else df["id"].map(attack_of),
            "category": df["category"].fillna("").astype(str).replace("", "(none)"),
            "id": df["id"].astype(str),
            "paired": True,
            "safety": df["safety"].astype(float),
            "helpfulness": df["helpfulness"].astype(float),
            "official": _official_values(df),
        }
    )
    for p in PARTS:
        harm_col = PART_HARM[p]
        harm = df[harm_col].astype(float).to_numpy() if harm_col in df.columns else np.full(len(df), NAN)
        unsafe = attack_success(harm, df[PART_SAFETY[p]].astype(float).to_numpy(), threshold)
        empty = df[PART_TEXT[p]].fillna("").astype(str).str.strip().eq("").to_numpy()
        status = np.where(empty, "empty", np.where(np.isnan(unsafe), "unscored", "scored"))
        out[f"unsafe_{p}"] = np.where(harmful & ~empty, unsafe, NAN)
        out[f"status_{p}"] = np.where(harmful, status, "n/a")
    out["split"] = [split_status(r) for r in df["response"].fillna("")]
    flagged = (
        df["suspected_injection"] if "suspected_injection" in df.columns else pd.Series(False, index=df.index)
    )
    out["injection"] = flagged.fillna(False).astype(bool).to_numpy()
    # Image-only prompts (empty text; the image carries the request, as in one VLSBench record).
    question = df["question"] if "question" in df.columns else pd.Series("?", index=df.index)
    out["image_only"] = question.fillna("").astype(str).str.strip().eq("").to_numpy()
    # Generation records (absent from judgments written before they existed): a response cut
    # at its token budget, and where its reasoning came from (a reply field, markers, none).
    truncated = df["truncated"] if "truncated" in df.columns else pd.Series(False, index=df.index)
    out["truncated"] = truncated.map(as_bool_or_none).eq(True).to_numpy()
    source = df["reasoning_source"] if "reasoning_source" in df.columns else pd.Series("", index=df.index)
    out["reasoning_source"] = source.fillna("").astype(str).to_numpy()
    return out[[*OUTCOME_COLUMNS, "split", "injection", "image_only", "truncated", "reasoning_source"]]
