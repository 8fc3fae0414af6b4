"""Paired statistics and judge agreement against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from safervlm.metrics.agreement import fleiss_kappa, judge_agreement, judges_agreement
from safervlm.metrics.paired import mcnemar_exact, paired_bootstrap, paired_seed_test, seed_summary


def test_mcnemar_on_a_crafted_two_by_two_table() -> None:
    # a unsafe & b safe: 8 items (n10); a safe & b unsafe: 2 (n01); concordant: 5 + 5.
    a = [1] * 8 + [0] * 2 + [1] * 5 + [0] * 5
    b = [0] * 8 + [1] * 2 + [1] * 5 + [0] * 5
    r = mcnemar_exact(a, b)
    # Two-sided exact: 2 * P(X <= 2), X ~ Bin(10, 1/2) = 2 * (1 + 10 + 45) / 1024 = 112/1024.
    assert (r.n, r.n01, r.n10) == (20, 2, 8)
    assert r.pvalue == pytest.approx(112 / 1024, abs=1e-12)
    # Symmetric in which model is "a".
    assert mcnemar_exact(b, a).pvalue == pytest.approx(112 / 1024, abs=1e-12)


def test_mcnemar_edges() -> None:
    # No discordant item: no evidence, p = 1.
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]).pvalue == 1.0
    # 5 of 5 discordant items one way: 2 * (1/2)^5 = 1/16.
    assert mcnemar_exact([1] * 5, [0] * 5).pvalue == pytest.approx(1 / 16)
    # An item one model was not judged on is dropped from both.
    r = mcnemar_exact([1, 1, None, math.nan], [0, 0, 1, 0])
    assert (r.n, r.n10, r.n01) == (2, 2, 0)
    assert r.pvalue == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unsafe/safe"):
        mcnemar_exact([0.5, 1], [1, 0])
    with pytest.raises(ValueError, match="differ in length"):
        mcnemar_exact([1, 0], [1])


def test_cohen_kappa_on_crafted_verdicts() -> None:
    # Balanced: p_o = 8/10; both judges say unsafe 5 of 10: p_e = .5*.5 + .5*.5 = .5;
    # kappa = (.8 - .5) / (1 - .5) = 0.6.
    v1 = [1, 1, 1, 1, 0, 0, 0, 0, 1, 0]
    v2 = [1, 1, 1, 0, 0, 0, 0, 1, 1, 0]
    r = judge_agreement(v1, v2)
    assert (r.n, r.percent) == (10, pytest.approx(80.0))
    assert r.kappa == pytest.approx(0.6)
    # Skewed: p_o = .8; marginals .7/.7: p_e = .49 + .09 = .58; kappa = .22 / .42.
    v1 = [1] * 7 + [0] * 3
    v2 = [1] * 6 + [0, 0, 0, 1]
    r = judge_agreement(v1, v2)
    assert r.percent == pytest.approx(80.0)
    assert r.kappa == pytest.approx(0.22 / 0.42)
    # Perfect disagreement on a balanced set: p_o = 0, p_e = .5, kappa = -1.
    assert judge_agreement([1, 0], [0, 1]).kappa == pytest.approx(-1.0)


def test_agreement_only_on_items_both_scored_and_undefined_kappa() -> None:
    r = judge_agreement([True, False, None, True], [True, True, False, math.nan])
    assert (r.n, r.percent) == (2, pytest.approx(50.0))
    # Both judges call everything safe: agreement 100%, chance agreement 1, kappa undefined.
    r = judge_agreement([0, 0, 0], [0, 0, 0])
    assert r.percent == 100.0 and math.isnan(r.kappa)
    r = judge_agreement([None], [1])
    assert r.n == 0 and math.isnan(r.percent) and math.isnan(r.kappa)


def test_seed_summary_student_t_interval() -> None:
    # mean .6, sd .1, sem .1/sqrt(3); t_{.975, 2} = 4.302653: half-width 0.2484138.
    r = seed_summary([0.5, 0.6, 0.7])
    assert (r.n, r.mean) == (3, pytest.approx(0.6))
    assert r.low == pytest.approx(0.6 - 0.2484138, abs=1e-6)
    assert r.high == pytest.approx(0.6 + 0.2484138, abs=1e-6)
    one = seed_summary([0.4])
    assert one.mean == 0.4 and math.isnan(one.low) and math.isnan(one.high)
    assert seed_summary([0.3, 0.3]).low == 0.3
    assert seed_summary([0.1, math.nan, 0.3]).n == 2


def test_paired_seed_test_by_hand() -> None:
    # Differences .1, .2, .1: mean 2/15, sd = sqrt(1/300), sem = 1/30, t = 4 on 2 df.
    # For 2 df, P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2: p = 1 - 4 / sqrt(18) = 0.0571909.
    # Interval 2/15 +- 4.302653 / 30 = (-0.0100884, 0.2767551).
    r = paired_seed_test([0.4, 0.5, 0.6], [0.5, 0.7, 0.7])
    assert r.n == 3 and r.diff == pytest.approx(2 / 15)
    assert r.pvalue == pytest.approx(1 - 4 / math.sqrt(18), abs=1e-7)
    assert r.low == pytest.approx(-0.0100884, abs=1e-6)
    assert r.high == pytest.approx(0.2767551, abs=1e-6)
    # Every seed moves by the same amount: t is infinite.
    same = paired_seed_test([0.1, 0.2], [0.3, 0.4])
    assert same.pvalue == 0.0 and same.low == same.high == pytest.approx(0.2)
    assert paired_seed_test([0.1, 0.2], [0.1, 0.2]).pvalue == 1.0
    assert math.isnan(paired_seed_test([0.1], [0.3]).pvalue)


def test_paired_bootstrap_difference_and_interval() -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(0, 2, 200).astype(float)
    flip = rng.random(200) < 0.3
    b = np.where(flip, 1.0, a)  # b is a with 30% of items forced safe
    r = paired_bootstrap(a, b, n_resamples=2000, seed=3)
    assert r.n == 200
    assert r.diff == pytest.approx(b.mean() - a.mean())
    assert r.low < r.diff < r.high
    assert r.low > 0  # the gain is real: every changed item moved the same way
    # Seeded by `seed` alone: the same call gives the same interval, another seed another.
    assert paired_bootstrap(a, b, n_resamples=2000, seed=3) == r
    assert paired_bootstrap(a, b, n_resamples=2000, seed=4) != r
    # Pairing matters: a constant per-item shift has no spread at all.
    shifted = paired_bootstrap(a, a + 0.1, n_resamples=500, seed=0)
    assert shifted.low == shifted.high == pytest.approx(0.1)
    # NaN pairs are dropped; no resamples means no interval.
    r = paired_bootstrap([1.0, 0.0, math.nan], [1.0, 1.0, 0.0], n_resamples=0, seed=0)
    assert r.n == 2 and r.diff == pytest.approx(0.5) and math.isnan(r.low)
    assert paired_bootstrap([], [], n_resamples=10, seed=0).n == 0


# --- intervals that respect the range, category-mean scope, several judges -----------------


def test_seed_interval_is_clipped_to_the_range_and_says_so() -> None:
    # mean .95, sd .0707, sem .05; t_{.975, 1} = 12.7062: raw interval [0.3147, 1.5853].
    raw = seed_summary([0.9, 1.0])
    assert raw.high == pytest.approx(0.95 + 12.7062 * 0.05, rel=1e-4) and not raw.clipped
    r = seed_summary([0.9, 1.0], bounds=(0.0, 1.0))
    assert r.low == pytest.approx(0.95 - 12.7062 * 0.05, rel=1e-4)
    assert r.high == 1.0 and r.clipped
    inside = seed_summary([0.5, 0.6, 0.7], bounds=(0.0, 1.0))
    assert not inside.clipped and inside.high == pytest.approx(0.6 + 0.2484138, abs=1e-6)
    # differences of rates live in [-1, 1]: differences .1, .9 -> mean .5, sem .4, raw +-5.08
    t = paired_seed_test([0.0, 0.0], [0.1, 0.9], bounds=(-1.0, 1.0))
    assert (t.low, t.high, t.clipped) == (-1.0, 1.0, True)
    assert math.isnan(seed_summary([0.4], bounds=(0.0, 1.0)).low)


def test_stratified_paired_bootstrap_is_the_difference_of_category_means() -> None:
    # c1: a 2/4 unsafe, b 0/4 -> -0.5; c2: a 0/2, b 1/2 -> +0.5. Category means: a .25, b .25,
    # difference 0 (pooled items would say -1/6).
    a = [1, 1, 0, 0, 0, 0]
    b = [0, 0, 0, 0, 1, 0]
    cats = ["c1"] * 4 + ["c2"] * 2
    r = paired_bootstrap(a, b, n_resamples=400, seed=1, strata=cats)
    assert (r.n, r.mean_a, r.mean_b) == (6, pytest.approx(0.25), pytest.approx(0.25))
    assert r.diff == pytest.approx(0.0)
    assert r.low < 0 < r.high
    assert paired_bootstrap(a, b, n_resamples=400, seed=1).diff == pytest.approx(-1 / 6)
    # Constant differences within each stratum resample to themselves: (-1 + 1) / 2 = 0 exactly.
    same = paired_bootstrap([1, 1, 0], [0, 0, 1], n_resamples=200, seed=0, strata=["x", "x", "y"])
    assert same.low == same.high == pytest.approx(0.0)
    # a NaN on either side drops the item, its stratum label with it
    r = paired_bootstrap([1, math.nan, 0], [0, 1, 1], n_resamples=0, seed=0, strata=["x", "y", "z"])
    assert r.n == 2 and r.diff == pytest.approx(0.0) and math.isnan(r.low)
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1, 0], [1, 0], n_resamples=0, seed=0, strata=["x"])


def test_fleiss_kappa_on_the_worked_example_and_by_hand() -> None:
    # Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories: P = 0.378,
    # P_e = 0.2128 (shares .143 .200 .279 .150 .229), kappa = 0.210.
    rows = ("0 0 0 0 14", "0 2 6 4 2", "0 0 3 5 6", "0 3 9 2 0", "2 2 8 1 1",
            "7 7 0 0 0", "3 2 6 3 0", "2 5 3 2 2", "6 5 2 1 0", "0 2 2 3 7")  # fmt: skip
    table = np.array([[int(v) for v in r.split()] for r in rows])
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-5)
    # 3 judges, 4 items: [u u u], [s s s], [u u s], [s s u]. P_i = 1, 1, 1/3, 1/3 -> P = 2/3;
    # unsafe share 6/12 -> P_e = .5; kappa = (2/3 - .5) / .5 = 1/3. All agree on 2 of 4.
    r = judges_agreement(np.array([[1, 1, 1], [0, 0, 0], [1, 1, 0], [0, 0, 1], [1, math.nan, 1]]))
    assert (r.n, r.judges, r.percent) == (4, 3, pytest.approx(50.0))
    assert r.kappa == pytest.approx(1 / 3)
    assert math.isnan(judges_agreement(np.zeros((3, 3))).kappa)  # one verdict everywhere
    with pytest.raises(ValueError, match="unsafe/safe"):
        judges_agreement(np.array([[0.5, 1, 1]]))
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[1, 1], [2, 1]]))


def test_nested_strata_average_benchmarks_of_category_means() -> None:
    # Benchmark p: categories c1 (diff -1/2), c2 (+1/2) -> 0; benchmark q: one category, diff
    # +1 -> 1. Mean over benchmarks (1/2) != mean over the three categories (1/3).
    a = [1, 1, 0, 0, 0, 0, 0, 0]
    b = [0, 0, 0, 0, 1, 0, 1, 1]
    cats = ["c1"] * 4 + ["c2"] * 2 + ["c1"] * 2
    bench = ["p"] * 6 + ["q"] * 2
    r = paired_bootstrap(a, b, n_resamples=300, seed=2, strata=cats, outer=bench)
    assert r.diff == pytest.approx(0.5) and r.mean_a == pytest.approx((0.25 + 0.0) / 2)
    assert r.low <= 0.5 <= r.high
    # with outer, c1 of p and c1 of q are two strata; without, c1 pools both benchmarks' items:
    # c1 (-2 + 2) / 6 = 0, c2 +1/2 -> 1/4
    assert paired_bootstrap(a, b, n_resamples=0, seed=0, strata=cats).diff == pytest.approx(0.25)
