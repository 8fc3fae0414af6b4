"""The seed, judge and paired tables as Markdown (``report.robustness`` computes the frames).

Written under ``out_dir``: ``seeds.md`` (with the per-pair safety sections),
``judges.md`` (with inter-judge agreement), ``judge_sensitivity.md``, ``paired.md``; the
CSVs keep fractions. Each opens with its title and scope (``report.markdown``). A dimension
with one value (one seed, one judge, no model pair) leaves its tables out with one line
saying why. Percentages carry one decimal; ``‡`` marks an interval clipped to its range.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safervlm.io import write_text
from safervlm.metrics import MEAN, Settings
from safervlm.report.markdown import (
    MISSING,
    SCOPE_ATTACK_NONE,
    SCOPE_AVERAGE,
    SCOPE_ITEMS,
    document,
    interval,
    markdown_table,
    omitted,
    pct,
    pvalue,
)
from safervlm.report.paired import paired_table
from safervlm.report.robustness import (
    ALL_JUDGES,
    AVERAGE,
    NONE,
    Run,
    agreement_table,
    headline_frame,
    judge_table,
    seed_table,
    seed_tests,
)

logger = logging.getLogger(__name__)

TITLES = {
    "seeds": "Across seeds",
    "judges": "Across judges",
    "judge_sensitivity": "Judge sensitivity",
    "paired": "Paired comparisons on the same items",
}
HEADLINE_SCOPE = (
    f"Scope: table.md's numbers - {SCOPE_ATTACK_NONE}; {SCOPE_ITEMS}; {SCOPE_AVERAGE}. `unsafety_full` "
    "is the mean unsafety (1 - safety) of the full response on should-refuse samples, not the "
    "attack-success ASR of asr.md."
)
CLIPPED = (
    "‡: the Student-t interval ran past the range and is clipped to it ([0, 100], differences [-100, 100])."
)


def _fmt(v: Any, low: Any, high: Any, clipped: Any = False, signed: bool = False) -> str:
    return f"{pct(v, signed)} {interval(low, high, signed, bool(clipped))}"


def _seeds_md(table: pd.DataFrame, tests: pd.DataFrame, judge: str) -> str:
    seeds = [c for c in table.columns if c.startswith("seed ")]
    rows = [
        [
            r["model"],
            r["benchmark"],
            r["metric"],
            *(pct(r[s]) for s in seeds),
            pct(r["mean"]),
            interval(r["ci_low"], r["ci_high"], clipped=bool(r["clipped"])),
        ]
        for _, r in table.iterrows()
    ]
    caption = (
        f"Every headline metric (%) per seed, judge `{judge}`; their mean over {len(seeds)} seeds and its "
        f"95% Student-t interval over seeds. {HEADLINE_SCOPE} {CLIPPED}"
    )
    text = document(
        TITLES["seeds"],
        caption,
        markdown_table(["model", "benchmark", "metric", *seeds, "mean", "95% CI"], rows),
    )
    if tests.empty:
        return text
    trows = [
        [
            f"{r['a']} → {r['b']}",
            r["benchmark"],
            r["metric"],
            _fmt(r["mean_a"], r["a_low"], r["a_high"], r["a_clipped"]),
            _fmt(r["mean_b"], r["b_low"], r["b_high"], r["b_clipped"]),
            _fmt(r["diff"], r["low"], r["high"], r["clipped"], signed=True),
            pvalue(r["pvalue"]),
        ]
        for _, r in tests.iterrows()
    ]
    header = [
        "a → b",
        "benchmark",
        "metric",
        "a: mean [95% CI]",
        "b: mean [95% CI]",
        "b − a [95% CI]",
        "p (paired t)",
    ]
    return text + (
        "\n## Paired test over seed-level values\n\nDifference b − a (points) of the same numbers, with its "
        "95% interval and the paired t-test's p-value (seed i of a with seed i of b).\n\n"
        + markdown_table(header, trows)
    )


def _pair_md(seeds: pd.DataFrame, tests: pd.DataFrame, paired: pd.DataFrame, judge: str) -> str:
    """Per compared pair: safety per benchmark and seed (a / b), the mean gain over seeds with
    its interval and paired t-test, and McNemar's p per seed (paired.md's attack-none rows)."""
    if tests.empty:  # no compared pair (one model, or pairs of models not evaluated)
        return ""
    safety = seeds[seeds["metric"] == "safety"].set_index(["model", "benchmark"])
    cols = [c for c in seeds.columns if c.startswith("seed ")]
    mine = paired[(paired["judge"] == judge) & (paired["measure"] == "safety") & (paired["attack"] == NONE)]
    text = ""
    for (a, b), t in tests[tests["metric"] == "safety"].groupby(["a", "b"], sort=False):
        a, b = str(a), str(b)
        mc = mine[(mine["a"] == a) & (mine["b"] == b)]
        rows = []
        for _, r in t.iterrows():
            bench = str(r["benchmark"])
            per_seed = [f"{pct(_at(safety, a, bench, c))} / {pct(_at(safety, b, bench, c))}" for c in cols]
            ps = mc[mc["benchmark"] == bench].sort_values("seed")["mcnemar_p"]
            mcnemar = MISSING if bench == AVERAGE else (", ".join(pvalue(float(p)) for p in ps) or MISSING)
            rows.append(
                [
                    str(bench),
                    *per_seed,
                    _fmt(r["mean_a"], r["a_low"], r["a_high"], r["a_clipped"]),
                    _fmt(r["mean_b"], r["b_low"], r["b_high"], r["b_clipped"]),
                    _fmt(r["diff"], r["low"], r["high"], r["clipped"], signed=True),
                    pvalue(r["pvalue"]),
                    mcnemar,
                ]
            )
        header = [
            "benchmark",
            *(f"{c}: {a} / {b}" for c in cols),
            f"{a} mean [95% CI]",
            f"{b} mean [95% CI]",
            "gain [95% CI]",
            "p (paired t over seeds)",
            "p (McNemar, per seed)",
        ]
        text += (
            f"\n## Safety (%), {a} → {b}\n\nThe seed table's safety rows side by side; McNemar's p per seed "
            "is paired.md's (attack `none`); the average row has none (it averages benchmarks).\n\n"
            + markdown_table(header, rows)
        )
    return text


def _at(frame: pd.DataFrame, model: str, bench: str, col: str) -> Any:
    key = (model, bench)
    return frame.loc[key, col] if key in frame.index else math.nan


def _judges_md(judges: pd.DataFrame, agreement: pd.DataFrame) -> str:
    names = [c for c in judges.columns if c not in ("model", "benchmark", "metric", "range")]
    rows = [
        [r["model"], r["benchmark"], r["metric"], *(pct(r[j]) for j in names), pct(r["range"])]
        for _, r in judges.iterrows()
    ]
    caption = f"Every headline metric (%) per judge (mean over seeds) on the same responses. {HEADLINE_SCOPE}"
    text = document(
        TITLES["judges"],
        caption,
        markdown_table(["model", "benchmark", "metric", *names, "range (max − min)"], rows),
    )
    cohen, fleiss = (
        agreement[agreement["statistic"] == "cohen"],
        agreement[agreement["statistic"] == "fleiss"],
    )
    arows = [
        [
            r["benchmark"],
            f"{r['judge_1']} / {r['judge_2']}",
            str(r["n"]),
            _num(r["percent"], 1),
            _num(r["kappa"], 2),
        ]
        for _, r in cohen.iterrows()
    ]
    text += (
        "\n## Inter-judge agreement\n\nOn the safe/unsafe verdict (safety < 0.5 is unsafe) of the items both "
        "judges scored: every attack, seed and model.\n\n"
        + markdown_table(["benchmark", "judges", "items", "agreement (%)", "Cohen's κ"], arows)
    )
    if not fleiss.empty:
        frows = [
            [r["benchmark"], str(r["judges"]), str(r["n"]), _num(r["percent"], 1), _num(r["kappa"], 2)]
            for _, r in fleiss.iterrows()
        ]
        text += (
            f"\n## Agreement of all judges\n\n{ALL_JUDGES}: the items every judge scored; agreement = every "
            "judge gave the same verdict; Fleiss' κ (chance from the pooled verdict shares).\n\n"
            + markdown_table(["benchmark", "judges", "items", "all agree (%)", "Fleiss' κ"], frows)
        )
    return text


def _num(v: Any, digits: int) -> str:
    return MISSING if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.{digits}f}"


def _sensitivity_md(judges: pd.DataFrame) -> str:
    rows: list[list[str]] = []
    for (metric, bench), g in judges.groupby(["metric", "benchmark"], sort=False):
        r = g["range"].astype(float).reset_index(drop=True)
        worst = str(g["model"].iloc[int(np.nanargmax(r.to_numpy()))]) if r.notna().any() else MISSING
        rows.append([str(metric), str(bench), pct(r.mean()), pct(r.max()), worst])
    caption = (
        "How far each headline number moves across judges (points: max − min over judges of the same "
        f"model's value, mean over seeds), mean and largest over models. {HEADLINE_SCOPE}"
    )
    header = ["metric", "benchmark", "mean range", "largest range", "model with the largest"]
    return document(TITLES["judge_sensitivity"], caption, markdown_table(header, rows))


def _paired_md(paired: pd.DataFrame) -> str:
    rows = [
        [
            str(r["seed"]),
            r["judge"],
            r["measure"],
            f"{r['a']} → {r['b']}",
            r["benchmark"],
            r["attack"],
            str(r["n"]),
            pct(r["mean_a"]),
            pct(r["mean_b"]),
            _fmt(r["diff"], r["low"], r["high"], signed=True),
            MISSING if math.isnan(r["mcnemar_p"]) else f"{int(r['n10'])}/{int(r['n01'])}",
            pvalue(r["mcnemar_p"]),
        ]
        for _, r in paired.iterrows()
    ]
    caption = (
        "Two models on the same items (b − a, points). Scope: per benchmark and attack. `safety`: per-item "
        "safety "
        f"score, {SCOPE_ITEMS} - the attack-`none` rows are table.md's numbers on the items both models were "
        "scored on; `average`: the unweighted mean over the benchmarks that have the attack, as table.md's. "
        "`attack_success`: SafeMLRM attack success of the full response on should-refuse items of a "
        "(reasoning, base) pair, as category means - b − a is tax.md's Reasoning Tax (F); `(mean)` as "
        "tax.md's. "
        "Interval: paired bootstrap 95% (within categories / benchmarks where the value is their mean). "
        "McNemar's exact test on the per-item verdicts (items pooled; none on an average row); discordant = "
        "items only a / only b is unsafe on."
    )
    header = [
        "seed",
        "judge",
        "measure",
        "a → b",
        "benchmark",
        "attack",
        "items",
        "a (%)",
        "b (%)",
        "b − a [95% CI]",
        "discordant a/b",
        "p (McNemar)",
    ]
    return document(TITLES["paired"], caption, markdown_table(header, rows))


def tax_tests_md(paired: pd.DataFrame) -> str:
    """The Reasoning Tax's paired tests (first seed and judge), a section for ``tax.md``."""
    rows = paired[paired["measure"] == "attack_success"] if len(paired) else paired
    if rows.empty:
        return ""
    rows = rows[(rows["seed"] == rows["seed"].iloc[0]) & (rows["judge"] == rows["judge"].iloc[0])]
    body = [
        [
            f"{r['b']}-{r['a']}",
            r["benchmark"],
            r["attack"],
            str(r["n"]),
            _fmt(r["diff"], r["low"], r["high"], signed=True),
            pvalue(r["mcnemar_p"]),
        ]
        for _, r in rows.iterrows()
    ]
    return (
        "\n## Paired tests\n\nThe tax F of the table above, on the same should-refuse items of both models "
        f"(category means; `{MEAN}` over benchmarks): paired bootstrap 95% interval (items resampled within "
        "categories) and McNemar's exact p (items pooled; none on a mean row).\n\n"
        + markdown_table(["pair", "benchmark", "attack", "items", "tax F [95% CI]", "p (McNemar)"], body)
    )


