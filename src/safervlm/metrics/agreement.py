"""Inter-judge agreement on the safe/unsafe verdict: percent agreement, Cohen's κ for two
judges and Fleiss' κ for three or more.

Two judges are compared on the items *both* scored (a verdict of None/NaN on either side
drops the item). κ is scikit-learn's :func:`~sklearn.metrics.cohen_kappa_score`; it is
undefined (NaN) when chance agreement is already 1, i.e. both judges gave one and the same
verdict to every item. Several judges are compared on the items *every* judge scored with
Fleiss' κ (:func:`fleiss_kappa`, Fleiss 1971: observed agreement among rater pairs per item
against chance agreement from the pooled category shares); statsmodels is not a dependency
and the formula is a few lines. Krippendorff's α is not computed: no maintained library for
it is installed.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

from safervlm.metrics.paired import ArrayLike, aligned_pairs

__all__ = ["Agreement", "MultiAgreement", "fleiss_kappa", "judge_agreement", "judges_agreement"]


@dataclasses.dataclass(frozen=True)
class Agreement:
    """``n`` items both judges scored; ``percent`` agreeing (0-100); Cohen's ``kappa``."""

    n: int
    percent: float
    kappa: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def judge_agreement(v1: ArrayLike, v2: ArrayLike) -> Agreement:
    """Percent agreement and Cohen's κ of two judges' unsafe (true) / safe (false) verdicts."""
    x, y = aligned_pairs(v1, v2)
    if (~np.isin(np.concatenate([x, y]), (0.0, 1.0))).any():
        raise ValueError("judge agreement needs unsafe/safe verdicts (true/false or 1/0)")
    n = int(x.size)
    if n == 0:
        return Agreement(0, math.nan, math.nan)
    percent = 100.0 * float(np.mean(x == y))
    xa, yb = x.astype(bool), y.astype(bool)
    if np.all(xa == xa[0]) and np.all(yb == xa[0]):
        return Agreement(n, percent, math.nan)  # one verdict everywhere: chance agreement is 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = float(cohen_kappa_score(xa, yb, labels=[False, True]))
    return Agreement(n, percent, kappa)


@dataclasses.dataclass(frozen=True)
class MultiAgreement:
    """``n`` items every one of ``judges`` judges scored; ``percent`` of them on which all
    judges agree (0-100); Fleiss' ``kappa``."""

    n: int
    judges: int
    percent: float
    kappa: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' κ of an items × categories matrix of rater counts (every row sums to the same
    number of raters, at least two). NaN when chance agreement is 1 (one category only).

    Per item, ``P_i = (sum_j n_ij^2 - m) / (m (m - 1))``; ``P_e = sum_j p_j^2`` with ``p_j``
    the share of all ratings in category ``j``; ``κ = (mean(P_i) - P_e) / (1 - P_e)``.
    """
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        raise ValueError(f"Fleiss' kappa needs an items x categories table, got shape {table.shape}")
    raters = table.sum(axis=1)
    if np.any(raters != raters[0]) or raters[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings on every item")
    m = raters[0]
    p_items = ((table**2).sum(axis=1) - m) / (m * (m - 1))
    shares = table.sum(axis=0) / table.sum()
    chance = float(np.sum(shares**2))
    if chance >= 1.0 - 1e-12:
        return math.nan
    return float((p_items.mean() - chance) / (1.0 - chance))


def judges_agreement(verdicts: np.ndarray) -> MultiAgreement:
    """Agreement of several judges: an items × judges matrix of unsafe (1) / safe (0) verdicts,
    NaN where a judge gave none (the item is dropped)."""
    table = np.asarray(verdicts, dtype=float)
    if table.ndim != 2 or table.shape[1] < 2:
        raise ValueError(f"expected an items x judges matrix of two or more judges, got {table.shape}")
    table = table[~np.isnan(table).any(axis=1)]
    if (~np.isin(table, (0.0, 1.0))).any():
        raise ValueError("judge agreement needs unsafe/safe verdicts (true/false or 1/0)")
    n, k = int(table.shape[0]), int(table.shape[1])
    if n == 0:
        return MultiAgreement(0, k, math.nan, math.nan)
    unsafe = table.sum(axis=1)
    percent = 100.0 * float(np.mean((unsafe == 0) | (unsafe == k)))
    return MultiAgreement(n, k, percent, fleiss_kappa(np.column_stack([k - unsafe, unsafe])))
