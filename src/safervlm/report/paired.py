"""Two models on the same items: the report's paired tests (``paired.csv``, ``paired.md``, the
Reasoning Tax's tests in ``tax.md``, the GRPO comparison's gain).

Per seed, judge, model pair, benchmark and attack, two measures, each in the scope of the
table it tests:

* ``safety`` (every pair): the per-item safety score, items pooled - table.md's numbers (its
  attack-``none`` rows) on the items both models were scored on; McNemar's exact test on the
  unified unsafe verdict (safety < 0.5);
* ``attack_success`` (declared (reasoning, base) pairs): SafeMLRM attack success of the full
  response (threshold and missing policy as the rates) on should-refuse items, as *category
  means* - ``b - a`` is tax.md's Reasoning Tax (F) of the reasoning model over its base.

An attack that two or more benchmarks have also gets its benchmark average (``average`` for
safety, ``(mean)`` for attack success: the names of the tables' rows), the unweighted mean
of the benchmarks' values with a bootstrap stratified by benchmark (and category); McNemar's
test is on items and has no such row. Intervals are ``metrics.paired``'s paired bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from safervlm.metrics import MEAN, Settings, outcomes_from_judgments
from safervlm.metrics.asr import unsafe_verdict
from safervlm.metrics.paired import mcnemar_exact, paired_bootstrap
from safervlm.report.robustness import AVERAGE, Run
from safervlm.schema import attack_of

PAIRED_COLUMNS = [
    "seed",
    "judge",
    "measure",
    "a",
    "b",
    "benchmark",
    "attack",
    "scope",
    "n",
    "mean_a",
    "mean_b",
    "diff",
    "low",
    "high",
    "n01",
    "n10",
    "mcnemar_n",
    "mcnemar_p",
]


def _items(df: pd.DataFrame, settings: Settings, success: bool) -> pd.DataFrame:
    """Per judged row: keys, per-item safety and unsafe verdict (unified rubric), and with
    ``success`` SafeMLRM attack success of the full response under the missing policy (NaN
    off should-refuse rows; computed as the rates compute it)."""
    df = df.reset_index(drop=True)
    attack = df["attack"].astype(str) if "attack" in df.columns else df["id"].astype(str).map(attack_of)
    category = df["category"] if "category" in df.columns else pd.Series("", index=df.index)
    frame = pd.DataFrame(
        {
            "model": df["model"].astype(str),
            "benchmark": df["benchmark"].astype(str),
            "attack": attack,
            "category": category.fillna("").astype(str).replace("", "(none)"),
            "id": df["id"].astype(str),
            "safety": df["safety"].astype(float),
        }
    )
    frame["unsafe"] = unsafe_verdict(frame["safety"].to_numpy())
    if success:
        outcomes = outcomes_from_judgments(df, settings.threshold)
        values = outcomes["unsafe_full"].to_numpy(float)
        if settings.missing == "count":  # as the rates: missing is in the denominator, never a success
            values = np.nan_to_num(values, nan=0.0)
        frame["success"] = np.where(outcomes["status_full"].ne("n/a").to_numpy(), values, np.nan)
    return frame


def _test_row(
    g: pd.DataFrame, col: str, strata: dict[str, Any], mcnemar: bool, boot: tuple[int, int]
) -> dict[str, Any]:
    d = paired_bootstrap(
        g[f"{col}_a"].to_numpy(),
        g[f"{col}_b"].to_numpy(),
        n_resamples=boot[0],
        seed=boot[1],
        **{k: g[v].to_numpy() for k, v in strata.items()},
    )
    verdict = "unsafe" if col == "safety" else col
    mc = mcnemar_exact(g[f"{verdict}_a"].to_numpy(), g[f"{verdict}_b"].to_numpy()) if mcnemar else None
    return {
        **d.as_dict(),
        "n01": mc.n01 if mc else math.nan,
        "n10": mc.n10 if mc else math.nan,
        "mcnemar_n": mc.n if mc else math.nan,
        "mcnemar_p": mc.pvalue if mc else math.nan,
    }


def _pair_rows(
    items: pd.DataFrame, measure: str, a: str, b: str, boot: tuple[int, int]
) -> list[dict[str, Any]]:
    """One pair's rows: per (benchmark, attack), then the attack's benchmark average."""
    left, right = items[items["model"] == a], items[items["model"] == b]
    both = left.merge(right.drop(columns="category"), on=["benchmark", "attack", "id"], suffixes=("_a", "_b"))
    col = "safety" if measure == "safety" else "success"
    both = both.dropna(subset=[f"{col}_a", f"{col}_b"])
    rows = []
    within, scope = ({}, "items") if measure == "safety" else ({"strata": "category"}, "category means")
    average = AVERAGE if measure == "safety" else MEAN
    for attack, g_attack in both.groupby("attack", sort=False):
        for bench, g in g_attack.groupby("benchmark", sort=False):
            rows.append(
                {
                    "benchmark": bench,
                    "attack": attack,
                    "scope": scope,
                    **_test_row(g, col, within, True, boot),
                }
            )
        if g_attack["benchmark"].nunique() >= 2:
            strata = {"strata": "category", "outer": "benchmark"} if within else {"strata": "benchmark"}
            rows.append(
                {
                    "benchmark": average,
                    "attack": attack,
                    "scope": f"{scope}, mean over benchmarks",
                    **_test_row(g_attack, col, strata, False, boot),
                }
            )
    return [{"measure": measure, "a": a, "b": b, **r} for r in rows]


def paired_table(
    judgments: Mapping[Run, pd.DataFrame],
    pairs: Sequence[tuple[str, str]],
    tax_pairs: Sequence[tuple[str, str]],
    n_resamples: int,
    seed: int,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Per run, pair (a, b), benchmark and attack: paired bootstrap of b - a and McNemar's test.

    ``pairs`` compare per-item safety (items pooled, table.md's scope) and the unified unsafe
    verdict; ``tax_pairs`` ((reasoning, base)) compare SafeMLRM attack success of the full
    response (``settings``' threshold and missing policy) as category means, so ``b - a`` is
    the Reasoning Tax of ``reasoning`` over ``base`` exactly as tax.md states it.
    """
    s = settings or Settings()
    tests = [("safety", a, b) for a, b in pairs] + [("attack_success", base, r) for r, base in tax_pairs]
    rows = []
    for (run_seed, judge), df in judgments.items():
        items = _items(df, s, success=bool(tax_pairs))
        models = set(items["model"])
        for measure, a, b in tests:
            if {a, b} <= models:
                rows += [
                    {"seed": run_seed, "judge": judge, **r}
                    for r in _pair_rows(items, measure, a, b, (n_resamples, seed))
                ]
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)