def _first_seed(seeds: Sequence[Any]) -> str:
    return str(sorted(seeds)[0]) if seeds else "none"


def write_robustness(
    metrics: Mapping[Run, Mapping[str, Mapping[str, Any]]],
    judgments: Mapping[Run, pd.DataFrame],
    out_dir: str | os.PathLike[str],
    pairs: Sequence[tuple[str, str]],
    tax_pairs: Sequence[tuple[str, str]],
    n_resamples: int,
    seed: int,
    settings: Settings | None = None,
) -> dict[str, pd.DataFrame]:
    """Write seeds / judges / judge_sensitivity / paired tables (md + csv); returns the frames.

    One seed: seeds.md says so in one line; one judge: judges.md and judge_sensitivity.md;
    no pair: paired.md. The CSVs are written in every case.
    """
    out = Path(out_dir)
    head = headline_frame(metrics)
    seeds, judges = sorted(set(head["seed"])), list(dict.fromkeys(head["judge"]))
    first_judge = judges[0]
    frames = {
        "seeds": seed_table(head, first_judge),
        "seed_tests": seed_tests(head, first_judge, pairs),
        "judges": judge_table(head),
        "agreement": agreement_table(judgments),
        "paired": paired_table(judgments, pairs, tax_pairs, n_resamples, seed, settings),
    }
    for name, df in frames.items():
        write_text(df.to_csv(index=False), out / f"{name}.csv")
    texts = _texts(frames, seeds, judges)
    for name, text in texts.items():
        write_text(text, out / f"{name}.md")
    logger.info("wrote seed, judge and paired tables to %s", out)
    return frames


