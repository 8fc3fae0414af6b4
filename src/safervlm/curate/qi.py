"""Quality–instability (QI) selection of training samples from K sampled rewards.

For each sample id the K rewards of the current policy give a *quality* (mean reward)
and an *instability* (population standard deviation). GRPO learns most from samples that
are neither solved nor hopeless (quality inside a range) and on which the policy is
unstable (high instability), so :func:`qi_select` keeps the ids inside the box
``quality_range[0] <= quality <= quality_range[1] and instability >= min_instability``.

Fill rule: when fewer than ``min_samples`` ids are in the box, a warning is logged and the
selection is filled up to ``min_samples`` with the highest-instability scored ids outside
the box (same ordering); filled rows have ``qi_filled = True``.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from safervlm.errors import ConfigError

logger = logging.getLogger(__name__)

SCORE_FIELDS = ["quality", "instability", "n_samples"]
_TIE_DECIMALS = 9


def qi_scores(rewards: pd.DataFrame) -> pd.DataFrame:
    """Per-id quality (mean), instability (population std) and n_samples of K rewards.

    Args:
        rewards: One row per ``(id, sample_idx, reward)``; null rewards are ignored.

    Returns:
        Columns ``id, quality, instability, n_samples`` sorted by id (quality and
        instability NaN for an id without any non-null reward).
    """
    missing = [c for c in ("id", "sample_idx", "reward") if c not in rewards.columns]
    if missing:
        raise ValueError(f"rewards lack columns {missing}")
    r = rewards.assign(reward=pd.to_numeric(rewards["reward"], errors="coerce"))
    grouped = r.groupby("id", sort=True)["reward"]
    out = pd.DataFrame(
        {
            "quality": grouped.mean(),
            "instability": grouped.std(ddof=0),
            "n_samples": grouped.count().astype(int),
        }
    ).reset_index()
    return out[["id", *SCORE_FIELDS]]


def _ranked(frame: pd.DataFrame) -> pd.DataFrame:
    """Instability descending, ties by id ascending (deterministic).

    Instability is rounded to ``_TIE_DECIMALS`` for ranking, so values that differ only
    by floating-point noise (e.g. the std of [0, 0, 0, 1] and of [1, 0, 1, 1]) tie.
    """
    key = frame["instability"].round(_TIE_DECIMALS)
    order = frame.assign(_key=key).sort_values(["_key", "id"], ascending=[False, True], kind="mergesort")
    return order.drop(columns="_key")


def qi_select(
    scores: pd.DataFrame,
    pool: pd.DataFrame,
    quality_range: tuple[float, float] = (0.0, 1.0),
    min_instability: float = 0.0,
    max_samples: int | None = None,
    seed: int = 0,
    min_samples: int = 0,
) -> pd.DataFrame:
    """Select pool rows inside the quality–instability box, ranked by instability.

    Args:
        scores: Output of :func:`qi_scores`.
        pool: Pool rows with an ``id`` column (pool ids without scores are never selected).
        quality_range: Inclusive ``(low, high)`` bounds on quality.
        min_instability: Inclusive lower bound on instability.
        max_samples: Cap on the number of selected rows (None: no cap).
        seed: Recorded for provenance only; the selection draws no random numbers
            (ties are broken by id).
        min_samples: Fill up to this many rows from outside the box (module docstring).

    Returns:
        The selected pool rows plus ``quality, instability, n_samples, qi_rank`` (0-based)
        and ``qi_filled``; ``attrs["qi"]`` records the counts and parameters.
    """
    lo, hi = quality_range
    if lo > hi:
        raise ConfigError(f"quality_range low {lo} > high {hi}")
    if max_samples is not None and min_samples > max_samples:
        raise ConfigError(f"min_samples {min_samples} > max_samples {max_samples}")
    merged = pool.merge(scores[["id", *SCORE_FIELDS]], on="id", how="inner", validate="one_to_one")
    merged = merged.dropna(subset=["quality", "instability"])
    in_box = merged["quality"].between(lo, hi) & (merged["instability"] >= min_instability)
    selected = _ranked(merged[in_box])
    if max_samples is not None:
        selected = selected.head(max_samples)
    selected = selected.assign(qi_filled=False)
    n_box = len(selected)
    n_filled = 0
    if n_box < min_samples:
        fill = _ranked(merged[~in_box]).head(min_samples - n_box).assign(qi_filled=True)
        n_filled = len(fill)
        logger.warning(
            "qi_select: only %d rows in the box (< min_samples=%d); filled %d from outside it",
            n_box,
            min_samples,
            n_filled,
        )
        selected = pd.concat([selected, fill])
    selected = selected.reset_index(drop=True)
    selected["qi_rank"] = range(len(selected))
    selected.attrs["qi"] = {
        "n_pool": len(pool), "n_scored": len(merged), "n_in_box": int(in_box.sum()),
        "n_selected": len(selected), "n_filled": n_filled, "quality_range": [lo, hi],
        "min_instability": min_instability, "max_samples": max_samples, "min_samples": min_samples,
        "seed": seed,
    }  # fmt: skip
    logger.info("qi_select: %s", selected.attrs["qi"])
    return selected


def _counts_table(title: str, before: pd.Series, after: pd.Series) -> list[str]:
    keys = sorted(set(before.index) | set(after.index), key=str)
    lines = [f"### {title}", "", "| value | pool | selected |", "|---|---:|---:|"]
    lines += [f"| {k} | {int(before.get(k, 0))} | {int(after.get(k, 0))} |" for k in keys]
    return [*lines, ""]


def _stats_table(scores: pd.DataFrame, selected: pd.DataFrame) -> list[str]:
    lines = [
        "### Quality / instability",
        "",
        "| set | field | mean | min | max |",
        "|---|---|---:|---:|---:|",
    ]
    for name, frame in (("scored pool", scores), ("selected", selected)):
        for col in ("quality", "instability"):
            s = frame[col].dropna() if col in frame.columns else pd.Series(dtype=float)
            vals = [f"{v:.3f}" for v in (s.mean(), s.min(), s.max())] if len(s) else ["–"] * 3
            lines.append(f"| {name} | {col} | " + " | ".join(vals) + " |")
    return [*lines, ""]


def datasheet(
    selected: pd.DataFrame, pool: pd.DataFrame, scores: pd.DataFrame, params: dict[str, Any]
) -> str:
    """A markdown datasheet of a QI selection (counts, balance, score stats, parameters)."""
    lines = ["# QI-selected training set", "", "## Selection", ""]
    lines += [f"- {k}: `{v}`" for k, v in sorted(params.items())]
    n_filled = int(selected["qi_filled"].sum()) if "qi_filled" in selected.columns else 0
    lines += [
        f"- rows before: {len(pool)}",
        f"- rows scored: {len(scores)}",
        f"- rows after: {len(selected)}",
        f"- rows filled from outside the box: {n_filled}",
        "",
    ]
    lines += ["## Composition", ""]
    for col in ("source", "category", "should_refuse"):
        if col in pool.columns:
            after = selected[col].astype(str).value_counts() if col in selected.columns else pd.Series()
            lines += _counts_table(col, pool[col].astype(str).value_counts(), after)
    lines += _stats_table(scores, selected)
    return "\n".join(lines)
