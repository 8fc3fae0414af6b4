"""MLflow logging of a stage into a real SQLite backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from safervlm import tracking


def test_log_stage_writes_params_metrics_steps_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("SAFERVLM_MLFLOW", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "unit")
    monkeypatch.setenv("SAFERVLM_MLFLOW_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("SAFERVLM_CONFIG_HASH", "abc123def456")
    artifact = tmp_path / "summary.json"
    artifact.write_text("{}")
    run_id = tracking.log_stage(
        "score",
        params={"sft": {"epochs": 2}, "judge": "reference"},
        # MLflow rejects "(" in names: a per-subset key like this one must be sanitised.
        metrics={"by_subset": {"(none)": {"n": 3}}, "nan": float("nan"), "flag": True},
        step_metrics=[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0, "train/reward": 0.5}],
        artifacts=[artifact, tmp_path / "missing.txt"],
    )
    assert run_id is not None
    client = mlflow.tracking.MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.data.params == {"sft.epochs": "2", "judge": "reference"}
    assert run.data.metrics["by_subset._none_.n"] == 3.0
    assert "nan" not in run.data.metrics and "flag" not in run.data.metrics
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [2.0, 1.0]
    assert run.data.tags["stage"] == "score" and run.data.tags["config_hash"] == "abc123def456"
    assert run.data.tags["git_commit"] != ""
    assert [a.path for a in client.list_artifacts(run_id)] == ["summary.json"]
    exp = client.get_experiment_by_name("unit")
    assert exp is not None and exp.artifact_location.startswith("file://")


def test_disabled_tracking_logs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFERVLM_MLFLOW", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/db.sqlite")
    assert tracking.log_stage("score", params={"a": 1}) is None
    assert not (tmp_path / "db.sqlite").exists()
