"""Unit tests of QI scoring aggregation, the QI box and stratified selection, and the datasheet."""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest

from safervlm.config import QISelectParams
from safervlm.curate.datasheet import build_datasheet, render_markdown
from safervlm.curate.near_dup import jaccard, normalise_question, shingles
from safervlm.curate.qi import allocate, qi_select
from safervlm.curate.scoring import qi_scores
from safervlm.errors import ConfigError, InputError


def test_normalise_and_shingles():
    assert normalise_question("  Hello,   World!\n") == "hello world"
    assert normalise_question("owner's_x") == "owner s x"
    assert normalise_question(None) == "" and normalise_question(float("nan")) == ""
    assert shingles("abcdef", 5) == {"abcde", "bcdef"}
    assert shingles("abc", 5) == {"abc"} and shingles("", 5) == set()
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3) and jaccard(set(), set()) == 0.0


@pytest.fixture
def pool() -> pd.DataFrame:
    cats = ["theft"] * 6 + ["fraud"] * 3 + ["benign"] * 3
    return pd.DataFrame({
        "id": [f"p{i:02d}" for i in range(12)],
        "source": ["s1", "s2"] * 6,
        "category": cats,
        "should_refuse": [c != "benign" for c in cats],
    })  # fmt: skip


def per_answer(scores: dict[str, list[float | None]]) -> pd.DataFrame:
    rows = [{"id": i, "sample_idx": k, "score": s} for i, ss in scores.items() for k, s in enumerate(ss)]
    return pd.DataFrame(rows).astype({"score": float})


def test_qi_scores_mean_std_and_unscored(pool):
    answers = per_answer({"p00": [1, 1, 1, 1], "p01": [0, 1, 0, 1], "p02": [0, 0, 0, 1],
                          "p03": [None, None, None, 1], "p04": [None, 0.5, None, 1]})  # fmt: skip
    s = qi_scores(answers, pool).set_index("id")
    assert list(s.index) == pool["id"].tolist()  # pool order, every prompt listed
    assert s.loc["p01", "quality"] == 0.5 and s.loc["p01", "instability"] == 0.5
    assert s.loc["p02", "instability"] == pytest.approx(math.sqrt(0.1875))  # population std
    assert s.loc["p00", "instability"] == 0.0 and s.loc["p00", "n_scored"] == 4
    assert math.isnan(s.loc["p03", "quality"]) and s.loc["p03", "n_scored"] == 1  # < 2 scored
    assert s.loc["p04", "quality"] == 0.75 and s.loc["p04", "n_samples"] == 4
    assert s.loc["p09", "n_samples"] == 0 and math.isnan(s.loc["p09", "instability"])
    with pytest.raises(InputError, match="not in the pool"):
        qi_scores(per_answer({"zz": [1, 0]}), pool)


@pytest.mark.parametrize(
    ("counts", "target", "mode", "expected"),
    [
        ({"a": 60, "b": 30, "c": 10}, 10, "proportional", {"a": 6, "b": 3, "c": 1}),
        ({"a": 5, "b": 5, "c": 5}, 10, "proportional", {"a": 4, "b": 3, "c": 3}),  # remainder: by name
        ({"a": 60, "b": 30, "c": 2}, 12, "equal", {"a": 5, "b": 5, "c": 2}),  # c's unused share
        ({"a": 3, "b": 3}, 10, "equal", {"a": 3, "b": 3}),  # fewer than the target: all
    ],
)
def test_allocate(counts, target, mode, expected):
    quota = allocate(counts, target, mode)
    assert quota == expected
    assert sum(quota.values()) == min(target, sum(counts.values()))


def scores_frame(values: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"id": i, "quality": q, "instability": s, "n_scored": 4} for i, (q, s) in values.items()]
    )


@pytest.fixture
def scores() -> pd.DataFrame:
    # theft p00..p05, fraud p06..p08, benign p09..p11
    return scores_frame({
        "p00": (0.5, 0.4), "p01": (0.5, 0.3), "p02": (0.5, 0.3), "p03": (0.5, 0.3), "p04": (0.95, 0.5),
        "p05": (0.5, 0.0), "p06": (0.4, 0.2), "p07": (0.4, 0.2), "p08": (0.1, 0.1), "p09": (0.6, 0.25),
        "p10": (0.6, 0.25), "p11": (float("nan"), float("nan")),
    })  # fmt: skip


def test_box_bounds_are_inclusive(scores, pool):
    params = QISelectParams(quality_range=[0.1, 0.9], min_instability=0.1)
    sel, info = qi_select(scores, pool, params)
    # p04 quality 0.95 and p05 instability 0 fall outside; p08 sits on both bounds; p11 is unscored.
    assert sel["id"].tolist() == ["p00", "p01", "p02", "p03", "p06", "p07", "p08", "p09", "p10"]
    assert (info["n_scored"], info["n_unscored"], info["n_in_box"]) == (11, 1, 9)
    assert {"quality", "instability", "n_scored", "qi_rank"} <= set(sel.columns)
    assert list(sel.columns[: len(pool.columns)]) == list(pool.columns)


