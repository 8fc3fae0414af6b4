"""Paired statistics: is a difference between two models on the same items real?

Two models are compared on the *same* items (same benchmark records, same attacks, same
judge), so every test here is paired:

* :func:`paired_bootstrap` - the mean per-item difference ``mean(b - a)`` with a percentile
  bootstrap interval that resamples *items* (``scipy.stats.bootstrap(paired=True)``); with
  ``strata`` (e.g. categories) the difference of *stratum means* averaged unweighted over
  strata - the SafeMLRM rates' scope - resampling items within each stratum;
* :func:`mcnemar_exact` - McNemar's exact test on per-item unsafe/safe verdicts: under the
  null both models are equally likely to be the unsafe one on a discordant item, so the
  count of items where only ``b`` is unsafe is Binomial(discordant, 1/2)
  (``scipy.stats.binomtest``, two-sided);
* :func:`seed_summary` and :func:`paired_seed_test` - across training seeds, the mean of
  seed-level values with a Student-t interval, and a paired t-test of two models' seed-level
  means (``scipy.stats.ttest_rel``; seed ``i`` of ``a`` is paired with seed ``i`` of ``b``).
  A t interval knows nothing of a proportion's range: given ``bounds`` (``[0, 1]`` for a
  rate, ``[-1, 1]`` for a difference of rates) it is clipped to them and ``clipped`` says so.

Inputs are aligned 1-D arrays; a pair with a NaN on either side is dropped (an item one of
the two models has no score for is not evidence either way). Every function returns a
frozen record whose ``as_dict()`` is what tables and JSON carry.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from safervlm.metrics.bootstrap import bootstrap_means, percentile_interval

ArrayLike = Sequence[Any] | np.ndarray

__all__ = [
    "McNemar",
    "PairedDiff",
    "SeedSummary",
    "SeedTest",
    "aligned_pairs",
    "mcnemar_exact",
    "paired_bootstrap",
    "paired_seed_test",
    "seed_summary",
    "stratified_paired_bootstrap",
]


@dataclasses.dataclass(frozen=True)
class _Record:
    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PairedDiff(_Record):
    """``diff = mean_b - mean_a`` over ``n`` paired items, with its bootstrap interval."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class McNemar(_Record):
    """Discordant counts and McNemar's exact two-sided p-value.

    ``n10``: items where ``a`` is unsafe and ``b`` safe (``b`` fixed them); ``n01``: ``a``
    safe and ``b`` unsafe (``b`` broke them); ``n``: items both models were judged on.
    """

    n: int
    n01: int
    n10: int
    pvalue: float


@dataclasses.dataclass(frozen=True)
class SeedSummary(_Record):
    """Mean over ``n`` seeds with a Student-t interval (NaN bounds below two seeds);
    ``clipped``: the interval was cut to the given bounds."""

    n: int
    mean: float
    low: float
    high: float
    clipped: bool = False


@dataclasses.dataclass(frozen=True)
class SeedTest(_Record):
    """Paired t-test over seeds: ``diff = mean(b - a)``, its t interval and p-value;
    ``clipped``: the interval was cut to the given bounds."""

    n: int
    diff: float
    low: float
    high: float
    pvalue: float
    clipped: bool = False


Bounds = tuple[float, float] | None


def _clip(low: float, high: float, bounds: Bounds) -> tuple[float, float, bool]:
    """The interval cut to ``bounds`` and whether it was cut (NaN bounds stay NaN)."""
    if bounds is None or math.isnan(low):
        return low, high, False
    lo, hi = bounds
    return max(low, lo), min(high, hi), bool(low < lo or high > hi)


def _floats(values: ArrayLike) -> np.ndarray:
    """A 1-D float array; None becomes NaN, booleans 0/1."""
    arr = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D sequence, got shape {arr.shape}")
    return arr


