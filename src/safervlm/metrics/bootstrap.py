"""The one bootstrap: percentile intervals of means, from resampling with replacement.

Every interval in the project (``metrics.json``'s ``*_ci``, the SafeMLRM rates, the
Reasoning Tax, blind spots) comes from :func:`bootstrap_means` (``scipy.stats.bootstrap``'s
resampled means) and :func:`percentile_interval`. The interval is taken here rather than
from scipy because the Reasoning Tax and the benchmark means combine several resample sets
(differences, unweighted means) before taking it.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from scipy import stats

# Resample-matrix cells drawn per call to the generator; it only bounds memory: the
# generator keeps its stream across calls, so the resamples do not depend on it
# (tests/test_metrics.py checks this).
MAX_CELLS = 2_000_000


def bootstrap_means(
    values: np.ndarray, n_bootstrap: int, rng: np.random.Generator, max_cells: int = MAX_CELLS
) -> np.ndarray | None:
    """``n_bootstrap`` means of resamples (with replacement) of ``values``.

    Args:
        values: The sample (NaN already removed).
        n_bootstrap: Number of resamples.
        rng: Generator the resample indices are drawn from.
        max_cells: Resample-matrix cells drawn at once.

    Returns:
        The resampled means, or None when ``values`` is empty or ``n_bootstrap`` < 1.
    """
    n = values.size
    if n == 0 or n_bootstrap < 1:
        return None
    if n == 1:  # scipy rejects one observation; every resample of it is that value
        return np.full(n_bootstrap, float(values[0]))
    res = stats.bootstrap(
        (values,), np.mean, n_resamples=n_bootstrap, batch=max(1, max_cells // n),
        method="percentile", vectorized=True, rng=rng,
    )  # fmt: skip
    return np.asarray(res.bootstrap_distribution, dtype=float)


def percentile_interval(boot: np.ndarray | None, level: float) -> tuple[float, float]:
    """Percentile interval of bootstrap estimates (NaN, NaN when there are none)."""
    if boot is None:
        return math.nan, math.nan
    finite = boot[~np.isnan(boot)]
    if not finite.size:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(values: np.ndarray, n_bootstrap: int, seed: int, level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of the mean of ``values``, seeded by ``seed`` alone.

    Returns:
        ``[low, high]``, or None when ``values`` is empty or ``n_bootstrap`` < 1.
    """
    boot = bootstrap_means(values, n_bootstrap, np.random.default_rng(seed))
    if boot is None:
        return None
    return list(percentile_interval(boot, level))


def keyed_rng(seed: int, *key: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and a key, so each group resamples on its own stream."""
    return np.random.default_rng([seed, zlib.crc32("\x1f".join(key).encode())])