def test_stratified_target_and_seeded_ties(scores, pool):
    params = QISelectParams(quality_range=[0.0, 1.0], min_instability=0.1, target_size=6)
    picks = {}
    for seed in range(8):
        sel, info = qi_select(scores, pool, params, seed=seed)
        # box: theft 5 (p00..p04), fraud 3 (p08 on the bound), benign 2 -> quotas of 6: 3.0 / 1.8 / 1.2
        assert info["quotas"] == {"benign": 1, "fraud": 2, "theft": 3}
        assert sel[sel["category"] == "fraud"]["id"].tolist() == ["p06", "p07"]
        theft = sel[sel["category"] == "theft"]["id"].tolist()
        # most unstable first: p04 (0.5), p00 (0.4); then one of the three tied at 0.3 by the RNG
        assert {"p04", "p00"} <= set(theft) and len(theft) == 3
        picks[seed] = tuple(sel["id"])
        again, _ = qi_select(scores.sample(frac=1, random_state=seed), pool, params, seed=seed)
        assert tuple(again["id"]) == picks[seed]  # input order does not matter, the seed does
    assert len(set(picks.values())) > 1, "the seed never changed how ties were broken"


def test_fewer_than_target_warns(scores, pool, caplog):
    params = QISelectParams(quality_range=[0.0, 1.0], min_instability=0.45, target_size=3)
    with caplog.at_level(logging.WARNING, logger="safervlm.curate.qi"):
        sel, _ = qi_select(scores, pool, params)
    assert sel["id"].tolist() == ["p04"] and "fewer than target_size 3" in caplog.text


def test_empty_box_and_bad_params_fail_clearly(scores, pool):
    params = QISelectParams(quality_range=[0.97, 1.0], min_instability=0.0)
    with pytest.raises(InputError, match=r"selects none of 11 scored prompts.*quality \[0.1, 0.95\]") as e:
        qi_select(scores, pool, params, scores_path="results/data/qi_scores.parquet")
    assert "results/data/qi_scores.parquet" in str(e.value)
    nan = scores.assign(quality=float("nan"))
    with pytest.raises(InputError, match="no prompt of 12 has a quality"):
        qi_select(nan, pool, QISelectParams())
    for bad, match in (
        ({"quality_range": [0.9, 0.1]}, "low 0.9 > high 0.1"),
        ({"allocation": "nope"}, "allocation"),
    ):
        with pytest.raises(ConfigError, match=match):
            QISelectParams(**bad)


def test_datasheet_tables(scores, pool):
    params = QISelectParams(quality_range=[0.0, 1.0], min_instability=0.1, target_size=6)
    sel, info = qi_select(scores, pool, params)
    decon = {
        "n_pool": 15, "n_removed": 3, "n_kept": 12,
        "removed_by_reason": {"exact_text": 1, "near_text": 0, "near_image": 2},
        "removed_by_benchmark": {"vlguard": {"exact_text": 1, "near_text": 0, "near_image": 2}},
        "removed_by_source": {"s1": {"exact_text": 1, "near_text": 0, "near_image": 2}},
    }  # fmt: skip
    summary = {"by_source": {"s1": 9, "s2": 6}, "by_category": {"theft": 7, "fraud": 4, "benign": 4}}
    sheet = build_datasheet(selected=sel, clean=pool, scores=scores, info=info, pool_summary=summary,
                            decontamination=decon, params={"seed": 0}, sha256="ab" * 32)  # fmt: skip
    assert sheet["sources"]["s1"] == {"pool": 9, "removed_by_decontamination": 3, "clean": 6,
                                      "selected": int((sel["source"] == "s1").sum())}  # fmt: skip
    assert sheet["categories"]["theft"] == {"pool": 7, "clean": 6, "selected": 3}
    md = render_markdown(sheet, "fig.png")
    assert "| vlguard | 1 | 0 | 2 | 3 |" in md and "| theft | 7 | 6 | 3 |" in md
    assert "instability >= 0.1" in md and "![QI scatter and categories](fig.png)" in md
    assert f"sha256: `{'ab' * 32}`" in md


def test_scores_from_one_judging_pass():
    """``score: reward`` reuses the judgments: the same values as the reward judging afresh."""
    from safervlm.curate.scoring import answers_frame, score_answers
    from safervlm.embedded.world import UNSAFE_TASKS, response_for
    from safervlm.judge import get_judge
    from safervlm.rewards import get_reward

    task = UNSAFE_TASKS[0]
    prompts = pd.DataFrame({
        "id": ["u0", "u1"], "benchmark": "spa_vl", "subset": "train", "category": task.category,
        "question": [f"How do I {task.text}?"] * 2, "should_refuse": [True, True],
        "image_objects": [f'["{task.obj}"]'] * 2, "reference": "", "source": "spa_vl",
    })  # fmt: skip
    comply = f"<think>The image shows a {task.obj}. This is fine to help with.</think>Step 1: do it."
    answers = [[response_for(task), comply], [comply, comply]]
    responses = answers_frame(prompts, answers, "tiny")
    assert responses["sample_idx"].tolist() == [0, 1, 0, 1]
    judge = get_judge("reference")
    safety = score_answers(responses, judge, score="safety")
    assert safety["score"].tolist() == [1.0, 0.0, 0.0, 0.0]
    s = qi_scores(safety, prompts).set_index("id")
    assert (s.loc["u0", "quality"], s.loc["u0", "instability"]) == (0.5, 0.5)
    assert (s.loc["u1", "quality"], s.loc["u1", "instability"]) == (0.0, 0.0)
    reward = score_answers(responses, judge, score="reward")
    fresh = get_reward("structured", judge=judge)(
        responses["question"].tolist(),
        responses["response"].tolist(),
        **{
            c: responses[c].tolist()
            for c in ("id", "question", "should_refuse", "image_objects", "reference")
        },
    )
    assert reward["score"].tolist() == pytest.approx(fresh)
    assert reward["score"].iloc[0] > reward["score"].iloc[1]
    with pytest.raises(ConfigError, match="curate.score"):
        score_answers(responses, judge, score="vibes")
