"""``safervlm import-opensafemlrm`` on small synthetic files in OpenSafeMLRM's formats."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from safervlm.cli import main
from safervlm.evaluate.opensafemlrm import import_opensafemlrm


def write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def judged(scores: list[tuple[int, int, int]]) -> dict:
    return {
        str(i): {
            "question": "q",
            "original_prompt": "p",
            "model_response": "<think>r</think>a",
            "reasoning_score": r,
            "answer_score": a,
            "full_response_score": f,
        }
        for i, (r, a, f) in enumerate(scores)
    }


def hist(counts: dict[str, dict[str, int]]) -> dict:
    return {k: counts[k] for k in ("reasoning_score", "answer_score", "full_response_score")}


@pytest.fixture
def published(tmp_path: Path) -> Path:
    root = tmp_path / "opensafemlrm"
    # per-sample judged files: reasoning model R1 and its base B, two scenarios
    write(root / "R1" / "Illegal.json", judged([(5, 1, 4), (4, 4, 5), (1, 0, 1), (-1, 2, 2)]))
    write(root / "R1" / "Privacy.json", judged([(5, 5, 5), (2, 2, 2)]))
    write(root / "B" / "Illegal.json", judged([(1, 1, 1), (5, 5, 5), (0, 0, 0), (1, 1, 1)]))
    write(root / "B" / "Privacy.json", judged([(1, 1, 1), (1, 1, 1)]))
    # histograms of a jailbreak setting: 4 samples per model and scenario
    h = {
        "reasoning_score": {"5": 2, "1": 1, "-1": 1},
        "answer_score": {"5": 1, "0": 3},
        "full_response_score": {"4": 1, "3": 1, "1": 1, "0": 1},
    }
    write(root / "statistic_results" / "figstep" / "R1" / "Illegal.json", hist(h))
    write(
        root / "statistic_results" / "figstep" / "B" / "Illegal.json",
        hist({**h, "full_response_score": {"1": 4}}),
    )
    # a histogram duplicating a per-sample file is ignored (the per-sample file wins)
    write(root / "statistic_results" / "baseline" / "R1" / "Illegal.json", hist({k: {"5": 9} for k in h}))
    return root


def test_import_rows_and_statuses(published: Path) -> None:
    out = import_opensafemlrm(published)
    assert len(out) == 4 + 2 + 4 + 2 + 4 + 4
    r1 = out[(out.model == "R1") & (out.attack == "baseline") & (out.category == "Illegal")]
    assert r1["unsafe_full"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert r1["status_reasoning"].tolist() == ["scored", "scored", "scored", "empty"]
    assert r1["status_answer"].tolist() == ["scored"] * 4  # 0 = keyword refusal, scored safe
    fig = out[(out.attack == "figstep")]
    assert not fig["paired"].any() and len(fig) == 8


def test_cli_writes_tables_with_hand_computed_values(published: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SAFERVLM_MLFLOW", "0")
    out = tmp_path / "out"
    assert (
        main(
            [
                "import-opensafemlrm",
                str(published),
                "--out",
                str(out),
                "--pair",
                "R1=B",
                "--n-bootstrap",
                "200",
            ]
        )
        == 0
    )
    for name in ("asr", "tax", "blind_spots", "self_correction", "official"):
        assert (out / f"{name}.md").is_file() and (out / f"{name}.csv").is_file()
    assert (out / "blind_spots.png").stat().st_size > 1000
    rates = pd.read_csv(out / "rates.csv")

    def value(model: str, attack: str, cat: str, metric: str) -> float:
        r = rates[
            (rates.model == model)
            & (rates.attack == attack)
            & (rates.category == cat)
            & (rates.metric == metric)
            & (rates.benchmark == "opensafemlrm")
        ]
        return float(r["value"].iloc[0])

    # R1 baseline: Illegal F = 2/4, Privacy F = 1/2 -> scenario mean 1/2; B: 1/4, 0 -> 1/8
    assert value("R1", "baseline", "Illegal", "asr_full") == pytest.approx(2 / 4)
    assert value("R1", "baseline", "(mean)", "asr_full") == pytest.approx((2 / 4 + 1 / 2) / 2)
    assert value("B", "baseline", "(mean)", "asr_full") == pytest.approx((1 / 4 + 0) / 2)
    # reasoning: Illegal 2/4 (the empty part counts, never succeeds)
    assert value("R1", "baseline", "Illegal", "asr_reasoning") == pytest.approx(2 / 4)
    # self-correction: Illegal R unsafe in 0, 1; A safe in 0 -> 1/2; Privacy R unsafe in 0, A unsafe -> 0
    assert value("R1", "baseline", "Illegal", "self_correction") == pytest.approx(1 / 2)
    assert value("R1", "baseline", "(mean)", "self_correction") == pytest.approx(1 / 4)
    # histograms: F >= 4 in 1 of 4; self-correction not computable
    assert value("R1", "figstep", "Illegal", "asr_full") == pytest.approx(1 / 4)
    assert value("R1", "figstep", "Illegal", "asr_reasoning") == pytest.approx(2 / 4)
    assert pd.isna(value("R1", "figstep", "Illegal", "self_correction"))
    tax = pd.read_csv(out / "tax.csv")
    t = tax[(tax.attack == "baseline") & (tax.benchmark == "opensafemlrm") & (tax.metric == "asr_full")]
    assert float(t["value"].iloc[0]) == pytest.approx(1 / 2 - 1 / 8)
    # cells compared with runs of spaces collapsed (tables may pad their columns)
    sc = re.sub(" +", " ", (out / "self_correction.md").read_text())
    assert "| opensafemlrm | figstep | n/c | n/c |" in sc
    assert "| opensafemlrm | baseline |" in re.sub(" +", " ", (out / "asr.md").read_text())


def test_bad_files_name_the_file(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SAFERVLM_MLFLOW", "0")
    write(tmp_path / "in" / "M" / "S.json", {"0": "not an object"})
    assert main(["import-opensafemlrm", str(tmp_path / "in"), "--out", str(tmp_path / "o")]) == 2
    assert f"{os.sep}M{os.sep}S.json" in capsys.readouterr().err
    bad = hist({"reasoning_score": {"5": 1}, "answer_score": {"5": 2}, "full_response_score": {"5": 1}})
    write(tmp_path / "h" / "statistic_results" / "baseline" / "M" / "S.json", bad)
    assert main(["import-opensafemlrm", str(tmp_path / "h"), "--out", str(tmp_path / "o")]) == 2
    assert "equal totals" in capsys.readouterr().err
    assert main(["import-opensafemlrm", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    write(tmp_path / "p" / "M" / "S.json", judged([(1, 1, 1)]))
    assert (
        main(["import-opensafemlrm", str(tmp_path / "p"), "--out", str(tmp_path / "o"), "--pair", "X=M"]) == 2
    )
    assert "['X']" in capsys.readouterr().err