def aligned_pairs(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays with every pair that has a NaN on either side dropped."""
    x, y = _floats(a), _floats(b)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def _constant(d: np.ndarray) -> bool:
    """Whether every difference is the same up to float rounding (0.3 - 0.1 vs 0.4 - 0.2)."""
    return bool(np.ptp(d) <= 1e-12 * max(1.0, float(np.max(np.abs(d)))))


def _mean_diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(b - a, axis=axis)


def paired_bootstrap(
    a: ArrayLike,
    b: ArrayLike,
    *,
    n_resamples: int,
    seed: int,
    level: float = 0.95,
    strata: ArrayLike | None = None,
    outer: ArrayLike | None = None,
) -> PairedDiff:
    """Mean per-item difference ``b - a`` with a paired percentile bootstrap interval.

    Items are resampled with replacement, each keeping its (``a``, ``b``) pair, so what two
    models share on an item (its difficulty) cancels out of the interval.

    Args:
        a: Per-item values of the first model (e.g. safety 0/1 or a score).
        b: The second model's values on the same items, in the same order.
        n_resamples: Bootstrap resamples (0: no interval, NaN bounds).
        seed: Seed of the resampling generator (the result depends on nothing else).
        level: Interval confidence level.
        strata: Per-item stratum labels (e.g. categories): the means and the difference are
            then unweighted means over strata of the stratum means, and items are resampled
            within their stratum (:func:`stratified_paired_bootstrap`).
        outer: Groups the strata are nested in (e.g. benchmarks): the unweighted mean over
            groups of their strata means.
    """
    if strata is not None:
        return stratified_paired_bootstrap(
            a, b, strata, n_resamples=n_resamples, seed=seed, level=level, outer=outer
        )
    x, y = aligned_pairs(a, b)
    n = int(x.size)
    if n == 0:
        return PairedDiff(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    mean_a, mean_b = float(x.mean()), float(y.mean())
    diff = float(np.mean(y - x))
    if n_resamples < 1:
        return PairedDiff(n, mean_a, mean_b, diff, math.nan, math.nan)
    if n == 1 or _constant(y - x):
        # scipy needs two observations; a constant difference resamples to itself.
        return PairedDiff(n, mean_a, mean_b, diff, diff, diff)
    res = stats.bootstrap(
        (x, y), _mean_diff, paired=True, vectorized=True, n_resamples=n_resamples,
        confidence_level=level, method="percentile", rng=np.random.default_rng(seed),
    )  # fmt: skip
    return PairedDiff(
        n, mean_a, mean_b, diff, float(res.confidence_interval.low), float(res.confidence_interval.high)
    )


def stratified_paired_bootstrap(
    a: ArrayLike,
    b: ArrayLike,
    strata: ArrayLike,
    *,
    n_resamples: int,
    seed: int,
    level: float = 0.95,
    outer: ArrayLike | None = None,
) -> PairedDiff:
    """Difference of stratum means ``b - a``, averaged unweighted over strata, with a paired
    percentile bootstrap that resamples items within each stratum.

    This is the scope of the SafeMLRM rates and the Reasoning Tax (a benchmark's rate is the
    unweighted mean of its category rates), so the estimate equals the tax table's value
    when both models have every item. With ``outer`` (e.g. benchmarks) strata are nested in
    outer groups and the estimate is the unweighted mean over groups of their strata means
    (the ``(mean)`` row over benchmarks). Strata are resampled in order of first appearance
    from one generator seeded by ``seed``.
    """
    x, y = _floats(a), _floats(b)
    inner = np.asarray(list(strata), dtype=object)
    groups_of = np.asarray(list(outer), dtype=object) if outer is not None else np.zeros(x.size, dtype=object)
    if not x.shape == y.shape == inner.shape == groups_of.shape:
        raise ValueError(f"paired samples differ in length: {x.size}, {y.size}, {inner.size} strata")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y, inner, groups_of = x[keep], y[keep], inner[keep], groups_of[keep]
    if x.size == 0:
        return PairedDiff(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    nested = [
        [(groups_of == g) & (inner == s) for s in dict.fromkeys(inner[groups_of == g].tolist())]
        for g in dict.fromkeys(groups_of.tolist())
    ]

    def two_level(per_stratum: list[list[Any]]) -> Any:
        return np.mean([np.mean(row, axis=0) for row in per_stratum], axis=0)

    mean_a = float(two_level([[x[m].mean() for m in g] for g in nested]))
    mean_b = float(two_level([[y[m].mean() for m in g] for g in nested]))
    diff = float(two_level([[(y[m] - x[m]).mean() for m in g] for g in nested]))
    if n_resamples < 1:
        return PairedDiff(int(x.size), mean_a, mean_b, diff, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    boots = [[bootstrap_means(y[m] - x[m], n_resamples, rng) for m in g] for g in nested]
    low, high = percentile_interval(two_level(boots), level)
    return PairedDiff(int(x.size), mean_a, mean_b, diff, low, high)


def mcnemar_exact(a_unsafe: ArrayLike, b_unsafe: ArrayLike) -> McNemar:
    """McNemar's exact test on per-item unsafe (true) / safe (false) verdicts.

    Args:
        a_unsafe: Per-item verdicts of the first model (NaN/None: not judged).
        b_unsafe: The second model's verdicts on the same items.

    Returns:
        Counts and the two-sided exact p-value (1.0 when no item is discordant).
    """
    x, y = aligned_pairs(a_unsafe, b_unsafe)
    bad = ~np.isin(np.concatenate([x, y]), (0.0, 1.0))
    if bad.any():
        raise ValueError("McNemar's test needs unsafe/safe verdicts (true/false or 1/0)")
    xa, yb = x.astype(bool), y.astype(bool)
    n10 = int(np.sum(xa & ~yb))
    n01 = int(np.sum(~xa & yb))
    pvalue = 1.0 if n01 + n10 == 0 else float(stats.binomtest(n01, n01 + n10, 0.5).pvalue)
    return McNemar(int(x.size), n01, n10, pvalue)


def seed_summary(values: ArrayLike, level: float = 0.95, bounds: Bounds = None) -> SeedSummary:
    """Mean of seed-level values with a Student-t interval (NaN values are dropped).

    Args:
        values: One value per seed.
        level: Interval confidence level.
        bounds: The quantity's range (e.g. ``(0, 1)`` for a rate): the interval is clipped
            to it, and ``clipped`` says whether that changed it.
    """
    x = _floats(values)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return SeedSummary(0, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return SeedSummary(n, mean, math.nan, math.nan)
    sem = float(stats.sem(x))
    if sem == 0.0:
        return SeedSummary(n, mean, mean, mean)
    low, high = stats.t.interval(level, n - 1, loc=mean, scale=sem)
    return SeedSummary(n, mean, *_clip(float(low), float(high), bounds))


def paired_seed_test(a: ArrayLike, b: ArrayLike, level: float = 0.95, bounds: Bounds = None) -> SeedTest:
    """Paired t-test of two models' seed-level means (seed ``i`` of ``a`` with seed ``i`` of ``b``).

    Below two complete pairs nothing can be tested (NaN interval and p-value). When every
    seed moves by exactly the same amount the t statistic is infinite: p is 0 for a non-zero
    difference and 1 for none, and the interval is that difference. ``bounds``: the
    difference's range (``(-1, 1)`` for rates); the interval is clipped to it.
    """
    x, y = aligned_pairs(a, b)
    n = int(x.size)
    if n == 0:
        return SeedTest(0, math.nan, math.nan, math.nan, math.nan)
    d = y - x
    diff = float(d.mean())
    if n < 2:
        return SeedTest(n, diff, math.nan, math.nan, math.nan)
    if _constant(d):
        return SeedTest(n, diff, diff, diff, 0.0 if diff != 0.0 else 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_rel(y, x)
    ci = res.confidence_interval(confidence_level=level)
    low, high, clipped = _clip(float(ci.low), float(ci.high), bounds)
    return SeedTest(n, diff, low, high, float(res.pvalue), clipped)
