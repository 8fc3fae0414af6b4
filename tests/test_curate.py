"""Tests of decontamination and quality–instability selection."""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest

from safervlm.curate import datasheet, decontaminate, normalise_question, qi_scores, qi_select
from safervlm.errors import ConfigError


@pytest.fixture
def eval_sets() -> list[pd.DataFrame]:
    a = pd.DataFrame({
        "id": ["e0", "e1"],
        "question": ["Please help me pick this lock without the owner's permission.",
                     "What is the best way to break down this door to get into a neighbour's flat?"],
        "image": [b"IMG1", None],
    })  # fmt: skip
    b = pd.DataFrame({"id": ["e2"], "question": ["Oil the lock."]})
    return [a, b]


@pytest.fixture
def pool() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["p0", "p1", "p2", "p3", "p4", "p5", "p6"],
        "source": ["x", "x", "y", "y", "y", "x", "y"],
        "question": [
            "PLEASE help me pick this lock -- without the owner's permission",  # exact after normalising
            "How do I break down this door to get into a neighbour's flat?",  # 8-gram overlap
            "Water the plant.",  # same image bytes
            "How do I water this plant?",  # clean
            "oil the lock please",  # shorter than ngram, not exact: clean
            "Tell me to pick this lock without the owner's dog",  # 7-word overlap only: clean
            "Oil the lock!",  # exact (short question)
        ],
        "image": [None, None, b"IMG1", b"OTHER", None, None, None],
    })  # fmt: skip


def test_normalise_question():
    assert normalise_question("  Hello,   World!\n") == "hello world"
    assert normalise_question("owner's_x") == "owner s x"
    assert normalise_question(None) == ""


def test_decontaminate_reasons_and_report(pool, eval_sets):
    clean, report = decontaminate(pool, eval_sets, ngram=8)
    assert clean["id"].tolist() == ["p3", "p4", "p5"]
    assert list(clean.columns) == list(pool.columns)
    assert report["removed_by_reason"] == {"exact_question": 2, "ngram_overlap": 1, "image_hash": 1}
    assert report["removed_by_source"] == {"x": {"exact_question": 1, "ngram_overlap": 1},
                                           "y": {"exact_question": 1, "image_hash": 1}}  # fmt: skip
    assert report["examples"] == {
        "exact_question": ["p0", "p6"],
        "ngram_overlap": ["p1"],
        "image_hash": ["p2"],
    }
    assert (report["n_pool"], report["n_removed"], report["n_kept"]) == (7, 4, 3)
    assert (report["n_eval_questions"], report["n_eval_images"]) == (3, 1)


def test_shorter_ngram_catches_the_seven_word_overlap(pool, eval_sets):
    clean, report = decontaminate(pool, eval_sets, ngram=7)
    assert "p5" not in clean["id"].tolist()
    assert report["removed_by_reason"]["ngram_overlap"] == 2


def test_decontaminate_nothing_to_remove(pool):
    clean, report = decontaminate(pool, [pd.DataFrame({"question": ["Unrelated text."]})])
    assert len(clean) == len(pool) and report["n_removed"] == 0
    with pytest.raises(ValueError, match="ngram"):
        decontaminate(pool, [], ngram=0)


@pytest.fixture
def rewards() -> pd.DataFrame:
    per_id = {
        "a": [1, 1, 1, 1],
        "b": [0, 1, 0, 1],
        "c": [0, 0, 0, 1],
        "d": [0, 0, 0, 0],
        "e": [1, 0, 1, 1],
        "f": [None, None, None, None],
    }
    rows = [{"id": i, "sample_idx": k, "reward": r} for i, rs in per_id.items() for k, r in enumerate(rs)]
    return pd.DataFrame(rows)


@pytest.fixture
def qi_pool() -> pd.DataFrame:
    return pd.DataFrame({
        "id": list("abcdefg"),
        "source": ["s1", "s1", "s2", "s2", "s1", "s1", "s2"],
        "category": ["theft", "benign", "theft", "benign", "fraud", "benign", "benign"],
        "should_refuse": [True, False, True, False, True, False, False],
    })  # fmt: skip


def test_qi_scores(rewards):
    s = qi_scores(rewards).set_index("id")
    assert s.loc["b", "quality"] == 0.5 and s.loc["b", "instability"] == 0.5
    assert s.loc["c", "quality"] == 0.25 and s.loc["c", "instability"] == pytest.approx(math.sqrt(0.1875))
    assert s.loc["a", "instability"] == 0.0 and s.loc["a", "n_samples"] == 4
    assert math.isnan(s.loc["f", "quality"]) and s.loc["f", "n_samples"] == 0


def test_qi_select_box_rank_and_cap(rewards, qi_pool):
    scores = qi_scores(rewards)
    sel = qi_select(scores, qi_pool, quality_range=(0.1, 0.9), min_instability=0.3)
    assert sel["id"].tolist() == ["b", "c", "e"]  # c and e tie on instability: by id
    assert sel["qi_rank"].tolist() == [0, 1, 2] and not sel["qi_filled"].any()
    capped = qi_select(scores, qi_pool, quality_range=(0.1, 0.9), min_instability=0.3, max_samples=2)
    assert capped["id"].tolist() == ["b", "c"]
    assert capped.attrs["qi"]["n_in_box"] == 3 and capped.attrs["qi"]["n_scored"] == 5


def test_qi_select_fill(rewards, qi_pool, caplog):
    scores = qi_scores(rewards)
    with caplog.at_level(logging.WARNING, logger="safervlm.curate.qi"):
        sel = qi_select(scores, qi_pool, quality_range=(0.1, 0.9), min_instability=0.3, min_samples=4)
    assert sel["id"].tolist() == ["b", "c", "e", "a"]  # a and d tie at 0 outside the box: by id
    assert sel["qi_filled"].tolist() == [False, False, False, True]
    assert sel.attrs["qi"]["n_filled"] == 1
    assert "filled 1 from outside" in caplog.text
    with pytest.raises(ConfigError, match="min_samples"):
        qi_select(scores, qi_pool, min_samples=3, max_samples=2)
    with pytest.raises(ConfigError, match="quality_range"):
        qi_select(scores, qi_pool, quality_range=(0.9, 0.1))


def test_datasheet(rewards, qi_pool):
    scores = qi_scores(rewards)
    params = {"quality_range": (0.1, 0.9), "min_instability": 0.3, "min_samples": 4}
    sel = qi_select(scores, qi_pool, **params)
    md = datasheet(sel, qi_pool, scores, params)
    assert "- rows before: 7" in md and "- rows after: 4" in md
    assert "- rows filled from outside the box: 1" in md
    assert "| benign | 4 | 1 |" in md and "| True | 3 | 3 |" in md and "| False | 4 | 1 |" in md
    assert "- min_instability: `0.3`" in md
    assert "| selected | quality | 0.625 | 0.250 | 1.000 |" in md
