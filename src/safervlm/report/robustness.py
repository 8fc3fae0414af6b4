"""Conclusions that survive the seed and the judge: the frames behind the seed, judge and
paired tables (``report.robustness_md`` writes them).

Inputs are one ``metrics.json`` and one ``judgments.parquet`` per (seed, judge, model,
benchmark). Scopes (each table's caption repeats its own):

* ``seeds``: every headline metric (``metrics.json``'s ``overall``: attack ``none``, items
  pooled - table.md's numbers) per seed, the mean over seeds and its 95% Student-t interval
  clipped to the metric's range (``metrics.paired.seed_summary``), first judge;
* ``seed_tests``: per model pair, the paired t-test over seed-level values
  (``metrics.paired.paired_seed_test``), the interval clipped to [-1, 1];
* ``judges``: every headline metric per judge (mean over seeds); ``judge_sensitivity``: how far
  each moves across judges (max - min);
* ``agreement``: per benchmark and judge pair, percent agreement and Cohen's κ on the
  safe/unsafe verdict of the items both judges scored, every attack; with three or more
  judges also Fleiss' κ over the items every judge scored (``metrics.agreement``);

The paired tests on the same items are ``report.paired``'s. A pair ``(a, b)`` always reads
"b minus a".
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from safervlm.metrics.agreement import judge_agreement, judges_agreement
from safervlm.metrics.asr import unsafe_verdict
from safervlm.metrics.paired import paired_seed_test, seed_summary

logger = logging.getLogger(__name__)

HEADLINE = ("safety", "helpfulness", "unsafety_full")
AVERAGE = "average"
ALL = "(all)"
ALL_JUDGES = "(all judges)"
NONE = "none"
RATE = (0.0, 1.0)
DIFFERENCE = (-1.0, 1.0)
# Run keys: (seed, judge).
Run = tuple[int, str]
AGREEMENT_COLUMNS = ["benchmark", "judge_1", "judge_2", "statistic", "judges", "n", "percent", "kappa"]


def headline_frame(metrics: Mapping[Run, Mapping[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """Long frame (seed, judge, model, benchmark, metric, value) with an "average" benchmark
    (the unweighted mean over benchmarks, as table.md's).

    ``metrics``: ``{(seed, judge): {"model/benchmark": metrics.json}}``.
    """
    rows = []
    for (seed, judge), runs in metrics.items():
        for key, m in runs.items():
            model, bench = key.split("/", 1)
            overall = m.get("overall", m)
            for metric in HEADLINE:
                v = overall.get(metric)
                rows.append((seed, judge, model, bench, metric, math.nan if v is None else float(v)))
    df = pd.DataFrame(rows, columns=["seed", "judge", "model", "benchmark", "metric", "value"])
    avg = df.groupby(["seed", "judge", "model", "metric"], sort=False)["value"].mean().reset_index()
    return pd.concat([df, avg.assign(benchmark=AVERAGE)[df.columns]], ignore_index=True)


def _ordered(values: pd.Series) -> list[Any]:
    return list(dict.fromkeys(values))


def seed_table(head: pd.DataFrame, judge: str) -> pd.DataFrame:
    """Per (model, benchmark, metric): one column per seed, the mean and its 95% interval
    (Student-t, clipped to [0, 1]; ``clipped`` says where)."""
    part = head[head["judge"] == judge]
    seeds = sorted(_ordered(part["seed"]))
    rows = []
    for (model, bench, metric), g in part.groupby(["model", "benchmark", "metric"], sort=False):
        by_seed = dict(zip(g["seed"], g["value"], strict=True))
        s = seed_summary([by_seed.get(x, math.nan) for x in seeds], bounds=RATE)
        rows.append(
            {
                "model": model,
                "benchmark": bench,
                "metric": metric,
                **{f"seed {x}": by_seed.get(x, math.nan) for x in seeds},
                "n_seeds": s.n,
                "mean": s.mean,
                "ci_low": s.low,
                "ci_high": s.high,
                "clipped": s.clipped,
            }
        )
    return pd.DataFrame(rows)


def seed_tests(head: pd.DataFrame, judge: str, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Per pair (a, b), benchmark and metric: paired t-test of seed-level values of b - a."""
    part = head[head["judge"] == judge]
    rows = []
    for a, b in pairs:
        for (bench, metric), g in part.groupby(["benchmark", "metric"], sort=False):
            wide = g.pivot_table(index="seed", columns="model", values="value", dropna=False)
            if a not in wide.columns or b not in wide.columns:
                continue
            t = paired_seed_test(wide[a].to_numpy(), wide[b].to_numpy(), bounds=DIFFERENCE)
            sa = seed_summary(wide[a].to_numpy(), bounds=RATE)
            sb = seed_summary(wide[b].to_numpy(), bounds=RATE)
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "benchmark": bench,
                    "metric": metric,
                    "mean_a": sa.mean,
                    "a_low": sa.low,
                    "a_high": sa.high,
                    "a_clipped": sa.clipped,
                    "mean_b": sb.mean,
                    "b_low": sb.low,
                    "b_high": sb.high,
                    "b_clipped": sb.clipped,
                    **t.as_dict(),
                }
            )
    return pd.DataFrame(rows)


