"""The one bootstrap: percentile intervals of means, from resampling with replacement.

Every interval in the project (``metrics.json``'s ``*_ci``, the SafeMLRM rates, the
Reasoning Tax, blind spots) comes from :func:`bootstrap_means` and
:func:`percentile_interval`.

Why not ``scipy.stats.bootstrap``: it rejects samples of one observation (a scenario with
one sample is common here), and the Reasoning Tax needs the resampled means themselves
(differences of two models' resamples, means over categories), not only an interval; its
resampling also consumes the generator differently, so the pinned intervals would change.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

# Resample-matrix cells drawn per call to the generator (bounds memory). numpy's bounded
# integers are drawn from 64-bit words split in two, so where a chunk draws an odd count the
# next chunk's stream shifts: the chunk size is part of what makes a seeded interval, and
# each caller keeps the one its pinned numbers were made with.
RATE_MAX_CELLS = 2_000_000
SCORE_MAX_CELLS = 5_000_000


def bootstrap_means(
    values: np.ndarray, n_bootstrap: int, rng: np.random.Generator, max_cells: int = RATE_MAX_CELLS
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
    chunk = max(1, max_cells // n)
    parts = []
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        parts.append(values[rng.integers(0, n, size=(size, n))].mean(axis=1))
    return np.concatenate(parts)


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
    boot = bootstrap_means(values, n_bootstrap, np.random.default_rng(seed), SCORE_MAX_CELLS)
    if boot is None:
        return None
    return list(percentile_interval(boot, level))


def keyed_rng(seed: int, *key: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and a key, so each group resamples on its own stream."""
    return np.random.default_rng([seed, zlib.crc32("\x1f".join(key).encode())])
