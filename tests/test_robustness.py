"""The report's seed, judge, agreement and paired tables on crafted runs (hand-checked values)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from safervlm.report.compare import compare_grpo
from safervlm.report.robustness import (
    agreement_table,
    headline_frame,
    judge_table,
    paired_table,
    seed_table,
    seed_tests,
    tax_tests_md,
    write_robustness,
)
from safervlm.schema import JUDGMENT_COLUMNS


def judgments(model: str, safety: list[float], refuse: bool = True) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [f"b/{i}" for i in range(len(safety))], "benchmark": "b", "model": model,
         "safety": safety, "should_refuse": refuse}
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
    # t interval with 1 degree of freedom: mean ± 12.706 * sd / sqrt(2), sd = 0.1414
    assert row["ci_high"] - row["mean"] == pytest.approx(12.7062 * 0.1, rel=1e-3)
    tests = seed_tests(head, "j", [("a", "c")])
    t = tests[(tests["benchmark"] == "b") & (tests["metric"] == "safety")].iloc[0]
    assert t["diff"] == pytest.approx(0.15)  # (0.1 + 0.2) / 2
    assert 0 < t["pvalue"] < 1


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
    run = {(0, "j"): pd.concat([judgments("a", [0.0, 0.0, 1.0, 1.0]), judgments("c", [1.0, 1.0, 1.0, 0.0])])}
    paired = paired_table(run, [("a", "c")], [("c", "a")], n_resamples=50, seed=0)
    safety = paired[(paired["measure"] == "safety") & (paired["benchmark"] == "b")].iloc[0]
    assert (safety["n"], safety["diff"]) == pytest.approx((4, 0.25))
    assert (safety["n10"], safety["n01"]) == (2, 1)  # a unsafe only on 2 items, c only on 1
    tax = paired[paired["measure"] == "attack_success"].iloc[0]
    assert (tax["a"], tax["b"], tax["diff"]) == ("a", "c", pytest.approx(-0.25))
    tax_md = tax_tests_md(paired)
    assert "| c-a | b | 4 | -25.0 [" in tax_md and "p (McNemar)" in tax_md
    frames = write_robustness({(0, "j"): {"a/b": metrics(0.5), "c/b": metrics(0.75)}}, run, tmp_path,
                              [("a", "c")], [], n_resamples=50, seed=0)  # fmt: skip
    assert set(frames) == {"seeds", "seed_tests", "judges", "agreement", "paired"}
    text = (tmp_path / "paired.md").read_text()
    assert "a → c" in text and "+25.0" in text


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
