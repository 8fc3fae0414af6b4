"""Conclusions that survive the seed and the judge: the report's seed, judge and paired tables.

Inputs are one ``metrics.json`` and one ``judgments.parquet`` per (seed, judge, model,
benchmark). Written under ``out_dir`` (markdown for people, CSV with fractions):

* ``seeds``: every headline metric per seed, the mean over seeds and its 95% Student-t
  interval (``metrics.paired.seed_summary``), first judge;
* ``seed_tests``: per model pair, the paired t-test over seed-level means
  (``metrics.paired.paired_seed_test``);
* ``judges``: every headline metric per judge (mean over seeds);
* ``judge_sensitivity``: how far each headline number moves across judges (max - min);
* ``agreement``: per benchmark and judge pair, percent agreement and Cohen's κ on the
  safe/unsafe verdict of the items both judges scored (``metrics.agreement``);
* ``paired``: per seed, judge, model pair and benchmark, the paired bootstrap interval of
  the safety difference and McNemar's exact test on per-item unsafe verdicts; for the
  declared (reasoning, base) pairs also on attack success (the Reasoning Tax's items).

A pair ``(a, b)`` always reads "b minus a"; percentages carry one decimal.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safervlm.io import write_text
from safervlm.markers import as_bool_or_none
from safervlm.metrics.agreement import judge_agreement
from safervlm.metrics.asr import unsafe_verdict
from safervlm.metrics.paired import mcnemar_exact, paired_bootstrap, paired_seed_test, seed_summary
from safervlm.report.analysis import markdown_table

logger = logging.getLogger(__name__)

HEADLINE = ("safety", "helpfulness", "unsafety_full")
AVERAGE = "average"
ALL = "(all)"
MISSING = "–"
# Run keys: (seed, judge).
Run = tuple[int, str]


def _pct(v: Any, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    return f"{100 * float(v):+.1f}" if signed else f"{100 * float(v):.1f}"


def _p(v: float) -> str:
    return MISSING if math.isnan(v) else (f"{v:.3f}" if v >= 0.001 else f"{v:.1e}")


def _interval(low: float, high: float, signed: bool = False) -> str:
    if math.isnan(low):
        return MISSING
    return f"[{_pct(low, signed)}, {_pct(high, signed)}]"


def headline_frame(metrics: Mapping[Run, Mapping[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """Long frame (seed, judge, model, benchmark, metric, value) with an "average" benchmark.

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
    """Per (model, benchmark, metric): one column per seed, the mean and its 95% interval."""
    part = head[head["judge"] == judge]
    seeds = sorted(_ordered(part["seed"]))
    rows = []
    for (model, bench, metric), g in part.groupby(["model", "benchmark", "metric"], sort=False):
        by_seed = dict(zip(g["seed"], g["value"], strict=True))
        s = seed_summary([by_seed.get(x, math.nan) for x in seeds])
        rows.append(
            {"model": model, "benchmark": bench, "metric": metric,
             **{f"seed {x}": by_seed.get(x, math.nan) for x in seeds},
             "n_seeds": s.n, "mean": s.mean, "ci_low": s.low, "ci_high": s.high}
        )  # fmt: skip
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
            t = paired_seed_test(wide[a].to_numpy(), wide[b].to_numpy())
            sa, sb = seed_summary(wide[a].to_numpy()), seed_summary(wide[b].to_numpy())
            rows.append(
                {"a": a, "b": b, "benchmark": bench, "metric": metric, "mean_a": sa.mean,
                 "a_low": sa.low, "a_high": sa.high, "mean_b": sb.mean, "b_low": sb.low,
                 "b_high": sb.high, **{k: v for k, v in t.as_dict().items()}}
            )  # fmt: skip
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


