"""Quality–instability (QI) selection: the box, then a category-stratified draw to a target size.

GRPO learns most from prompts the base policy neither solves nor fails every time
(moderate quality) and answers inconsistently (high instability). :func:`qi_select`
keeps the prompts inside the box ``quality_range[0] <= quality <= quality_range[1]`` and
``instability >= min_instability``; when the box holds more than ``target_size`` prompts,
each taxonomy category gets a quota (``allocation``):

* ``proportional``: quotas proportional to the category's share of the box (largest
  remainders get the leftover rows; equal remainders go to the category named first);
* ``equal``: the same quota for every category, a category with fewer prompts giving its
  unused share to the others (water-filling), so small categories are kept whole.

Within a category the most unstable prompts are kept first; prompts whose instability is
equal (to ``_TIE_DECIMALS`` decimals) are ordered by a key drawn from a seeded RNG
(``numpy.random.default_rng(seed)``, one draw per scored prompt in id order, before the
box is applied), so the same seed gives the same selection and another seed may break
ties differently.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from safervlm.config import QISelectParams
from safervlm.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

ALLOCATIONS = ("proportional", "equal")
_TIE_DECIMALS = 9


def allocate(counts: dict[str, int], target: int, allocation: str = "proportional") -> dict[str, int]:
    """Quotas per category summing to ``min(target, total)``, each at most its count."""
    total = sum(counts.values())
    if total <= target:
        return dict(counts)
    cats = sorted(counts)
    if allocation == "proportional":
        exact = {c: target * counts[c] / total for c in cats}
        quota = {c: int(exact[c]) for c in cats}
        left = target - sum(quota.values())
        for c in sorted(cats, key=lambda c: (-(exact[c] - quota[c]), c))[:left]:
            quota[c] += 1
        return quota
    if allocation == "equal":
        quota, left = {}, target
        by_size = sorted(cats, key=lambda c: (counts[c], c))
        for i, c in enumerate(by_size):
            quota[c] = min(counts[c], left // (len(by_size) - i))
            left -= quota[c]
        return {c: quota[c] for c in cats}
    raise ConfigError(f"curate.allocation must be one of {ALLOCATIONS}, got {allocation!r}")


def box_mask(scores: pd.DataFrame, lo: float, hi: float, min_instability: float) -> pd.Series:
    """True for scored prompts inside the box (NaN quality or instability is outside)."""
    q, s = scores["quality"], scores["instability"]
    return q.notna() & s.notna() & q.between(lo, hi) & (s >= min_instability)


def _with_tie_keys(scored: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Add ``_tie``: one draw of a seeded RNG per scored prompt, in id order."""
    order = scored["id"].astype(str).sort_values(kind="mergesort").index
    keys = pd.Series(np.random.default_rng(seed).random(len(order)), index=order)
    return scored.assign(_tie=keys)


def _ranked(frame: pd.DataFrame) -> pd.DataFrame:
    """Instability descending (rounded to ``_TIE_DECIMALS``), ties by the seeded ``_tie`` key."""
    key = frame.assign(_inst=frame["instability"].round(_TIE_DECIMALS))
    return key.sort_values(["_inst", "_tie"], ascending=[False, True], kind="mergesort").drop(columns="_inst")


def qi_select(
    scores: pd.DataFrame, pool: pd.DataFrame, params: QISelectParams, seed: int = 0, *, scores_path: str = ""
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Select pool rows in the QI box, stratified by category to ``target_size``.

    Args:
        scores: Per-prompt ``id, quality, instability, n_scored`` (from QI scoring).
        pool: The decontaminated pool (``id``, ``category`` and the training columns).
        params: Box, target size and allocation.
        seed: Seed of the tie-breaking RNG.
        scores_path: Named in errors.

    Returns:
        ``(selected, info)``: the selected pool rows plus ``quality, instability,
        n_scored, qi_rank`` (rank within its category, 0 = most unstable), sorted by id;
        ``info`` holds the counts per stage and category and the quotas.

    Raises:
        InputError: no prompt has a score, or the box selects nothing (the message gives
            the box and the observed ranges).
    """
    lo, hi = (float(v) for v in params.quality_range)
    merged = pool.merge(
        scores[["id", "quality", "instability", "n_scored"]], on="id", how="inner", validate="one_to_one"
    )
    scored = _with_tie_keys(merged[merged["quality"].notna() & merged["instability"].notna()], seed)
    if scored.empty:
        raise InputError(
            f"no prompt of {len(pool)} has a quality and instability (each needs >= 2 scored answers); "
            "is the judge leaving answers unscored?",
            path=scores_path or None,
        )
    in_box = scored[box_mask(scored, lo, hi, params.min_instability)]
    if in_box.empty:
        raise InputError(
            f"the QI box (quality in [{lo}, {hi}], instability >= {params.min_instability}) selects none of "
            f"{len(scored)} scored prompts; observed quality [{scored['quality'].min():.4g}, "
            f"{scored['quality'].max():.4g}], instability [{scored['instability'].min():.4g}, "
            f"{scored['instability'].max():.4g}]: widen curate.quality_range or lower curate.min_instability",
            path=scores_path or None,
        )
    target = params.target_size if params.target_size is not None else len(in_box)
    counts = {str(k): int(v) for k, v in in_box["category"].astype(str).value_counts().items()}
    quota = allocate(counts, target, params.allocation)
    parts = []
    for cat in sorted(quota):
        ranked = _ranked(in_box[in_box["category"].astype(str) == cat])
        parts.append(ranked.head(quota[cat]).assign(qi_rank=range(min(quota[cat], len(ranked)))))
    selected = (
        pd.concat(parts).drop(columns="_tie").sort_values("id", kind="mergesort").reset_index(drop=True)
    )
    if len(selected) < target:
        logger.warning(
            "qi_select: the box holds %d prompts, fewer than target_size %d; keeping all of them",
            len(selected),
            target,
        )
    info = {
        "n_pool": len(pool),
        "n_scored": len(scored),
        "n_unscored": len(pool) - len(scored),
        "n_in_box": len(in_box),
        "n_selected": len(selected),
        "target_size": params.target_size,
        "quotas": quota,
        "box": {"quality_range": [lo, hi], "min_instability": params.min_instability},
        "allocation": params.allocation,
        "seed": seed,
    }
    logger.info("qi_select: %s", {k: v for k, v in info.items() if k != "quotas"})
    return selected, info