def judge_table(head: pd.DataFrame) -> pd.DataFrame:
    """Per (model, benchmark, metric): one column per judge (mean over seeds) and the range."""
    mean = head.groupby(["model", "benchmark", "metric", "judge"], sort=False)["value"].mean()
    wide = mean.unstack("judge")
    wide = wide[_ordered(head["judge"])]
    out = wide.reset_index()
    values = wide.to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        out["range"] = np.nanmax(values, axis=1) - np.nanmin(values, axis=1) if values.size else []
    return out


def unsafe_verdicts(judgments: pd.DataFrame) -> pd.Series:
    """1.0 unsafe / 0.0 safe per row from the unified safety score; NaN when unscored."""
    return pd.Series(unsafe_verdict(judgments["safety"].astype(float).to_numpy()), index=judgments.index)


def _verdict_table(judgments: Mapping[Run, pd.DataFrame]) -> pd.DataFrame:
    """Items (seed, model, benchmark, id) × judges: the unsafe verdict (NaN: not scored)."""
    parts = [
        pd.DataFrame(
            {
                "seed": seed,
                "judge": judge,
                "model": df["model"].astype(str).to_numpy(),
                "benchmark": df["benchmark"].astype(str).to_numpy(),
                "id": df["id"].astype(str).to_numpy(),
                "unsafe": unsafe_verdicts(df).to_numpy(),
            }
        )
        for (seed, judge), df in judgments.items()
    ]
    long = pd.concat(parts, ignore_index=True)
    wide = long.pivot_table(
        index=["seed", "model", "benchmark", "id"], columns="judge", values="unsafe", dropna=False, sort=False
    )
    return wide[_ordered(long["judge"])].reset_index()


def agreement_table(judgments: Mapping[Run, pd.DataFrame]) -> pd.DataFrame:
    """Per benchmark (and all together): every judge pair's % agreement and Cohen's κ on the
    items both scored; with three or more judges, Fleiss' κ over the items all scored.

    Items are (seed, model, id), every attack included: every response judged by the judges.
    """
    judges = _ordered(pd.Series([judge for _, judge in judgments]))
    if len(judges) < 2:
        return pd.DataFrame(columns=AGREEMENT_COLUMNS)
    wide = _verdict_table(judgments)
    rows = []
    for bench, g in [*wide.groupby("benchmark", sort=False), (ALL, wide)]:
        for j1, j2 in itertools.combinations(judges, 2):
            agr = judge_agreement(g[j1].to_numpy(), g[j2].to_numpy())
            rows.append(
                {
                    "benchmark": bench,
                    "judge_1": j1,
                    "judge_2": j2,
                    "statistic": "cohen",
                    "judges": 2,
                    "n": agr.n,
                    "percent": agr.percent,
                    "kappa": agr.kappa,
                }
            )
        if len(judges) >= 3:
            many = judges_agreement(g[judges].to_numpy(dtype=float))
            rows.append(
                {
                    "benchmark": bench,
                    "judge_1": ALL_JUDGES,
                    "judge_2": "",
                    "statistic": "fleiss",
                    **many.as_dict(),
                }
            )
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
