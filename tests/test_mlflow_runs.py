"""The MLflow-runs listing of the HTML report, against a real SQLite MLflow store."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from helpers import mlflow_env

from safervlm import tracking
from safervlm.report.mlflow_runs import COLUMNS, TRACKING_OFF, latest_runs, safe_uri
from safervlm.stages.mlflow_runs import mlflow_runs_stage


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return mlflow_env(monkeypatch, tmp_path, "unit")


def _log(monkeypatch: pytest.MonkeyPatch, config_hash: str, stage: str, run_name: str | None = None) -> str:
    monkeypatch.setenv("SAFERVLM_CONFIG_HASH", config_hash)
    run_id = tracking.log_stage(stage, params={"x": 1}, run_name=run_name)
    assert run_id is not None
    time.sleep(0.01)  # distinct start times (ms)
    return run_id


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_latest_run_per_stage_and_name_of_the_current_config_hash(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log(monkeypatch, "aaaaaaaaaaaa", "sft")  # an older config: not listed
    old_sft = _log(monkeypatch, "cur000000000", "sft")
    new_sft = _log(monkeypatch, "cur000000000", "sft")  # the rerun: the latest wins
    gen_a = _log(monkeypatch, "cur000000000", "generate", "generate:base:vlguard")
    gen_b = _log(monkeypatch, "cur000000000", "generate", "generate:sft:vlguard")
    other_sft = _log(monkeypatch, "bbbbbbbbbbbb", "sft")  # newer, but another config
    _log(monkeypatch, "cur000000000", "mlflow_runs")  # an earlier listing is no result

    monkeypatch.setenv("SAFERVLM_CONFIG_HASH", "cur000000000")
    md, out_csv = tmp_path / "runs.md", tmp_path / "runs.csv"
    rows = mlflow_runs_stage(str(md), str(out_csv))

    assert rows is not None
    assert [(r["stage"], r["run_name"], r["run_id"]) for r in rows] == [
        ("sft", "sft", new_sft),
        ("generate", "generate:base:vlguard", gen_a),
        ("generate", "generate:sft:vlguard", gen_b),
    ]
    assert old_sft not in md.read_text() and other_sft not in md.read_text()
    assert {r["config_hash"] for r in rows} == {"cur000000000"}
    assert {r["tracking_uri"] for r in rows} == {store}
    assert all(r["git_commit"] and r["start_time"].endswith("+00:00") for r in rows)
    assert _read_csv(out_csv) == rows
    assert list(_read_csv(out_csv)[0]) == COLUMNS
    text = md.read_text()
    assert f"Tracking URI: `{store}`" in text and "experiment: `unit`" in text
    for r in rows:
        assert f"| {r['stage']} | {r['run_name']} | {r['run_id']} | {r['start_time']} |" in text

    # The listing logs its own run, which the next listing leaves out again.
    own = latest_runs(store, "unit", "cur000000000", exclude=())
    assert [r["stage"] for r in own].count("mlflow_runs") == 1
    assert own[-1]["stage"] == "mlflow_runs"
    assert [r["run_id"] for r in latest_runs(store, "unit", "cur000000000")] == [r["run_id"] for r in rows]


def test_unknown_experiment_or_hash_lists_nothing(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log(monkeypatch, "aaaaaaaaaaaa", "sft")
    assert latest_runs(store, "no-such-experiment", "aaaaaaaaaaaa") == []
    monkeypatch.setenv("SAFERVLM_CONFIG_HASH", "ffffffffffff")
    md, out_csv = tmp_path / "runs.md", tmp_path / "runs.csv"
    assert mlflow_runs_stage(str(md), str(out_csv)) == []
    assert "No finished MLflow runs with this config hash" in md.read_text()
    assert _read_csv(out_csv) == []


def test_tracking_off_writes_a_listing_saying_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFERVLM_MLFLOW", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    md, out_csv = tmp_path / "runs.md", tmp_path / "runs.csv"
    assert mlflow_runs_stage(str(md), str(out_csv)) is None
    assert md.read_text() == TRACKING_OFF and "tracking was off" in TRACKING_OFF
    assert out_csv.read_text().strip() == ",".join(COLUMNS)
    assert not (tmp_path / "mlflow.db").exists()  # nothing read, nothing created


def test_credentials_are_not_listed() -> None:
    assert safe_uri("https://user:secret@mlflow.example.org/") == "https://mlflow.example.org/"
    assert safe_uri("sqlite:////abs/mlflow.db") == "sqlite:////abs/mlflow.db"


def test_cli_with_tracking_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safervlm.cli import main

    monkeypatch.setenv("SAFERVLM_MLFLOW", "0")
    md, out_csv = tmp_path / "report" / "mlflow_runs.md", tmp_path / "report" / "mlflow_runs.csv"
    assert main(["mlflow-runs", "--out", str(md), "--csv", str(out_csv)]) == 0
    assert md.read_text() == TRACKING_OFF and out_csv.exists()


def test_the_listing_logs_pending_run_records_first(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Light stages leave records; the listing logs them in one batch, then lists them."""
    spool = tmp_path / "records"
    monkeypatch.setenv("SAFERVLM_MLFLOW_RECORDS", str(spool))
    monkeypatch.setenv("SAFERVLM_CONFIG_HASH", "cur000000000")
    for bench in ("figstep", "vlguard"):
        tracking.log_stage("score", params={"x": 1}, run_name=f"score:sft:{bench}")
        time.sleep(0.01)
    assert len(tracking.pending_records(spool)) == 2
    rows = mlflow_runs_stage(str(tmp_path / "runs.md"), str(tmp_path / "runs.csv"))
    assert rows is not None and [r["run_name"] for r in rows] == ["score:sft:figstep", "score:sft:vlguard"]
    assert tracking.pending_records(spool) == []
    # Its own run is logged live, not left as a record.
    assert [r["stage"] for r in latest_runs(store, "unit", "cur000000000", exclude=())][-1] == "mlflow_runs"
