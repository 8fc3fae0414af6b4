"""MLflow logging of a stage into a real SQLite backend."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import mlflow_env

from safervlm import tracking


def test_log_stage_writes_params_metrics_steps_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    uri = mlflow_env(monkeypatch, tmp_path, "unit", SAFERVLM_CONFIG_HASH="abc123def456")
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
    assert run.data.tags["dvc_lock_md5"] in ("none", tracking.dvc_lock_md5())
    assert [a.path for a in client.list_artifacts(run_id)] == ["summary.json"]
    exp = client.get_experiment_by_name("unit")
    assert exp is not None and exp.artifact_location.startswith("file://")


def test_disabled_tracking_logs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFERVLM_MLFLOW", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/db.sqlite")
    assert tracking.log_stage("score", params={"a": 1}) is None
    assert not (tmp_path / "db.sqlite").exists()


def test_dvc_lock_md5_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dvc.lock present: the run is tagged with its md5 at log time; absent: "none"."""
    import hashlib

    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    lock = tmp_path / "repo" / "dvc.lock"
    lock.parent.mkdir()
    monkeypatch.setenv("SAFERVLM_MLFLOW", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "dvc")
    monkeypatch.setenv("SAFERVLM_MLFLOW_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("SAFERVLM_DVC_LOCK", str(lock))
    client = mlflow.tracking.MlflowClient(uri)

    absent = tracking.log_stage("fixtures")
    assert absent is not None and client.get_run(absent).data.tags["dvc_lock_md5"] == "none"

    body = b"schema: '2.0'\nstages:\n  pipeline:\n    cmd: snakemake all\n"
    lock.write_bytes(body)
    present = tracking.log_stage("fixtures")
    assert present is not None
    assert client.get_run(present).data.tags["dvc_lock_md5"] == hashlib.md5(body).hexdigest()

    lock.write_bytes(body + b"# repinned\n")  # read at run time, not cached
    again = tracking.log_stage("fixtures")
    assert again is not None
    assert client.get_run(again).data.tags["dvc_lock_md5"] == hashlib.md5(lock.read_bytes()).hexdigest()


def test_dvc_lock_defaults_to_the_git_toplevel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SAFERVLM_DVC_LOCK, the dvc.lock beside the package's repository is read."""
    import hashlib
    import subprocess

    monkeypatch.delenv("SAFERVLM_DVC_LOCK", raising=False)
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(tracking.__file__).parent,
    ).stdout.strip()
    lock = Path(top) / "dvc.lock"
    want = hashlib.md5(lock.read_bytes()).hexdigest() if lock.is_file() else "none"
    assert tracking.dvc_lock_md5() == want


def test_tracking_failure_names_the_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that cannot be written fails the stage with the URI in the message."""
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    uri = f"sqlite:///{blocker}/mlflow.db"
    monkeypatch.setenv("SAFERVLM_MLFLOW", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    want = re.escape(f"MLflow tracking at {uri} failed for stage 'score'")
    with pytest.raises(tracking.TrackingError, match=want):
        tracking.log_stage("score", params={"a": 1})


def test_server_uris_and_redaction() -> None:
    assert tracking.is_server("http://127.0.0.1:5000") and tracking.is_server("HTTPS://mlflow.example")
    assert not tracking.is_server("sqlite:///results/mlflow/mlflow.db")
    assert (
        tracking.redact("https://alice:s3cret@mlflow.example:8443/x")
        == "https://alice:***@mlflow.example:8443/x"
    )
    assert tracking.redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
