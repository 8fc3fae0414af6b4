"""The report's seed, judge, agreement and paired tables on crafted runs (hand-checked values)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from safervlm.report.compare import compare_grpo
from safervlm.report.paired import paired_table
from safervlm.report.robustness import (
    agreement_table,
    headline_frame,
    judge_table,
    seed_table,
    seed_tests,
)
from safervlm.report.robustness_md import tax_tests_md, write_robustness
from safervlm.schema import JUDGMENT_COLUMNS


def judgments(
    model: str, safety: list[float], refuse: bool = True, categories: list[str] | None = None
) -> pd.DataFrame:
    """Judged rows of one benchmark "b" (binary safety, every part judged like the whole)."""
    n = len(safety)
    return pd.DataFrame(
        {"id": [f"b/{i}" for i in range(n)], "benchmark": "b", "model": model, "safety": safety,
         "reasoning_safety": safety, "answer_safety": safety, "helpfulness": 0.5, "should_refuse": refuse,
         "category": categories or ["c"] * n, "reasoning": "r", "answer": "a",
         "response": "<think>r</think>a"}
    )  # fmt: skip


def metrics(safety: float) -> dict:
    return {"overall": {"safety": safety, "helpfulness": 0.5, "unsafety_full": 1 - safety}}


def test_seed_table_mean_interval_and_seed_test() -> None:
    runs = {
        (0, "j"): {"a/b": metrics(0.5), "c/b": metrics(0.6)},
        (1, "j"): {"a/b": metrics(0.7), "c/b": metrics(0.9)},
    }
    head = headline_frame(runs)
    table = seed_table(head, "j")
    row = table[(table["model"] == "a") & (table["benchmark"] == "b") & (table["metric"] == "safety")].iloc[0]
    assert (row["seed 0"], row["seed 1"], row["mean"]) == pytest.approx((0.5, 0.7, 0.6))
    # t interval with 1 degree of freedom: 0.6 ± 12.706 * 0.1 = [-0.67, 1.87], clipped to the range
    assert (row["ci_low"], row["ci_high"], row["clipped"]) == (0.0, 1.0, True)
    tests = seed_tests(head, "j", [("a", "c")])
    t = tests[(tests["benchmark"] == "b") & (tests["metric"] == "safety")].iloc[0]
    assert t["diff"] == pytest.approx(0.15)  # (0.1 + 0.2) / 2
    assert 0 < t["pvalue"] < 1
    # differences .1 and .2: 0.15 ± 12.706 * 0.05 = [-0.485, 0.785], inside [-1, 1]
    assert t["low"] == pytest.approx(0.15 - 12.7062 * 0.05, rel=1e-4) and not t["clipped"]
    # the average row is the mean over benchmarks per seed, as table.md's
    avg = table[(table["model"] == "a") & (table["benchmark"] == "average") & (table["metric"] == "safety")]
    assert avg["mean"].item() == pytest.approx(0.6)


def test_judge_table_range_and_agreement_counts() -> None:
    runs = {(0, "j1"): {"a/b": metrics(0.5)}, (0, "j2"): {"a/b": metrics(0.8)}}
    judges = judge_table(headline_frame(runs))
    row = judges[(judges["benchmark"] == "b") & (judges["metric"] == "safety")].iloc[0]
    assert row["range"] == pytest.approx(0.3)
    verdicts = {
        (0, "j1"): judgments("a", [0.0, 0.0, 1.0, 1.0, float("nan")]),
        (0, "j2"): judgments("a", [0.0, 1.0, 1.0, 1.0, 0.0]),
    }
    agr = agreement_table(verdicts)
    row = agr[agr["benchmark"] == "b"].iloc[0]
    # items both scored: 4 (the NaN one dropped), 3 agree; kappa = (0.75 - 0.5) / (1 - 0.5)
    assert (row["n"], row["percent"], row["kappa"]) == pytest.approx((4, 75.0, 0.5))


def test_paired_table_counts_discordant_items(tmp_path: Path) -> None:
    cats = ["x", "x", "x", "y"]
    run = {(0, "j"): pd.concat([judgments("a", [0.0, 0.0, 1.0, 1.0], categories=cats),
                                judgments("c", [1.0, 1.0, 1.0, 0.0], categories=cats)])}  # fmt: skip
    paired = paired_table(run, [("a", "c")], [("c", "a")], n_resamples=50, seed=0)
    safety = paired[(paired["measure"] == "safety") & (paired["benchmark"] == "b")].iloc[0]
    assert (safety["attack"], safety["scope"]) == ("none", "items")
    assert (safety["n"], safety["diff"]) == pytest.approx((4, 0.25))
    assert (safety["n10"], safety["n01"]) == (2, 1)  # a unsafe only on 2 items, c only on 1
    tax = paired[paired["measure"] == "attack_success"].iloc[0]
    # attack success as category means (tax.md's scope): a x 2/3 y 0 -> 1/3; c x 0 y 1 -> 1/2;
    # c - a = 1/6 (items pooled would say 1/4 - 2/4 = -1/4)
    assert (tax["a"], tax["b"], tax["scope"]) == ("a", "c", "category means")
    assert (tax["mean_a"], tax["mean_b"], tax["diff"]) == pytest.approx((1 / 3, 1 / 2, 1 / 6))
    tax_md = tax_tests_md(paired)
    assert "| c-a  | b         | none   |     4 | +16.7 [" in tax_md and "p (McNemar)" in tax_md
    frames = write_robustness({(0, "j"): {"a/b": metrics(0.5), "c/b": metrics(0.75)}}, run, tmp_path,
                              [("a", "c")], [], n_resamples=50, seed=0)  # fmt: skip
    assert set(frames) == {"seeds", "seed_tests", "judges", "agreement", "paired"}
    text = (tmp_path / "paired.md").read_text()
    assert "a → c" in text and "+25.0" in text and "attack" in text
    # one seed, one judge: their tables are left out with one line saying why
    for name in ("seeds", "judges", "judge_sensitivity"):
        lines = (tmp_path / f"{name}.md").read_text().strip().splitlines()
        assert len(lines) == 3 and lines[2].startswith("Omitted: one "), lines
    assert frames["agreement"].empty


def test_attacks_are_separate_rows_and_the_average_is_over_benchmarks() -> None:
    """Attacked copies (id::attack) never pool into a benchmark's row; the average row of an
    attack is the unweighted mean of its benchmarks' values, as table.md's average."""
    a = judgments("a", [0.0, 1.0, 0.0, 0.0])
    b = judgments("b", [1.0, 1.0, 1.0, 0.0])
    other = {"id": lambda d: d["id"].str.replace("b/", "o/"), "benchmark": "o"}
    attacked = {"id": lambda d: d["id"] + "::typo"}
    frame = pd.concat([a, b, a.assign(**other).head(2), b.assign(**other).head(2),
                       a.assign(**attacked), b.assign(safety=0.0).assign(**attacked)])  # fmt: skip
    paired = paired_table({(0, "j"): frame}, [("a", "b")], [], n_resamples=30, seed=0).set_index(
        ["benchmark", "attack"]
    )
    assert paired.loc[("b", "none"), "diff"] == pytest.approx(0.75 - 0.25)
    assert paired.loc[("o", "none"), "diff"] == pytest.approx(1.0 - 0.5)
    assert paired.loc[("b", "typo"), "diff"] == pytest.approx(0.0 - 0.25)
    # average over the two benchmarks (not the 6 pooled items: 5/6 - 2/6 = 0.5 by chance too)
    avg = paired.loc[("average", "none")]
    assert (avg["mean_a"], avg["mean_b"]) == pytest.approx(((0.25 + 0.5) / 2, (0.75 + 1.0) / 2))
    assert math.isnan(avg["mcnemar_p"]) and avg["scope"] == "items, mean over benchmarks"
    assert ("average", "typo") not in paired.index  # one benchmark has the attack


def test_grpo_comparison_carries_the_paired_gain_and_mcnemar_p(tmp_path: Path) -> None:
    runs, metric_paths, judgment_paths = {}, [], []
    for model, safety in (("grpo_plain", [0.0, 0.0, 1.0, 1.0]), ("grpo", [1.0, 1.0, 1.0, 1.0])):
        (tmp_path / model).mkdir()
        (tmp_path / model / "train_log.json").write_text('{"log_history": [], "metrics": {}}')
        runs[model] = str(tmp_path / model)
        folder = tmp_path / "eval" / model / "b"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(metrics(sum(safety) / 4)))
        df = judgments(model, safety)
        for col in JUDGMENT_COLUMNS:
            if col not in df.columns:
                df[col] = ""
        df.to_parquet(folder / "judgments.parquet")
        metric_paths.append(str(folder / "metrics.json"))
        judgment_paths.append(str(folder / "judgments.parquet"))
    compare_grpo(runs, metric_paths, str(tmp_path / "c.md"), str(tmp_path / "c.png"), judgment_paths)
    text = (tmp_path / "c.md").read_text()
    assert "p (McNemar)" in text
    # 2 discordant items, both in grpo's favour: exact two-sided p = 2 * 0.5**2 = 0.5
    assert "| b | 50.0 | 100.0 | +50.0 [" in text and "| 0.5 |" in text
