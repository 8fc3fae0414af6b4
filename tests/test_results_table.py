"""bench/RESULTS.md opens with the current figure of every benchmark script, each checked.

The table is rendered from bench/current.json (bench/current_table.py); a figure whose run kept
raw results must equal the value in its bench/results/*.json file, any other must be printed
by the dated RESULTS.md section it came from, and every script under bench/ has a row.
"""

from __future__ import annotations

import copy
import importlib.util
from types import ModuleType
from typing import Any

import pytest
from helpers import ROOT


@pytest.fixture(scope="module")
def table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("current_table", ROOT / "bench" / "current_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_md_opens_with_the_current_table_and_every_figure_matches(table: ModuleType) -> None:
    text = (ROOT / "bench" / "RESULTS.md").read_text()
    assert table.problems(table.load_rows(), text) == []
    first_section = text.split("\n## ", 2)[1]
    assert first_section.startswith("Current figures"), "RESULTS.md must open with the current figures"
    assert table.START in first_section


def test_every_row_names_machine_date_command_and_a_source(table: ModuleType) -> None:
    for row in table.load_rows():
        assert row["machine"] and row["command"] and row["value"], row
        assert len(row["date"]) == 10 and row["date"][4] == "-", row
        assert ("json" in row["source"]) != ("section" in row["source"]), row
    assert any("json" in row["source"] for row in table.load_rows())


def _mutated(table: ModuleType, script: str, **changes: Any) -> list[dict[str, Any]]:
    rows = copy.deepcopy(table.load_rows())
    row = next(r for r in rows if r["script"] == script)
    row.update(changes)
    return rows


def test_a_figure_that_disagrees_with_its_raw_results_is_caught(table: ModuleType) -> None:
    text = (ROOT / "bench" / "RESULTS.md").read_text()
    rows = _mutated(table, "generate_served.py", value="0.99")
    found = table.problems(rows, text)
    assert any("generate_served_cpu_2026-12-06.json says 0.96, the table 0.99" in p for p in found), found
    assert any("stale" in p for p in found), found


def test_a_figure_its_section_does_not_print_and_a_missing_script_are_caught(table: ModuleType) -> None:
    text = (ROOT / "bench" / "RESULTS.md").read_text()
    rows = [r for r in _mutated(table, "qi_scoring.py", value="9.99") if r["script"] != "seeds_wall_time.py"]
    found = table.problems(rows, text)
    assert any("does not print 9.99" in p for p in found), found
    assert "seeds_wall_time.py: no row in bench/current.json" in found
    rows = _mutated(table, "grpo_step.py", source={"json": "bench/results/none.json", "path": ["x"]})
    assert any("none.json does not exist" in p for p in table.problems(rows, text))
