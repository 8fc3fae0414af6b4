"""What histograms allow: Fréchet bounds on a joint count from its two marginals.

Self-correction (unsafe reasoning overridden by a safe answer) needs per-sample
(reasoning, answer) pairs. A histogram gives only the marginals: ``u`` samples with unsafe
reasoning and ``s`` with a safe answer among ``n``. The number with both lies in
``[max(0, u + s - n), min(u, s)]`` (the Fréchet bounds), so the rate lies in those counts
over ``u``. Bounds are taken per category (each category's marginals constrain its own
samples) and averaged like the rates: unweighted over categories (``MEAN``), over the
categories with unsafe reasoning. A model none of whose samples has unsafe reasoning has no
bounds (NaN); ``n_reasoning`` (samples whose reasoning part is not empty) tells a model
without a reasoning/answer split (0: every reasoning part empty) from one whose reasoning is
never unsafe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from safervlm.metrics.safemlrm import KEYS, MEAN

BOUND_COLUMNS = [*KEYS, "low", "high", "n_unsafe_reasoning", "n_reasoning"]


def frechet_bounds(n: int, a: int, b: int) -> tuple[int, int]:
    """Smallest and largest possible size of the intersection of two sets of sizes ``a`` and
    ``b`` drawn from ``n`` items."""
    return max(0, a + b - n), min(a, b)


def self_correction_bounds(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Bounds of the self-correction rate the marginals of ``outcomes`` allow.

    A missing answer verdict counts as safe (the ``count`` policy, as the histograms do).

    Returns:
        One row per (model, benchmark, attack, category) with ``low`` / ``high`` (NaN where
        no reasoning is unsafe), ``n_unsafe_reasoning`` and ``n_reasoning`` and, per (model,
        benchmark, attack), the unweighted mean over categories under ``category == MEAN``
        (the counts summed).
    """
    rows: list[list[Any]] = []
    for key, part in outcomes.groupby(KEYS, sort=False):
        applicable = part[part["status_answer"].ne("n/a")]
        n = len(applicable)
        unsafe_r = int((applicable["unsafe_reasoning"].to_numpy(float) == 1.0).sum())
        with_reasoning = int(applicable["status_reasoning"].ne("empty").sum())
        safe_a = int((np.nan_to_num(applicable["unsafe_answer"].to_numpy(float), nan=0.0) == 0.0).sum())
        low, high = frechet_bounds(n, unsafe_r, safe_a)
        rate = (low / unsafe_r, high / unsafe_r) if unsafe_r else (np.nan, np.nan)
        rows.append([*(str(k) for k in key), *rate, unsafe_r, with_reasoning])
    cats = pd.DataFrame(rows, columns=BOUND_COLUMNS)
    means = cats.groupby(KEYS[:3], sort=False).agg(
        low=("low", "mean"),
        high=("high", "mean"),
        n_unsafe_reasoning=("n_unsafe_reasoning", "sum"),
        n_reasoning=("n_reasoning", "sum"),
    )
    means = means.reset_index().assign(category=MEAN)[BOUND_COLUMNS]
    return pd.concat([cats, means], ignore_index=True)
