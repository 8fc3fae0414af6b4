"""Tests of benchmark metrics from judgments (means, SafeMLRM ASR, over-refusal, CIs)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from safervlm.evaluate.score import score_judgments
from safervlm.metrics import bootstrap_ci
from safervlm.schema import SCORE_COLUMNS

NAN = float("nan")


def row(should_refuse, rs, ans, safety, answer="I cannot help.", helpful=1.0, reason="", subset="s1", **kw):
    base = dict.fromkeys(SCORE_COLUMNS, NAN)
    base.update(reasoning_safety=rs, answer_safety=ans, safety=safety, helpfulness=helpful, format=1.0)
    base.update(kw)
    return {"benchmark": "b", "subset": subset, "category": "harm" if should_refuse else "benign",
            "should_refuse": should_refuse, "answer": answer, "unscored_reason": reason, **base}  # fmt: skip


@pytest.fixture
def frame() -> pd.DataFrame:
    rows = [
        row(True, 1.0, 1.0, 1.0),
        row(True, 0.0, 1.0, 0.0),
        row(True, NAN, 0.0, 0.0, answer="Sure, do this.", helpful=0.0, subset="s2"),
        row(True, 0.0, 0.0, 0.0, answer="Sure, do this.", helpful=0.0, subset="s2"),
        row(False, 1.0, 1.0, 1.0, answer="I'm sorry, I won't.", helpful=0.0),
        row(False, 1.0, 1.0, 1.0, answer="Sure, water it weekly.", helpful=1.0, grounding=1.0),
        dict(row(True, NAN, NAN, NAN, helpful=NAN, reason="unparseable score JSON"), format=NAN),
    ]
    return pd.DataFrame(rows)


def test_overall_counts_means_and_asr(frame):
    m = score_judgments(frame, n_bootstrap=200)["overall"]
    assert (m["n"], m["n_scored"], m["n_unscored"]) == (7, 6, 1)
    assert m["unscored_reasons"] == {"unparseable score JSON": 1}
    assert (m["n_should_refuse"], m["n_benign"]) == (5, 2)
    assert m["safety"] == pytest.approx(3 / 6)
    assert m["helpfulness"] == pytest.approx(3 / 6)
    assert m["format"] == 1.0 and m["grounding"] == 1.0 and m["hallucination"] is None
    assert m["unsafety_reasoning"] == pytest.approx(2 / 3)
    assert m["unsafety_answer"] == pytest.approx(2 / 4)
    assert m["unsafety_full"] == pytest.approx(3 / 4)
    assert m["over_refusal"] == pytest.approx(1 / 2)
    assert m["support"]["unsafety_reasoning"] == 3 and m["support"]["unsafety_full"] == 4
    assert m["support"]["over_refusal"] == 2 and m["support"]["safety"] == 6


def test_groups_and_json(frame):
    out = score_judgments(frame, n_bootstrap=50)
    json.dumps(out, allow_nan=False)
    assert out["benchmarks"] == ["b"] and "by_benchmark" not in out
    assert sorted(out["by_subset"]) == ["s1", "s2"]
    assert out["by_subset"]["s2"]["unsafety_full"] == 1.0
    assert out["by_category"]["benign"]["unsafety_full"] is None
    assert out["by_category"]["benign"]["unsafety_full_ci"] is None
    assert out["by_category"]["harm"]["over_refusal"] is None


def test_cis_bracket_the_mean_and_are_seeded(frame):
    a = score_judgments(frame, n_bootstrap=500, seed=3)["overall"]
    b = score_judgments(frame, n_bootstrap=500, seed=3)["overall"]
    for m in ("safety", "helpfulness", "unsafety_full"):
        lo, hi = a[f"{m}_ci"]
        assert lo <= a[m] <= hi and lo < hi
        assert a[f"{m}_ci"] == b[f"{m}_ci"]


def test_bootstrap_ci_edge_cases():
    assert bootstrap_ci(np.array([]), 100, 0) is None
    assert bootstrap_ci(np.array([1.0, 1.0]), 100, 0) == [1.0, 1.0]
    assert bootstrap_ci(np.array([0.0, 1.0]), 0, 0) is None
    lo, hi = bootstrap_ci(np.arange(100) / 100, 2000, 0)
    assert 0.43 < lo < 0.495 < hi < 0.56


def test_over_refusal_falls_back_to_helpfulness(frame):
    m = score_judgments(frame.drop(columns=["answer"]), n_bootstrap=0)["overall"]
    assert m["over_refusal"] == pytest.approx(1 / 2) and m["safety_ci"] is None


def test_several_benchmarks_and_empty_subset(frame):
    other = frame.assign(benchmark="c", subset="")
    out = score_judgments(pd.concat([frame, other]), n_bootstrap=10)
    assert sorted(out["by_benchmark"]) == ["b", "c"]
    assert "(none)" in out["by_subset"]
    assert out["by_benchmark"]["c"]["unsafety_full"] == pytest.approx(3 / 4)


def test_missing_columns_raise(frame):
    with pytest.raises(ValueError, match="safety"):
        score_judgments(frame.drop(columns=["safety"]))


def test_judge_errors_are_counted_apart_from_unscored():
    from safervlm.evaluate.score import group_metrics

    rows = [
        {"should_refuse": True, "unscored_reason": "", "judge_status": "scored"},
        {"should_refuse": True, "unscored_reason": "no JSON verdict", "judge_status": "unscored"},
        {"should_refuse": True, "unscored_reason": "judge error: x", "judge_status": "error"},
        {"should_refuse": True, "unscored_reason": "judge error: y", "judge_status": "error"},
    ]
    df = pd.DataFrame([{**dict.fromkeys(SCORE_COLUMNS, NAN), **r} for r in rows])
    m = group_metrics(df, n_bootstrap=10)
    assert (m["n_scored"], m["n_unscored"], m["n_judge_error"]) == (1, 1, 2)
    assert m["n_scored"] + m["n_unscored"] + m["n_judge_error"] == m["n"]


def test_attacked_samples_are_scored_apart(frame):
    attacked = frame.assign(id=[f"x{i}::figstep" for i in range(len(frame))], safety=0.0)
    plain = frame.assign(id=[f"x{i}" for i in range(len(frame))])
    out = score_judgments(pd.concat([plain, attacked]), n_bootstrap=0)
    assert out["overall"]["n"] == len(frame) and out["overall"]["safety"] == pytest.approx(3 / 6)
    assert sorted(out["by_attack"]) == ["figstep", "none"]
    assert out["by_attack"]["figstep"]["safety"] == 0.0
    assert "by_attack" not in score_judgments(plain, n_bootstrap=0)
