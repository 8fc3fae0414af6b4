"""The audit's parts: expectation files, cell arithmetic, verdicts, pins, report cross-check."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from safervlm.errors import InputError
from safervlm.io import md5_file
from safervlm.report import audit


def rates(*rows: tuple[str, str, str, str, str, float]) -> audit.RateLookup:
    cols = ["model", "benchmark", "attack", "category", "metric", "value"]
    return audit.RateLookup(pd.DataFrame(rows, columns=cols))


def write(tmp_path: Path, cells: list[dict], name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"source": "test", "cells": cells}))
    return path


def cell(**kw: object) -> dict:
    return {
        "id": "c",
        "kind": "rate",
        "metric": "safety",
        "model": "m",
        "benchmarks": ["b"],
        "expected": 1.0,
        **kw,
    }


LOOK = rates(
    ("m", "b", "none", "(mean)", "safety", 0.8),
    ("m", "c", "none", "(mean)", "safety", 0.6),
    ("base", "b", "none", "(mean)", "safety", 0.5),
    ("base", "c", "none", "(mean)", "safety", 0.2),
    ("m", "b", "typo", "01-Illegal", "asr_full", 0.5),
    ("base", "b", "typo", "01-Illegal", "asr_full", 0.02),
    ("r2", "b", "none", "(mean)", "safety", 0.4),
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (cell(benchmarks=["b", "c"], scale=100), 70.0),
        (cell(kind="difference", versus="base", benchmarks=["b", "c"], scale=100), 35.0),
        (cell(kind="ratio", metric="asr_full", versus="base", attack="typo", category="01-Illegal"), 25.0),
        (cell(kind="difference", model=None, pairs=[["m", "base"], ["r2", "base"]]), (0.3 - 0.1) / 2),
        (cell(model=None, pairs=[["m", "base"], ["r2", "base"]]), (0.8 + 0.4) / 2),
    ],
)
def test_cell_arithmetic(tmp_path: Path, spec: dict, expected: float) -> None:
    spec = {k: v for k, v in spec.items() if v is not None}
    (c,) = audit.load_cells([write(tmp_path, [spec])])
    assert audit.cell_value(LOOK, c) == pytest.approx(expected)


def test_undefined_when_a_benchmark_has_no_rate(tmp_path: Path) -> None:
    (c,) = audit.load_cells([write(tmp_path, [cell(benchmarks=["b", "zzz"])])])
    assert math.isnan(audit.cell_value(LOOK, c))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"id": "x", "kind": "rate", "metric": "safety", "model": "m", "benchmarks": ["b"]}, "no 'expected'"),
        (cell(kind="sum"), "kind 'sum'"),
        (cell(metric="accuracy"), "metric 'accuracy'"),
        (cell(benchmarks=[]), "non-empty list"),
        (cell(kind="difference"), "needs versus"),
        (cell(model=None), "needs a model or pairs"),
        (cell(pairs=[["a"]]), "pairs must be"),
        (cell(expected="high"), "could not convert"),
    ],
)
def test_bad_cells_name_the_file_and_record(tmp_path: Path, spec: dict, message: str) -> None:
    spec = {k: v for k, v in spec.items() if v is not None}
    path = write(tmp_path, [cell(id="ok"), spec])
    with pytest.raises(InputError, match=message) as err:
        audit.load_cells([path])
    assert str(path) in str(err.value) and "[record 1]" in str(err.value)


def test_duplicate_ids_across_files_are_refused(tmp_path: Path) -> None:
    a, b = write(tmp_path, [cell()], "a.yaml"), write(tmp_path, [cell()], "b.yaml")
    with pytest.raises(InputError, match=r"cell id 'c' also in .*a\.yaml"):
        audit.load_cells([a, b])


def test_pairs_from_config_are_absent_until_configured(tmp_path: Path) -> None:
    path = write(tmp_path, [cell(model=None, kind="difference", pairs="config")])
    (unset,) = audit.load_cells([path])
    assert unset.unresolved and "audit.pairs" in unset.unresolved
    (c,) = audit.load_cells([path], config_pairs=[("m", "base")])
    assert c.sides() == [("m", "base")] and not c.unresolved


def judgments(results: Path, model: str, bench: str, payload: bytes = b"x") -> Path:
    path = audit.judgments_path(results, model, bench)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def test_verdicts_and_pins(tmp_path: Path) -> None:
    results = tmp_path / "results"
    p_m = judgments(results, "m", "b", b"model")
    judgments(results, "base", "b", b"base")
    specs = [
        cell(id="match", expected=0.8, tolerance=0.001),
        cell(id="mismatch", expected=0.7, tolerance=0.05),
        cell(id="absent", model="other"),
        cell(id="undefined", metric="helpfulness"),
        cell(id="own-pin", expected=0.8, pinned_md5="0" * 32),
    ]
    cells = audit.load_cells([write(tmp_path, specs)])
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "j": {"outs": [{"path": "results/eval/m/b/judgments.parquet", "md5": md5_file(p_m)}]}
                }
            }
        )
    )
    pins = audit.dvc_pins(lock, tmp_path)
    table = audit.audit_cells(cells, LOOK, audit.Artifacts(results), pins).set_index("id")
    assert table["verdict"].to_dict() == {
        "match": "match",
        "mismatch": "mismatch",
        "absent": "absent",
        "undefined": "undefined",
        "own-pin": "match",
    }
    assert table.loc["match", "pin"] == "pinned"
    assert table.loc["match", "artifact_md5"] == md5_file(p_m)
    assert table.loc["own-pin", "pin"] == "differs from pin"
    assert "other/b" in table.loc["absent", "detail"]
    assert "+0.1" in table.loc["mismatch", "detail"]


def test_report_cross_check_flags_an_edited_value(tmp_path: Path) -> None:
    csv = tmp_path / "rates.csv"
    rows = [["m", "b", "none", "(mean)", "safety", 0.8], ["base", "b", "none", "(mean)", "safety", 0.55]]
    pd.DataFrame(rows, columns=["model", "benchmark", "attack", "category", "metric", "value"]).to_csv(
        csv, index=False
    )
    checked = audit.cross_check_report(csv, LOOK)
    assert checked["verdict"].tolist() == ["match", "mismatch"]
    assert "base/b/none/(mean)/safety" in checked["id"].iloc[1]


def test_report_cross_check_names_a_bad_file(tmp_path: Path) -> None:
    csv = tmp_path / "rates.csv"
    csv.write_text("model,value\nm,1\n")
    with pytest.raises(InputError, match="missing columns") as err:
        audit.cross_check_report(csv, LOOK)
    assert str(csv) in str(err.value)


def test_cli_names_a_missing_expectations_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safervlm.cli import main

    missing = tmp_path / "nope.yaml"
    assert main(["audit", "--results", str(tmp_path), "--expected", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_cli_strict_exits_1_and_writes_the_audit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safervlm.cli import main

    exp = write(tmp_path, [cell(id="absent-only", model="nobody")])
    out = tmp_path / "audit"
    assert (
        main(["audit", "--results", str(tmp_path), "--expected", str(exp), "--out-dir", str(out), "--strict"])
        == 0
    )
    assert "**absent**" in (out / "audit.md").read_text()  # absent is reported, not a failure


def test_run_audit_names_an_unreadable_report(tmp_path: Path) -> None:
    csv = tmp_path / "rates.csv"
    csv.write_text("benchmark,value\nb,1\n")
    with pytest.raises(InputError, match="cannot read the report's rates") as err:
        audit.run_audit(tmp_path, [write(tmp_path, [cell()])], report_rates=csv)
    assert str(csv) in str(err.value)
