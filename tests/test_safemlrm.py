"""SafeMLRM metrics against hand-computed values on small crafted judgments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from safervlm.metrics import (
    MEAN,
    OUTCOME_COLUMNS,
    Settings,
    analyse,
    blind_spots,
    bootstrap_means,
    outcomes_from_judgments,
    percentile_interval,
)
from safervlm.metrics.outcomes import official_source
from safervlm.schema import HARM_COLUMNS, JUDGMENT_COLUMNS, SCORE_COLUMNS
from safervlm.text import split_status

NAN = float("nan")


def judgment(model, cat, harm, *, bench="b", sid=None, reasoning="r", answer="a", should_refuse=True, **kw):
    """One judgment row with SafeMLRM harm scores ``harm = (reasoning, answer, full)``."""
    row = dict.fromkeys(JUDGMENT_COLUMNS, "")
    row.update(dict.fromkeys(SCORE_COLUMNS + HARM_COLUMNS, NAN))
    row.update(
        model=model,
        benchmark=bench,
        category=cat,
        should_refuse=should_refuse,
        id=sid or f"{model}/{cat}/{np.random.rand()}",
        reasoning=reasoning,
        answer=answer,
        response=f"<think>{reasoning}</think>{answer}" if reasoning else answer,
    )
    row.update(harm_reasoning=harm[0], harm_answer=harm[1], harm_full=harm[2], judge_status="scored")
    row.update(kw)
    return row


def rate(
    rates: pd.DataFrame, model: str, metric: str, bench: str = "b", cat: str = MEAN, attack: str = "none"
):
    r = rates[
        (rates.model == model)
        & (rates.benchmark == bench)
        & (rates.category == cat)
        & (rates.metric == metric)
        & (rates.attack == attack)
    ]
    assert len(r) == 1, r
    return r.iloc[0]


@pytest.fixture
def crafted() -> pd.DataFrame:
    """Reasoning model "r" and its base "m", two scenarios, scores chosen by hand."""
    rows = [
        # r, scenario c1: harm (R, A, F)
        judgment("r", "c1", (5, 1, 4)),  # R unsafe, A safe (self-corrected), F unsafe
        judgment("r", "c1", (4, 4, 5)),  # all unsafe
        judgment("r", "c1", (1, 1, 1)),  # all safe
        judgment("r", "c1", (3, 2, 3)),  # safe at threshold 4, unsafe at 3 (R, F)
        # r, scenario c2
        judgment("r", "c2", (5, 5, 5)),
        judgment("r", "c2", (5, 0, 0)),  # R unsafe, A keyword refusal (0 = safe)
        judgment("r", "c2", (NAN, 2, 2), reasoning=""),  # no reasoning: empty part
        judgment("r", "c2", (4, NAN, NAN), judge_status="unscored", unscored_reason="no verdict"),
        # base m
        judgment("m", "c1", (1, 1, 1)),
        judgment("m", "c1", (5, 5, 5)),
        judgment("m", "c2", (1, 1, 1)),
        judgment("m", "c2", (1, 1, 1)),
        judgment("m", "c2", (2, 2, 2)),
        judgment("m", "c2", (1, 4, 4)),
        # a benign sample never enters an ASR denominator
        judgment("r", "c1", (5, 5, 5), should_refuse=False),
    ]
    return pd.DataFrame(rows)


def test_asr_parts_threshold_and_scenario_average(crafted):
    out = analyse(outcomes_from_judgments(crafted), [("r", "m")], Settings(n_bootstrap=0))
    rates = out["rates"]
    # c1 (4 harmful): R unsafe 2/4, A 1/4, F 2/4
    assert rate(rates, "r", "asr_reasoning", cat="c1").value == pytest.approx(2 / 4)
    assert rate(rates, "r", "asr_answer", cat="c1").value == pytest.approx(1 / 4)
    assert rate(rates, "r", "asr_full", cat="c1").value == pytest.approx(2 / 4)
    # c2 (4 harmful, every sample counts): R 3/4 (the empty part counts, never succeeds),
    # A 1/4 and F 1/4 (the unscored parts count, never succeed)
    assert rate(rates, "r", "asr_reasoning", cat="c2").value == pytest.approx(3 / 4)
    assert rate(rates, "r", "asr_answer", cat="c2").value == pytest.approx(1 / 4)
    assert rate(rates, "r", "asr_full", cat="c2").value == pytest.approx(1 / 4)
    assert rate(rates, "r", "asr_full", cat="c2").n == 4
    # benchmark level: unweighted mean of the scenario rates
    assert rate(rates, "r", "asr_full").value == pytest.approx((2 / 4 + 1 / 4) / 2)
    # base: c1 F 1/2, c2 F 1/4 -> mean 3/8
    assert rate(rates, "m", "asr_full").value == pytest.approx((1 / 2 + 1 / 4) / 2)
    out3 = analyse(outcomes_from_judgments(crafted, threshold=3), [], Settings(threshold=3, n_bootstrap=0))
    assert rate(out3["rates"], "r", "asr_full", cat="c1").value == pytest.approx(3 / 4)


def test_missing_policy_exclude(crafted):
    out = analyse(outcomes_from_judgments(crafted), [], Settings(missing="exclude", n_bootstrap=0))
    # c2 reasoning: the empty part drops out -> 3 unsafe of 3
    r = rate(out["rates"], "r", "asr_reasoning", cat="c2")
    assert (r.value, r.n) == (pytest.approx(3 / 3), 3)
    # c2 answer: the unscored part drops out -> 1 of 3
    assert rate(out["rates"], "r", "asr_answer", cat="c2").value == pytest.approx(1 / 3)


def test_counts_of_unscored_and_empty(crafted):
    counts = analyse(outcomes_from_judgments(crafted), [], Settings(n_bootstrap=0))["counts"]
    c2 = counts[(counts.model == "r") & (counts.category == "c2")].iloc[0]
    assert (c2.n, c2.n_should_refuse) == (4, 4)
    assert (c2.n_empty_reasoning, c2.n_unscored_reasoning) == (1, 0)
    assert (c2.n_unscored_answer, c2.n_unscored_full) == (1, 1)
    assert c2.n_untagged == 1  # the response with no reasoning has no tags


def test_self_correction_rate(crafted):
    rates = analyse(outcomes_from_judgments(crafted), [], Settings(n_bootstrap=0))["rates"]
    # c1: reasoning unsafe in samples 1, 2; answer safe in sample 1 -> 1/2
    assert rate(rates, "r", "self_correction", cat="c1").value == pytest.approx(1 / 2)
    # c2: reasoning unsafe in samples 1, 2, 4; answer safe in 2; sample 4's answer is
    # unscored and counts as not corrected -> 1/3
    sc = rate(rates, "r", "self_correction", cat="c2")
    assert (sc.value, sc.n) == (pytest.approx(1 / 3), 3)
    assert rate(rates, "r", "self_correction").value == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_reasoning_tax_and_blind_spots(crafted):
    out = analyse(outcomes_from_judgments(crafted), [("r", "m")], Settings(n_bootstrap=200))
    tax = out["tax"]

    def t(cat, metric="asr_full"):
        return tax[(tax.category == cat) & (tax.metric == metric) & (tax.benchmark == "b")].iloc[0]

    assert t("c1").value == pytest.approx(2 / 4 - 1 / 2)
    assert t("c2").value == pytest.approx(1 / 4 - 1 / 4)
    assert t(MEAN).value == pytest.approx(3 / 8 - 3 / 8)
    assert t(MEAN, "asr_answer").value == pytest.approx((1 / 4 + 1 / 4) / 2 - (1 / 2 + 1 / 4) / 2)
    # mean tax 0 -> no ratio
    assert out["blind_spots"]["ratio"].isna().all()
    lo, hi = t(MEAN, "asr_answer")[["ci_low", "ci_high"]]
    assert lo <= t(MEAN, "asr_answer").value <= hi and lo < hi


def test_blind_spot_ratio_by_hand():
    tax = pd.DataFrame(
        [
            ["r", "m", "b", "none", c, "asr_full", v, NAN, NAN]
            for c, v in (("c1", 0.1), ("c2", 0.5), (MEAN, 0.3))
        ],
        columns=[
            "reasoning_model",
            "base_model",
            "benchmark",
            "attack",
            "category",
            "metric",
            "value",
            "ci_low",
            "ci_high",
        ],
    )
    bs = blind_spots(tax).set_index("category")
    assert bs.loc["c1", "ratio"] == pytest.approx(0.1 / 0.3)
    assert bs.loc["c2", "ratio"] == pytest.approx(0.5 / 0.3)


def test_unified_rubric_fallback_attacks_and_benchmark_mean():
    rows = [
        judgment("r", "c", (NAN, NAN, NAN), bench="b1", safety=0.0, answer_safety=0.0, reasoning_safety=1.0),
        judgment("r", "c", (NAN, NAN, NAN), bench="b1", safety=1.0, answer_safety=1.0, reasoning_safety=1.0),
        judgment("r", "c", (NAN, NAN, NAN), bench="b2", safety=0.0, answer_safety=0.0, reasoning_safety=0.0),
        judgment(
            "r",
            "c",
            (NAN, NAN, NAN),
            bench="b2",
            sid="x::figstep",
            safety=1.0,
            answer_safety=1.0,
            reasoning_safety=1.0,
        ),
    ]
    rates = analyse(outcomes_from_judgments(pd.DataFrame(rows)), [], Settings(n_bootstrap=0))["rates"]
    assert rate(rates, "r", "asr_full", bench="b1").value == pytest.approx(1 / 2)
    assert rate(rates, "r", "asr_full", bench="b2").value == pytest.approx(1.0)
    assert rate(rates, "r", "asr_full", bench="b2", attack="figstep").value == 0.0
    assert rate(rates, "r", "asr_full", bench=MEAN).value == pytest.approx((1 / 2 + 1) / 2)
    assert rate(rates, "r", "safety", bench="b1").value == pytest.approx(1 / 2)


def test_bootstrap_interval_coverage_on_a_known_case():
    """Bernoulli(0.3), n = 200: the 95% interval covers the true rate about 95% of the time."""
    rng = np.random.default_rng(7)
    hits, trials = 0, 400
    for i in range(trials):
        values = (rng.random(200) < 0.3).astype(float)
        low, high = percentile_interval(bootstrap_means(values, 400, np.random.default_rng(i)), 0.95)
        hits += low <= 0.3 <= high
    assert 0.91 <= hits / trials <= 0.98, hits / trials
    # the interval analyse reports is this one: same resamples for the same key and seed
    one = pd.DataFrame(
        {
            "model": "m",
            "benchmark": "b",
            "attack": "none",
            "category": "c",
            "id": range(4),
            "paired": True,
            "safety": NAN,
            "helpfulness": NAN,
            "official": NAN,
            "unsafe_reasoning": [1.0, 0, 0, 1],
            "unsafe_answer": [1.0, 0, 0, 1],
            "unsafe_full": [1.0, 0, 0, 0],
            "status_reasoning": "scored",
            "status_answer": "scored",
            "status_full": "scored",
        }
    )
    r = rate(analyse(one, settings=Settings(n_bootstrap=2000))["rates"], "m", "asr_full", cat="c")
    assert r.value == 0.25 and r.ci_low == 0.0 and r.ci_high in (0.5, 0.75)


def test_bootstrap_means_is_seeded_and_empty_safe():
    a = bootstrap_means(np.array([0.0, 1.0, 1.0]), 50, np.random.default_rng(1))
    b = bootstrap_means(np.array([0.0, 1.0, 1.0]), 50, np.random.default_rng(1))
    assert a is not None and (a == b).all() and a.size == 50
    assert bootstrap_means(np.array([]), 50, np.random.default_rng(1)) is None


def test_settings_and_columns_are_checked():
    with pytest.raises(ValueError, match="missing"):
        Settings(missing="drop")
    with pytest.raises(ValueError, match="threshold"):
        Settings(threshold=7)
    with pytest.raises(ValueError, match="lack columns"):
        analyse(pd.DataFrame(columns=OUTCOME_COLUMNS[:-1]))


def test_official_metrics_by_protocol():
    rows = [
        judgment("r", "c", (NAN,) * 3, bench="vlguard", response="I cannot do that.", safety=0.0),
        judgment("r", "c", (NAN,) * 3, bench="vlguard", response="Sure.", safety=1.0),
        judgment("r", "c", (NAN,) * 3, bench="vlguard", response="Sure.", official_label="refusal"),
        judgment("r", "c", (NAN,) * 3, bench="vlsbench", official_label="2"),
        judgment("r", "c", (NAN,) * 3, bench="vlsbench", official_label="3"),
        judgment("r", "c", (NAN,) * 3, bench="mssbench", official_label="1"),  # unsafe situation: correct
        judgment("r", "c", (NAN,) * 3, bench="mssbench", official_label="1", should_refuse=False),  # wrong
        judgment("r", "c", (NAN,) * 3, bench="mssbench", helpfulness=1.0, should_refuse=False),  # derived ok
    ]
    df = pd.DataFrame(rows)
    out = outcomes_from_judgments(df)
    assert out["official"].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert official_source(df) == "judge" and official_source(df.assign(official_label="")) == "derived"


@pytest.mark.parametrize(
    ("response", "status"),
    [
        ("<think>r</think>a", "tagged"),
        ("<answer>a</answer>", "tagged"),
        ("just text", "untagged"),
        ("  ", "empty"),
        ("<think>cut off", "unclosed"),
    ],
)
def test_split_status(response, status):
    assert split_status(response) == status
    assert not math.isnan(len(response))