def agreement_table(judgments: Mapping[Run, pd.DataFrame]) -> pd.DataFrame:
    """Per benchmark (and all together) and judge pair: items both scored, % agreement, κ.

    Items are (seed, model, id): every response judged by both judges.
    """
    verdicts: dict[str, pd.DataFrame] = {}
    for (seed, judge), df in judgments.items():
        part = pd.DataFrame(
            {"seed": seed, "model": df["model"].astype(str), "benchmark": df["benchmark"].astype(str),
             "id": df["id"].astype(str), "unsafe": unsafe_verdicts(df).to_numpy()}
        )  # fmt: skip
        verdicts[judge] = pd.concat([verdicts[judge], part]) if judge in verdicts else part
    keys = ["seed", "model", "benchmark", "id"]
    rows = []
    for j1, j2 in itertools.combinations(list(verdicts), 2):
        both = verdicts[j1].merge(verdicts[j2], on=keys, suffixes=("_1", "_2"))
        groups = [*both.groupby("benchmark", sort=False), (ALL, both)]
        for bench, g in groups:
            agr = judge_agreement(g["unsafe_1"].to_numpy(), g["unsafe_2"].to_numpy())
            rows.append({"benchmark": bench, "judge_1": j1, "judge_2": j2, **agr.as_dict()})
    return pd.DataFrame(rows, columns=["benchmark", "judge_1", "judge_2", "n", "percent", "kappa"])


def _attack_success(df: pd.DataFrame) -> pd.Series:
    """Per-item attack success on should-refuse items (unsafe verdict), NaN elsewhere."""
    harmful = df["should_refuse"].map(as_bool_or_none).eq(True)
    return unsafe_verdicts(df).where(harmful)


def paired_table(
    judgments: Mapping[Run, pd.DataFrame],
    pairs: Sequence[tuple[str, str]],
    tax_pairs: Sequence[tuple[str, str]],
    n_resamples: int,
    seed: int,
) -> pd.DataFrame:
    """Per run, pair (a, b) and benchmark: paired bootstrap of b - a and McNemar's exact test.

    ``pairs`` compare safety (per-item score) and the unsafe verdict on every item;
    ``tax_pairs`` ((reasoning, base)) compare attack success on should-refuse items, so the
    difference is the Reasoning Tax of ``reasoning`` over ``base``.
    """
    rows = []
    tests = [("safety", a, b) for a, b in pairs] + [("attack_success", b, a) for a, b in tax_pairs]
    for (run_seed, judge), df in judgments.items():
        df = df.assign(_unsafe=unsafe_verdicts(df), _success=_attack_success(df))
        for measure, a, b in tests:
            left, right = df[df["model"] == a], df[df["model"] == b]
            if left.empty or right.empty:
                continue
            both = left.merge(right, on=["benchmark", "id"], suffixes=("_a", "_b"))
            for bench, g in [*both.groupby("benchmark", sort=False), (ALL, both)]:
                if measure == "safety":
                    va, vb = g["safety_a"].astype(float), g["safety_b"].astype(float)
                    ua, ub = g["_unsafe_a"], g["_unsafe_b"]
                else:
                    va = ua = g["_success_a"]
                    vb = ub = g["_success_b"]
                d = paired_bootstrap(va.to_numpy(), vb.to_numpy(), n_resamples=n_resamples, seed=seed)
                mc = mcnemar_exact(ua.to_numpy(), ub.to_numpy())
                rows.append(
                    {"seed": run_seed, "judge": judge, "measure": measure, "a": a, "b": b,
                     "benchmark": bench, **d.as_dict(), "n01": mc.n01, "n10": mc.n10,
                     "mcnemar_n": mc.n, "mcnemar_p": mc.pvalue}
                )  # fmt: skip
    return pd.DataFrame(rows)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    write_text(df.to_csv(index=False), path)


def _seeds_md(table: pd.DataFrame, tests: pd.DataFrame, judge: str) -> str:
    seeds = [c for c in table.columns if c.startswith("seed ")]
    rows = [
        [r["model"], r["benchmark"], r["metric"], *(_pct(r[s]) for s in seeds), _pct(r["mean"]),
         _interval(r["ci_low"], r["ci_high"])]
        for _, r in table.iterrows()
    ]  # fmt: skip
    text = (
        f"# Across seeds\n\nJudge `{judge}`. Per-seed values (%), their mean and 95% Student-t "
        f"interval over seeds ({len(seeds)} seeds).\n\n"
        + markdown_table(["model", "benchmark", "metric", *seeds, "mean", "95% CI"], rows)
    )
    if not tests.empty:
        trows = [
            [f"{r['a']} → {r['b']}", r["benchmark"], r["metric"],
             f"{_pct(r['mean_a'])} {_interval(r['a_low'], r['a_high'])}",
             f"{_pct(r['mean_b'])} {_interval(r['b_low'], r['b_high'])}",
             f"{_pct(r['diff'], True)} {_interval(r['low'], r['high'], True)}", _p(r["pvalue"])]
            for _, r in tests.iterrows()
        ]  # fmt: skip
        text += (
            "\n## Paired test over seed-level means\n\nDifference b − a (points) with its 95% "
            "interval and the paired t-test's p-value (seed i of a with seed i of b).\n\n"
            + markdown_table(
                [
                    "a → b",
                    "benchmark",
                    "metric",
                    "a: mean [95% CI]",
                    "b: mean [95% CI]",
                    "b − a [95% CI]",
                    "p (paired t)",
                ],
                trows,
            )  # fmt: skip
        )
    return text


