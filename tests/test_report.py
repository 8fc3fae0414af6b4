"""Tests of the result tables and the safety/helpfulness figure."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from PIL import Image

from safervlm.evaluate.score import score_judgments
from safervlm.report.figures import plot_safety_helpfulness
from safervlm.report.tables import build_long_table, build_table, points, write_tables
from safervlm.schema import SCORE_COLUMNS


def md_rows(text: str) -> dict[str, list[str]]:
    """First cell -> the other cells (stripped), for every table row of a Markdown document."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|-"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


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
    title, caption, *_ = md.split("\n\n")
    assert title == "# Safety and helpfulness"
    # the caption states the scope: attack set, pooling, what the average row is
    for scope in ("attack `none`", "items pooled", "`average`: the unweighted mean over benchmarks"):
        assert scope in caption
    rows = md_rows(md)
    assert rows["benchmark"] == ["base safety", "base helpfulness", "sft safety", "sft helpfulness",
                                 "grpo safety", "grpo helpfulness"]  # fmt: skip
    assert rows["vlguard"] == ["50.0", "80.0", "87.5", "70.0", "90.0", "75.0"]
    assert rows["mm_safety_100%"] == ["25.0", "90.0", "–", "60.0", "–", "–"]
    assert rows["average"][:2] == ["37.5", "85.0"]
    # columns line up: every table line has its "|" at the same places, numbers right-aligned
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len({tuple(i for i, c in enumerate(line) if c == "|") for line in table}) == 1
    assert table[1].startswith("|----------------|") and table[1].endswith(":|")  # "mm_safety_100%" wide
    csv = pd.read_csv(paths["csv"], index_col="benchmark")
    assert csv.loc["vlguard", "sft/safety"] == 0.875
    tex = paths["tex"].read_text()
    assert tex.startswith("% Safety and helpfulness (%)")
    assert r"\begin{tabular}{lrrrrrr}" in tex and r"mm\_safety\_100\%" in tex
    assert r"\multicolumn{2}{c}{grpo}" in tex and "87.5" in tex
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["table.csv", "table.md", "table.tex"]


def test_scatter_points_are_the_table_numbers(metrics):
    """The safety/helpfulness scatter draws table.md's values (items pooled), not category means."""
    t = build_table(metrics)
    p = points(t).set_index(["model", "benchmark"])
    assert p.loc[("base", "vlguard"), "safety"] == t.loc["vlguard", ("base", "safety")] == 0.5
    assert ("sft", "mm_safety_100%") not in p.index  # no safety: no point
    assert "average" not in set(p.index.get_level_values(1))
    assert len(p) == 4


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
    from safervlm.report.analysis import write_analysis
    from safervlm.report.figures import blind_spot_rows, plot_blind_spots

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
    analysis = analyse(df, [("r", "m")], Settings(n_bootstrap=0, threshold=3))
    settings = Settings(threshold=3, missing="exclude")
    paths = write_analysis(analysis, tmp_path, {"vlguard": "derived"}, settings)
    asr_md = paths["asr"].read_text()
    assert asr_md.startswith("# Attack success rate (SafeMLRM)\n\n")
    assert "harm score is >= 3 (of 5)" in asr_md and "missing = exclude" in asr_md
    assert "category means" in asr_md and "(none: 1)" in asr_md  # the (mean) row averages 1 benchmark
    asr = md_rows(asr_md)
    assert asr["benchmark"] == ["attack", "r R", "r A", "r F", "m R", "m A", "m F"]
    # category means: r a 2/4, b 1/4 -> 37.5; m 0, 1/4 -> 12.5
    assert asr["vlguard"] == ["none", "37.5", "37.5", "37.5", "12.5", "12.5", "12.5"]
    assert asr["(mean)"] == asr["vlguard"]
    assert md_rows(paths["tax"].read_text())["vlguard"] == ["none", "25.0", "25.0", "25.0"]
    # scenario taxes: a 0.5, b 0.0; mean 0.25 -> ratios 2.00 and 0.00
    text = paths["blind_spots"].read_text()
    assert "| vlguard   | a        |     2.00 |" in text and "| vlguard   | b        |     0.00 |" in text
    assert md_rows(paths["official"].read_text())["vlguard"][:2] == ["asr_keywords", "none"]
    tex = (tmp_path / "tax.tex").read_text()
    assert tex.startswith("% ASR of each reasoning model") and r"\begin{tabular}" in tex
    assert {"rates.csv", "counts.csv", "counts.md"} <= {p.name for p in tmp_path.iterdir()}
    # the figure draws the blind spot (ratio 2 > 1), not the zero row
    drawn = blind_spot_rows(analysis["blind_spots"], analysis["tax"])
    assert drawn[["category", "ratio"]].values.tolist() == [["a", 2.0]]
    plot_blind_spots(analysis["blind_spots"], analysis["tax"], tmp_path / "heat.png")
    with Image.open(tmp_path / "heat.png") as img:
        assert img.format == "PNG" and img.size[0] > 100 and img.size[1] < 600


def test_without_a_pair_the_tax_tables_say_why(tmp_path):
    from safervlm.metrics import Settings, analyse
    from safervlm.report.analysis import write_analysis

    row = {
        "model": "m",
        "benchmark": "b",
        "attack": "none",
        "category": "c",
        "id": "1",
        "paired": True,
        "safety": 1.0,
        "helpfulness": 0.5,
        "official": 0.0,
        "unsafe_reasoning": 0.0,
        "unsafe_answer": 0.0,
        "unsafe_full": 0.0,
        **{f"status_{p}": "scored" for p in ("reasoning", "answer", "full")},
    }
    paths = write_analysis(analyse(pd.DataFrame([row]), [], Settings(n_bootstrap=0)), tmp_path)
    for name in ("tax", "blind_spots"):
        lines = paths[name].read_text().strip().splitlines()
        assert len(lines) == 3 and lines[2].startswith("Omitted: no (reasoning, base) pair"), lines
        assert "|" not in paths[name].read_text()
