"""MLflow logging for every stage.

Each stage logs one run at its end: params, summary metrics, per-step training
metrics, small artifacts, and tags (stage, git commit, config hash, md5 of dvc.lock).
The tracking URI and experiment come from ``MLFLOW_TRACKING_URI`` /
``MLFLOW_EXPERIMENT_NAME`` (the Snakefile exports them from the config); set
``SAFERVLM_MLFLOW=0`` to disable tracking.

Backends: a SQLite file (the default), which parallel Snakemake jobs share, so every
write happens under a file lock; or a tracking server (``http(s)://host:port``), which
serialises writes itself and stores artifacts where it was told to
(``mlflow server --artifacts-destination``): clients upload them over HTTP, so no local
artifact root is imposed on a server's experiment.

A tracking failure fails the stage (exit 2, the message names the URI), with either
backend: no result enters the DAG without its run. Against a server, MLflow's own
retries (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, default 7 with exponential backoff, about
4 minutes; ``MLFLOW_HTTP_REQUEST_TIMEOUT``, default 120 s per request) ride out a
restart; the Snakefile checks that the server answers before any job runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import numbers
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import safervlm
from safervlm.errors import SafervlmError
from safervlm.io import md5_file

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


class TrackingError(SafervlmError):
    """Logging a stage's run failed; the message names the tracking URI."""


def is_server(uri: str) -> bool:
    """True for a tracking server (``http(s)://``), False for a database or local store."""
    return urllib.parse.urlsplit(uri).scheme.lower() in ("http", "https")


def redact(uri: str) -> str:
    """The URI without a password, for messages."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _package_git(*args: str) -> str:
    here = Path(__file__).resolve().parent
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=here).stdout


def dvc_lock_md5() -> str:
    """md5 of the repository's ``dvc.lock`` now (the pinned state a run starts from), or ``none``.

    The file is ``SAFERVLM_DVC_LOCK`` (the Snakefile exports ``{workflow.basedir}/dvc.lock``),
    else ``dvc.lock`` at the git toplevel of the package's own folder.
    """
    path = os.environ.get("SAFERVLM_DVC_LOCK")
    if not path:
        try:
            path = str(Path(_package_git("rev-parse", "--show-toplevel").strip()) / "dvc.lock")
        except (OSError, subprocess.CalledProcessError):
            return "none"
    try:
        return md5_file(path)
    except FileNotFoundError:
        return "none"


def git_commit() -> str:
    """The commit of the code that runs (with ``-dirty`` when its tree has changes), or ``unknown``.

    Asked of the package's own folder, not the working directory: jobs may run elsewhere.
    """
    try:
        sha = _package_git("rev-parse", "HEAD")
        dirty = _package_git("status", "--porcelain", "--untracked-files=no")
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


def loaded_modules() -> list[str]:
    """The package's modules this process has imported, as paths relative to the package.

    Logged with every stage (tag ``code_modules``): a test checks that each rule lists all
    of them as code inputs, so editing any module a stage ran reruns that stage.
    """
    pkg = Path(safervlm.__file__).resolve().parent
    out = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (name == "safervlm" or name.startswith("safervlm.")) and path:
            out.append(Path(path).resolve().relative_to(pkg).as_posix())
    return sorted(out)


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
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    try:
        with _db_lock(uri):
            run_id = _log_run(
                uri,
                stage,
                params=params,
                metrics=metrics,
                step_metrics=step_metrics,
                artifacts=artifacts,
                run_name=run_name,
            )
    except Exception as exc:
        raise TrackingError(
            f"MLflow tracking at {redact(uri)} failed for stage {stage!r}: {type(exc).__name__}: {exc}\n"
            "Start the tracking server (README: 'Experiment tracking'), fix mlflow.tracking_uri, "
            "or set SAFERVLM_MLFLOW=0 to run untracked."
        ) from exc
    log.info("MLflow run %s logged for stage %s (%s)", run_id, stage, redact(uri))
    return run_id


def _ensure_experiment(mlflow: Any, uri: str, experiment: str) -> None:
    """Create the experiment if missing. A local store gets ``SAFERVLM_MLFLOW_ARTIFACTS`` as
    artifact root; a server chooses its own (its ``--artifacts-destination``, over HTTP)."""
    from mlflow.exceptions import MlflowException

    if mlflow.get_experiment_by_name(experiment) is not None:
        return
    artifact_root = os.environ.get("SAFERVLM_MLFLOW_ARTIFACTS")
    location = Path(artifact_root).resolve().as_uri() if artifact_root and not is_server(uri) else None
    try:
        mlflow.create_experiment(experiment, artifact_location=location)
    except MlflowException as exc:
        # Another job created it between the lookup and here (no lock in front of a server).
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _log_run(
    uri: str,
    stage: str,
    *,
    params: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    step_metrics: Sequence[Mapping[str, Any]] | None,
    artifacts: list[str | Path] | None,
    run_name: str | None,
) -> str:
    import mlflow

    experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "safervlm")
    mlflow.set_tracking_uri(uri)
    _ensure_experiment(mlflow, uri, experiment)
    mlflow.set_experiment(experiment)
    tags = {
        "stage": stage,
        "git_commit": git_commit(),
        "config_hash": os.environ.get("SAFERVLM_CONFIG_HASH", "unknown"),
        "dvc_lock_md5": dvc_lock_md5(),
        "safervlm_version": safervlm.__version__,
        "code_modules": ",".join(loaded_modules()),
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
            vals = {k.replace("/", "_"): float(v) for k, v in row.items() if k != "step" and _is_number(v)}
            if vals:
                mlflow.log_metrics(vals, step=step)
        for path in artifacts or []:
            if Path(path).is_file():
                mlflow.log_artifact(str(path))
        run_id: str = run.info.run_id
    return run_id


def _is_number(v: Any) -> bool:
    """Real numbers only: not bools, not numeric-looking strings (a hex hash can parse), not NaN."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return False
    return v == v