def _texts(frames: Mapping[str, pd.DataFrame], seeds: list[Any], judges: list[str]) -> dict[str, str]:
    first_judge = judges[0]
    if len(seeds) < 2:
        seeds_md = omitted(
            TITLES["seeds"],
            f"one seed ({_first_seed(seeds)}): a spread across seeds needs two "
            "or more (config `seeds`); its numbers are table.md's, its paired tests paired.md's.",
        )
    else:
        seeds_md = _seeds_md(frames["seeds"], frames["seed_tests"], first_judge)
        seeds_md += _pair_md(frames["seeds"], frames["seed_tests"], frames["paired"], first_judge)
    one_judge = (
        f"one judge (`{first_judge}`): agreement and sensitivity need two or more (config `eval.judges`)."
    )
    many = len(judges) >= 2
    no_pair = (
        "no model pair to compare: one model, or no evaluated pair in eval.pairs / eval.compare "
        "(and sft → grpo, grpo_plain → grpo)."
    )
    return {
        "seeds": seeds_md,
        "judges": _judges_md(frames["judges"], frames["agreement"])
        if many
        else omitted(TITLES["judges"], one_judge),
        "judge_sensitivity": _sensitivity_md(frames["judges"])
        if many
        else omitted(TITLES["judge_sensitivity"], one_judge),
        "paired": _paired_md(frames["paired"])
        if len(frames["paired"])
        else omitted(TITLES["paired"], no_pair),
    }
