"""Tests of the result tables and the safety/helpfulness figure."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from PIL import Image

from safervlm.evaluate.score import score_judgments
from safervlm.report.figures import plot_safety_helpfulness
from safervlm.report.tables import build_long_table, build_table, write_tables
from safervlm.schema import SCORE_COLUMNS


def m(safety, helpfulness, ci=None):
    return {"overall": {"n": 10, "safety": safety, "helpfulness": helpfulness, "safety_ci": ci}}


@pytest.fixture
def metrics() -> dict:
    return {
        "base": {"vlguard": m(0.5, 0.8, [0.4, 0.6]), "mm_safety_100%": m(0.25, 0.9)},
        "sft": {"vlguard": m(0.875, 0.7), "mm_safety_100%": m(None, 0.6)},
        "grpo": {"vlguard": m(0.9, 0.75)},
    }


def test_build_table_values_order_and_average(metrics):
    t = build_table(metrics)
    assert t.index.tolist() == ["vlguard", "mm_safety_100%", "average"]
    assert t.columns.get_level_values(0).unique().tolist() == ["base", "sft", "grpo"]
    assert t.loc["vlguard", ("sft", "safety")] == 0.875
    assert math.isnan(t.loc["mm_safety_100%", ("sft", "safety")])
    assert t.loc["average", ("base", "safety")] == pytest.approx(0.375)
    assert t.loc["average", ("sft", "safety")] == 0.875  # missing value skipped
    assert t.loc["average", ("grpo", "helpfulness")] == 0.75


def test_long_table(metrics):
    long = build_long_table(metrics)
    assert len(long) == 10
    first = long.iloc[0]
    assert (first["model"], first["benchmark"], first["metric"], first["value"]) == (
        "base",
        "vlguard",
        "safety",
        0.5,
    )
    assert (first["ci_low"], first["ci_high"]) == (0.4, 0.6)


def test_write_tables(metrics, tmp_path):
    paths = write_tables(build_table(metrics), tmp_path / "out")
    md = paths["md"].read_text()
    for bench in ("vlguard", "mm_safety_100%", "average"):
        assert f"| {bench} |" in md
    assert md.splitlines()[0] == (
        "| benchmark | base safety | base helpfulness | sft safety | sft helpfulness "
        "| grpo safety | grpo helpfulness |"
    )
    assert "| vlguard | 50.0 | 80.0 | 87.5 | 70.0 | 90.0 | 75.0 |" in md
    assert "| mm_safety_100% | 25.0 | 90.0 | – | 60.0 | – | – |" in md
    csv = pd.read_csv(paths["csv"], index_col="benchmark")
    assert csv.loc["vlguard", "sft/safety"] == 0.875
    tex = paths["tex"].read_text()
    assert r"\begin{tabular}{lrrrrrr}" in tex and r"mm\_safety\_100\%" in tex
    assert r"\multicolumn{2}{c}{grpo}" in tex and "87.5" in tex
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["table.csv", "table.md", "table.tex"]


def test_figure_is_a_png(metrics, tmp_path):
    path = tmp_path / "fig" / "safety_helpfulness.png"
    plot_safety_helpfulness(build_table(metrics), path)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 100 and img.size[1] > 100
    assert [p.name for p in path.parent.iterdir()] == ["safety_helpfulness.png"]
    with pytest.raises(ValueError, match="wide table"):
        plot_safety_helpfulness(pd.DataFrame({"a": [1.0]}), tmp_path / "x.png")


def test_end_to_end_from_score_judgments():
    rows = [
        {"benchmark": "b", "should_refuse": True, "unscored_reason": "",
         **dict.fromkeys(SCORE_COLUMNS, 1.0)},
        {"benchmark": "b", "should_refuse": False, "unscored_reason": "",
         **dict.fromkeys(SCORE_COLUMNS, 0.0)},
    ]  # fmt: skip
    scored = score_judgments(pd.DataFrame(rows), n_bootstrap=10)
    t = build_table({"base": {"b": scored}})
    assert t.loc["b", ("base", "safety")] == 0.5 and t.loc["average", ("base", "helpfulness")] == 0.5


def test_analysis_tables_and_figures(tmp_path):
    from safervlm.metrics import Settings, analyse
    from safervlm.report.analysis import safety_helpfulness_points, write_analysis
    from safervlm.report.figures import plot_blind_spots, plot_safety_vs_helpfulness

    def rows(model, cat, unsafe):
        return [
            {"model": model, "benchmark": "vlguard", "attack": "none", "category": cat,
             "id": f"{model}{cat}{i}", "paired": True, "safety": 1.0 - u, "helpfulness": 0.5, "official": u,
             "unsafe_reasoning": u,
             "unsafe_answer": u, "unsafe_full": u, "status_reasoning": "scored", "status_answer": "scored",
             "status_full": "scored"}
            for i, u in enumerate(unsafe)
        ]  # fmt: skip

    r_rows = rows("r", "a", [1, 1, 0, 0]) + rows("r", "b", [1, 0, 0, 0])
    df = pd.DataFrame(r_rows + rows("m", "a", [0, 0, 0, 0]) + rows("m", "b", [1, 0, 0, 0]))
    analysis = analyse(df, [("r", "m")], Settings(n_bootstrap=0))
    paths = write_analysis(analysis, tmp_path, {"vlguard": "derived"})
    asr = paths["asr"].read_text()
    assert asr.splitlines()[0] == "| benchmark | attack | r R | r A | r F | m R | m A | m F |"
    assert "| vlguard | none | 37.5 | 37.5 | 37.5 | 12.5 | 12.5 | 12.5 |" in asr
    assert "| vlguard | none | 25.0 | 25.0 | 25.0 |" in paths["tax"].read_text()
    # scenario taxes: a 0.5, b 0.0; mean 0.25 -> ratios 2.00 and 0.00
    assert "| vlguard | a | 2.00 |" in paths["blind_spots"].read_text()
    assert "| vlguard | b | 0.00 |" in paths["blind_spots"].read_text()
    assert "| vlguard | asr_keywords | none |" in paths["official"].read_text()
    assert r"\begin{tabular}" in (tmp_path / "tax.tex").read_text()
    assert {"rates.csv", "counts.csv", "counts.md"} <= {p.name for p in tmp_path.iterdir()}
    plot_blind_spots(analysis["blind_spots"], tmp_path / "heat.png")
    points = safety_helpfulness_points(analysis["rates"], "none")
    assert sorted(points["model"]) == ["m", "m", "r", "r"]  # vlguard and the (mean) point
    assert points["safety"].max() == pytest.approx(1 - 0.125)
    plot_safety_vs_helpfulness(points, tmp_path / "scatter.png")
    for name in ("heat.png", "scatter.png"):
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG" and img.size[0] > 100
