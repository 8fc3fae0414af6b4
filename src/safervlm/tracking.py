"""MLflow logging for every stage.

Each stage logs one run at its end: params, summary metrics, per-step training
metrics, small artifacts, and tags (stage, git commit, config hash). Parallel
Snakemake jobs share one SQLite database, so every write happens under a file lock.
The tracking URI and experiment come from ``MLFLOW_TRACKING_URI`` /
``MLFLOW_EXPERIMENT_NAME`` (the Snakefile exports them from the config); set
``SAFERVLM_MLFLOW=0`` to disable tracking.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import numbers
import os
import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import safervlm

log = logging.getLogger(__name__)

DEFAULT_URI = "sqlite:///results/mlflow/mlflow.db"
MAX_PARAM_LEN = 6000
_BAD_KEY_CHARS = re.compile(r"[^\w\-. :/]")


def _key(name: str) -> str:
    """MLflow accepts only alphanumerics, _ - . space : / in names."""
    return _BAD_KEY_CHARS.sub("_", name)


def enabled() -> bool:
    """True unless ``SAFERVLM_MLFLOW=0``."""
    return os.environ.get("SAFERVLM_MLFLOW", "1") != "0"


def git_commit() -> str:
    """The commit of the code that runs (with ``-dirty`` when its tree has changes), or ``unknown``.

    Asked of the package's own folder, not the working directory: jobs may run elsewhere.
    """
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=here
        ).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            cwd=here,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.strip() + ("-dirty" if dirty.strip() else "")


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


@contextlib.contextmanager
def _db_lock(uri: str) -> Iterator[None]:
    if uri.startswith("sqlite:///"):
        lock_path = Path(uri[len("sqlite:///") :] + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    else:
        yield


def log_stage(
    stage: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    step_metrics: Sequence[Mapping[str, Any]] | None = None,
    artifacts: list[str | Path] | None = None,
    run_name: str | None = None,
) -> str | None:
    """Log one finished stage as an MLflow run and return its run id (None if disabled)."""
    if not enabled():
        return None
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "safervlm")
    artifact_root = os.environ.get("SAFERVLM_MLFLOW_ARTIFACTS")
    with _db_lock(uri):
        mlflow.set_tracking_uri(uri)
        if mlflow.get_experiment_by_name(experiment) is None:
            location = Path(artifact_root).resolve().as_uri() if artifact_root else None
            mlflow.create_experiment(experiment, artifact_location=location)
        mlflow.set_experiment(experiment)
        tags = {
            "stage": stage,
            "git_commit": git_commit(),
            "config_hash": os.environ.get("SAFERVLM_CONFIG_HASH", "unknown"),
            "safervlm_version": safervlm.__version__,
        }
        with mlflow.start_run(run_name=run_name or stage, tags=tags) as run:
            flat = {_key(k): str(v)[:MAX_PARAM_LEN] for k, v in flatten(params or {}).items()}
            if flat:
                mlflow.log_params(flat)
            numeric = {_key(k): float(v) for k, v in flatten(metrics or {}).items() if _is_number(v)}
            if numeric:
                mlflow.log_metrics(numeric)
            for i, row in enumerate(step_metrics or []):
                step = int(row.get("step", i))
                vals = {
                    k.replace("/", "_"): float(v) for k, v in row.items() if k != "step" and _is_number(v)
                }
                if vals:
                    mlflow.log_metrics(vals, step=step)
            for path in artifacts or []:
                if Path(path).is_file():
                    mlflow.log_artifact(str(path))
            run_id: str = run.info.run_id
    log.info("MLflow run %s logged for stage %s (%s)", run_id, stage, uri)
    return run_id


def _is_number(v: Any) -> bool:
    """Real numbers only: not bools, not numeric-looking strings (a hex hash can parse), not NaN."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return False
    return v == v
