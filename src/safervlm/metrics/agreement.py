"""Inter-judge agreement on the safe/unsafe verdict: percent agreement and Cohen's κ.

Two judges are compared on the items *both* scored (a verdict of None/NaN on either side
drops the item). κ is scikit-learn's :func:`~sklearn.metrics.cohen_kappa_score`; it is
undefined (NaN) when chance agreement is already 1, i.e. both judges gave one and the same
verdict to every item.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

from safervlm.metrics.paired import ArrayLike, aligned_pairs

__all__ = ["Agreement", "judge_agreement"]


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
