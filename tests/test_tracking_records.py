"""Light stages' run records and the batch that logs them: the same fields as a live run,
no ``import mlflow`` in the stage, and no duplicate runs however often the batch runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import mlflow_env

from safervlm import tracking
from safervlm.workflow_support import log_pending_runs

STAGE_KWARGS: dict[str, Any] = {
    "params": {"sft": {"epochs": 2}, "judge": "reference"},
    "metrics": {"by_subset": {"(none)": {"n": 3}}, "nan": float("nan"), "flag": True, "safety": 0.75},
    "step_metrics": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0, "train/reward": 0.5}],
    "run_name": "score:sft:vlguard",
}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = mlflow_env(monkeypatch, tmp_path, "records", SAFERVLM_CONFIG_HASH="abc123def456")
    monkeypatch.delenv("SAFERVLM_MLFLOW_RECORDS", raising=False)
    return uri


def _fields(uri: str, run_id: str) -> dict[str, Any]:
    """Everything a run logged, minus what differs between two runs (ids, times)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in run.data.metrics}
    root = Path(run.info.artifact_uri.removeprefix("file://"))
    artifacts = {a.path: (root / a.path).read_bytes() for a in client.list_artifacts(run_id)}
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.") and k != "record_id"}
    return {
        "name": run.info.run_name,
        "status": run.info.status,
        "params": run.data.params,
        "metrics": history,
        "tags": tags,
        "artifacts": artifacts,
    }


def _runs(uri: str, experiment: str = "records") -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else list(client.search_runs([exp.experiment_id]))


def test_a_record_logs_every_field_a_live_run_logs(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = tmp_path / "metrics.json"
    artifact.write_text('{"safety": 0.75}')
    live = tracking.log_stage("score", artifacts=[artifact, tmp_path / "missing.txt"], **STAGE_KWARGS)
    assert live is not None

    spool = tmp_path / "records"
    monkeypatch.setenv("SAFERVLM_MLFLOW_RECORDS", str(spool))
    record_id = tracking.log_stage("score", artifacts=[artifact], **STAGE_KWARGS)
    assert record_id is not None and (spool / record_id / tracking.RECORD_FILE).is_file()
    assert len(_runs(store)) == 1  # nothing logged yet
    # A rerun of the stage overwrites the output before the batch runs: the record kept its copy.
    artifact.write_text('{"safety": 0.5}')

    (run_id,) = tracking.flush_records(spool)
    assert tracking.pending_records(spool) == []
    batched, reference = _fields(store, run_id), _fields(store, live)
    assert batched == reference
    assert batched["params"] == {"sft.epochs": "2", "judge": "reference"}
    assert batched["metrics"]["loss"] == [(1, 2.0), (2, 1.0)] and "nan" not in batched["metrics"]
    assert batched["artifacts"] == {"metrics.json": b'{"safety": 0.75}'}
    assert batched["status"] == "FINISHED" and batched["tags"]["stage"] == "score"
    assert "tracking.py" in batched["tags"]["code_modules"].split(",")
    from mlflow.tracking import MlflowClient

    assert MlflowClient(store).get_run(run_id).data.tags["record_id"] == record_id


def test_flushing_again_never_duplicates_a_run(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "records"
    monkeypatch.setenv("SAFERVLM_MLFLOW_RECORDS", str(spool))
    ids = [str(tracking.log_stage("judge", params={"i": i}, run_name=f"judge:{i}")) for i in range(3)]
    kept = tmp_path / "kept"
    shutil.copytree(spool, kept)

    first = tracking.flush_records(spool)
    assert len(first) == 3 and len(_runs(store)) == 3
    assert tracking.flush_records(spool) == []  # nothing pending

    # A flush that died after logging, before removing its records: they come back.
    shutil.rmtree(spool)
    shutil.copytree(kept, spool)
    # ... and one whose run was created but never finished: logged again, the stub deleted.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    stub = next(r for r in _runs(store) if r.data.tags["record_id"] == ids[2])
    client.set_terminated(stub.info.run_id, status="RUNNING")
    again = tracking.flush_records(spool)
    assert again[:2] == first[:2] and again[2] != first[2]
    runs = _runs(store)
    assert sorted(r.data.tags["record_id"] for r in runs) == sorted(ids)  # one run per record
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_training_and_the_listing_log_live(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "records"
    monkeypatch.setenv("SAFERVLM_MLFLOW_RECORDS", str(spool))
    for stage in sorted(tracking.LIVE_STAGES):
        tracking.log_stage(stage, params={"a": 1})
    assert tracking.pending_records(spool) == []
    assert sorted(r.data.tags["stage"] for r in _runs(store)) == sorted(tracking.LIVE_STAGES)
    assert {"sft", "grpo"} <= tracking.LIVE_STAGES


def test_a_light_stage_does_not_import_mlflow(tmp_path: Path) -> None:
    """The point of records: the stage's process never pays for ``import mlflow``."""
    code = (
        "import sys\n"
        "from safervlm import tracking\n"
        "rid = tracking.log_stage('score', params={'a': 1}, metrics={'m': 1.0})\n"
        "print(rid, 'mlflow' in sys.modules)\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(tracking.__file__).parents[1]),
        "SAFERVLM_MLFLOW": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "SAFERVLM_MLFLOW_RECORDS": str(tmp_path / "records"),
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    rid, imported = out.stdout.split()
    assert imported == "False"
    record = json.loads((tmp_path / "records" / rid / tracking.RECORD_FILE).read_text())
    assert record["stage"] == "score" and record["metrics"] == {"m": 1.0}
    assert not (tmp_path / "mlflow.db").exists()


def test_the_end_of_run_hook_logs_what_is_pending(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "records"
    env = {"SAFERVLM_MLFLOW": "1", "SAFERVLM_MLFLOW_RECORDS": str(spool)}
    assert log_pending_runs(env) is None  # no folder yet: nothing to do
    monkeypatch.setenv("SAFERVLM_MLFLOW_RECORDS", str(spool))
    tracking.log_stage("audit", params={"a": 1})
    assert log_pending_runs({**env, "SAFERVLM_MLFLOW": "0"}) is None and tracking.pending_records(spool)
    assert log_pending_runs(env) is None
    assert tracking.pending_records(spool) == [] and [r.data.tags["stage"] for r in _runs(store)] == ["audit"]
    # A store that cannot be written: the hook says why, naming the URI; the record stays.
    tracking.log_stage("audit", params={"a": 2})
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    for folder in tracking.pending_records(spool):
        record = json.loads((folder / tracking.RECORD_FILE).read_text())
        record["tracking_uri"] = f"sqlite:///{blocker}/mlflow.db"
        (folder / tracking.RECORD_FILE).write_text(json.dumps(record))
    why = log_pending_runs(env)
    assert why is not None and f"sqlite:///{blocker}/mlflow.db" in why
    assert len(tracking.pending_records(spool)) == 1