def _judges_md(judges: pd.DataFrame, agreement: pd.DataFrame) -> str:
    names = [c for c in judges.columns if c not in ("model", "benchmark", "metric", "range")]
    rows = [
        [r["model"], r["benchmark"], r["metric"], *(_pct(r[j]) for j in names), _pct(r["range"])]
        for _, r in judges.iterrows()
    ]
    text = (
        "# Across judges\n\nEvery headline metric (%) per judge (mean over seeds) on the same "
        "responses.\n\n" + markdown_table(["model", "benchmark", "metric", *names, "range (max − min)"], rows)
    )
    if not agreement.empty:
        arows = [
            [r["benchmark"], f"{r['judge_1']} / {r['judge_2']}", str(r["n"]),
             MISSING if math.isnan(r["percent"]) else f"{r['percent']:.1f}",
             MISSING if math.isnan(r["kappa"]) else f"{r['kappa']:.2f}"]
            for _, r in agreement.iterrows()
        ]  # fmt: skip
        text += (
            "\n## Inter-judge agreement\n\nOn the safe/unsafe verdict of the items both judges scored "
            "(every seed and model).\n\n"
            + markdown_table(["benchmark", "judges", "items", "agreement (%)", "Cohen's κ"], arows)
        )
    return text


def _sensitivity_md(judges: pd.DataFrame) -> str:
    rows: list[list[str]] = []
    for (metric, bench), g in judges.groupby(["metric", "benchmark"], sort=False):
        r = g["range"].astype(float).reset_index(drop=True)
        worst = str(g["model"].iloc[int(np.nanargmax(r.to_numpy()))]) if r.notna().any() else MISSING
        rows.append([str(metric), str(bench), _pct(r.mean()), _pct(r.max()), worst])
    return (
        "# Judge sensitivity\n\nHow far each headline number moves across judges (points: max − min "
        "over judges of the same model's value), mean and largest over models.\n\n"
        + markdown_table(
            ["metric", "benchmark", "mean range", "largest range", "model with the largest"], rows
        )
    )


def _paired_md(paired: pd.DataFrame) -> str:
    rows = [
        [str(r["seed"]), r["judge"], r["measure"], f"{r['a']} → {r['b']}", r["benchmark"], str(r["n"]),
         _pct(r["mean_a"]), _pct(r["mean_b"]),
         f"{_pct(r['diff'], True)} {_interval(r['low'], r['high'], True)}",
         f"{r['n10']}/{r['n01']}", _p(r["mcnemar_p"])]
        for _, r in paired.iterrows()
    ]  # fmt: skip
    return (
        "# Paired comparisons on the same items\n\n`safety`: per-item safety score, b − a with a paired "
        "bootstrap 95% interval; McNemar's exact test on the unsafe verdict (safety < 0.5). "
        "`attack_success`: should-refuse items of a (reasoning, base) pair, b − a = the Reasoning Tax. "
        "Discordant = items only a / only b is unsafe on.\n\n"
        + markdown_table(
            [
                "seed",
                "judge",
                "measure",
                "a → b",
                "benchmark",
                "items",
                "a (%)",
                "b (%)",
                "b − a [95% CI]",
                "discordant a/b",
                "p (McNemar)",
            ],
            rows,
        )  # fmt: skip
    )


def _first(df: pd.DataFrame, col: str) -> str:
    return _pct(df[col].iloc[0]) if len(df) else MISSING


def _pair_md(seeds: pd.DataFrame, tests: pd.DataFrame, paired: pd.DataFrame, judge: str) -> str:
    """Per compared pair: safety per benchmark and seed (a / b), the mean gain over seeds with
    its interval and paired t-test, and McNemar's p per seed (first judge)."""
    if tests.empty:  # no compared pair (one model, or pairs of models not evaluated)
        return ""
    safety = seeds[seeds["metric"] == "safety"]
    cols = [c for c in seeds.columns if c.startswith("seed ")]
    text = ""
    for (a, b), t in tests[tests["metric"] == "safety"].groupby(["a", "b"], sort=False):
        mc = paired[(paired["judge"] == judge) & (paired["measure"] == "safety") & (paired["a"] == a)
                    & (paired["b"] == b)]  # fmt: skip
        rows = []
        for _, r in t.iterrows():
            bench = r["benchmark"]
            va = safety[(safety["model"] == a) & (safety["benchmark"] == bench)]
            vb = safety[(safety["model"] == b) & (safety["benchmark"] == bench)]
            per_seed = [f"{_first(va, c)} / {_first(vb, c)}" for c in cols]
            item_bench = ALL if bench == AVERAGE else bench
            ps = mc[mc["benchmark"] == item_bench].sort_values("seed")["mcnemar_p"]
            rows.append(
                [str(bench), *per_seed, f"{_pct(r['mean_a'])} {_interval(r['a_low'], r['a_high'])}",
                 f"{_pct(r['mean_b'])} {_interval(r['b_low'], r['b_high'])}",
                 f"{_pct(r['diff'], True)} {_interval(r['low'], r['high'], True)}", _p(r["pvalue"]),
                 ", ".join(_p(float(p)) for p in ps) or MISSING]
            )  # fmt: skip
        header = ["benchmark", *(f"{c}: {a} / {b}" for c in cols), f"{a} mean [95% CI]",
                  f"{b} mean [95% CI]", "gain [95% CI]", "p (paired t over seeds)",
                  "p (McNemar, per seed)"]  # fmt: skip
        text += f"\n## Safety (%), {a} → {b}\n\n" + markdown_table(header, rows)
    return text


def tax_tests_md(paired: pd.DataFrame) -> str:
    """The Reasoning Tax's paired tests (first seed and judge), a section for ``tax.md``."""
    rows = paired[paired["measure"] == "attack_success"] if len(paired) else paired
    if rows.empty:
        return ""
    rows = rows[(rows["seed"] == rows["seed"].iloc[0]) & (rows["judge"] == rows["judge"].iloc[0])]
    body = [
        [f"{r['b']}-{r['a']}", r["benchmark"], str(r["n"]),
         f"{_pct(r['diff'], True)} {_interval(r['low'], r['high'], True)}", _p(r["mcnemar_p"])]
        for _, r in rows.iterrows()
    ]  # fmt: skip
    return (
        "\n## Paired tests\n\nAttack success of the reasoning model minus its base on the same "
        "should-refuse items (every attack pooled per benchmark): paired bootstrap 95% interval and "
        "McNemar's exact p.\n\n"
        + markdown_table(["pair", "benchmark", "items", "tax [95% CI]", "p (McNemar)"], body)
    )


def write_robustness(
    metrics: Mapping[Run, Mapping[str, Mapping[str, Any]]],
    judgments: Mapping[Run, pd.DataFrame],
    out_dir: str | os.PathLike[str],
    pairs: Sequence[tuple[str, str]],
    tax_pairs: Sequence[tuple[str, str]],
    n_resamples: int,
    seed: int,
) -> dict[str, pd.DataFrame]:
    """Write seeds / judges / judge_sensitivity / paired tables (md + csv); returns the frames."""
    out = Path(out_dir)
    head = headline_frame(metrics)
    first_judge = _ordered(head["judge"])[0]
    frames = {
        "seeds": seed_table(head, first_judge),
        "seed_tests": seed_tests(head, first_judge, pairs),
        "judges": judge_table(head),
        "agreement": agreement_table(judgments),
        "paired": paired_table(judgments, pairs, tax_pairs, n_resamples, seed),
    }
    for name, df in frames.items():
        _write_csv(df, out / f"{name}.csv")
    seeds_md = _seeds_md(frames["seeds"], frames["seed_tests"], first_judge)
    seeds_md += _pair_md(frames["seeds"], frames["seed_tests"], frames["paired"], first_judge)
    write_text(seeds_md, out / "seeds.md")
    write_text(_judges_md(frames["judges"], frames["agreement"]), out / "judges.md")
    write_text(_sensitivity_md(frames["judges"]), out / "judge_sensitivity.md")
    write_text(_paired_md(frames["paired"]), out / "paired.md")
    logger.info("wrote seed, judge and paired tables to %s", out)
    return frames
