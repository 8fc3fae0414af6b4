"""MLflow logging for every stage.

Each stage logs one run at its end: params, summary metrics, per-step training
metrics, small artifacts, and tags (stage, git commit, config hash, md5 of dvc.lock, the
package modules the process ran, and ``record_id``). The tracking URI and experiment come
from ``MLFLOW_TRACKING_URI`` / ``MLFLOW_EXPERIMENT_NAME`` (the Snakefile exports them from
the config); set ``SAFERVLM_MLFLOW=0`` to disable tracking.

Light stages do not pay for MLflow (``import mlflow`` and opening the store cost seconds,
more than their work): when ``SAFERVLM_MLFLOW_RECORDS`` names a folder (config
``mlflow.records``), a stage writes its run as a record there — every field computed in
its own process, its artifacts copied — and :func:`flush_records` logs the pending records
in one process (the ``mlflow_runs`` job, and Snakemake's ``onsuccess``/``onerror`` for
targets it does not cover). Training (:data:`LIVE_STAGES`) and runs outside a records
folder log live, through the same code path.

Backends: a SQLite file (the default), which parallel Snakemake jobs share, so every
write happens under a file lock; or a tracking server (``http(s)://host:port``), which
serialises writes itself and stores artifacts where it was told to
(``mlflow server --artifacts-destination``): clients upload them over HTTP, so no local
artifact root is imposed on a server's experiment.

A tracking failure fails the stage (exit 2, the message names the URI), with either
backend: no result enters the DAG without its run (or its record). Against a server,
MLflow's own retries (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, default 7 with exponential
backoff, about 4 minutes; ``MLFLOW_HTTP_REQUEST_TIMEOUT``, default 120 s per request) ride
out a restart; the Snakefile checks that the server answers before any job runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import numbers
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import safervlm
from safervlm.errors import SafervlmError
from safervlm.io import md5_file

log = logging.getLogger(__name__)

DEFAULT_URI = "sqlite:///results/mlflow/mlflow.db"
MAX_PARAM_LEN = 6000
RECORD_FILE = "record.json"
RECORD_VERSION = 1
# Stages that log their run as they finish even when records are batched: training (hours of
# GPU, watched in the UI while the DAG runs) and the listing, which flushes the batch itself.
LIVE_STAGES = frozenset({"sft", "grpo", "mlflow_runs"})
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
def _file_lock(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _db_lock(uri: str) -> Iterator[None]:
    if uri.startswith("sqlite:///"):
        with _file_lock(Path(uri[len("sqlite:///") :] + ".lock")):
            yield
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


def records_dir() -> Path | None:
    """Where light stages leave their run records (``SAFERVLM_MLFLOW_RECORDS``), or None: log live."""
    path = os.environ.get("SAFERVLM_MLFLOW_RECORDS")
    return Path(path) if path else None


def log_stage(
    stage: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    step_metrics: Sequence[Mapping[str, Any]] | None = None,
    artifacts: list[str | Path] | None = None,
    run_name: str | None = None,
    live: bool | None = None,
) -> str | None:
    """Log one finished stage's run; None if tracking is disabled.

    With a records folder (``SAFERVLM_MLFLOW_RECORDS``) and a light stage, the run is written
    as a record there (no MLflow import, no store) and :func:`flush_records` logs it later:
    the record's id is returned. Otherwise (``live``, or a stage in :data:`LIVE_STAGES`) the
    run is logged now and its MLflow run id returned. Both paths log the same fields.
    """
    if not enabled():
        return None
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    record = _record(stage, uri, params, metrics, step_metrics, run_name)
    spool = records_dir()
    if spool is not None and not (stage in LIVE_STAGES if live is None else live):
        try:
            _write_record(spool, record, artifacts or [])
        except OSError as exc:
            raise TrackingError(f"cannot write the run record of stage {stage!r} to {spool}: {exc}") from exc
        log.info("run record %s of stage %s written to %s (logged in a batch)", record["id"], stage, spool)
        return str(record["id"])
    files = [Path(p) for p in artifacts or [] if Path(p).is_file()]
    try:
        with _db_lock(uri):
            client = _client(uri)
            exp_id = _experiment_id(client, uri, record["experiment"], record["artifact_root"])
            run_id = _log_record(client, exp_id, record, files)
    except Exception as exc:
        raise _failure(uri, stage, exc) from exc
    log.info("MLflow run %s logged for stage %s (%s)", run_id, stage, redact(uri))
    return run_id


def _failure(uri: str, stage: str, exc: Exception) -> TrackingError:
    return TrackingError(
        f"MLflow tracking at {redact(uri)} failed for stage {stage!r}: {type(exc).__name__}: {exc}\n"
        "Start the tracking server (docs/concepts/tracking.md), fix mlflow.tracking_uri, "
        "or set SAFERVLM_MLFLOW=0 to run untracked."
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _record(
    stage: str,
    uri: str,
    params: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    step_metrics: Sequence[Mapping[str, Any]] | None,
    run_name: str | None,
) -> dict[str, Any]:
    """Everything a run logs, computed in the stage's own process (its commit, its modules)."""
    now = _now_ms()
    steps = []
    for i, row in enumerate(step_metrics or []):
        step = int(row.get("step", i))
        steps += [
            [k.replace("/", "_"), float(v), step] for k, v in row.items() if k != "step" and _is_number(v)
        ]
    return {
        "version": RECORD_VERSION,
        "id": uuid.uuid4().hex,
        "stage": stage,
        "run_name": run_name or stage,
        "tracking_uri": uri,
        "experiment": os.environ.get("MLFLOW_EXPERIMENT_NAME", "safervlm"),
        "artifact_root": os.environ.get("SAFERVLM_MLFLOW_ARTIFACTS"),
        "start_time": now,
        "tags": {
            "stage": stage,
            "git_commit": git_commit(),
            "config_hash": os.environ.get("SAFERVLM_CONFIG_HASH", "unknown"),
            "dvc_lock_md5": dvc_lock_md5(),
            "safervlm_version": safervlm.__version__,
            "code_modules": ",".join(loaded_modules()),
        },
        "params": {_key(k): str(v)[:MAX_PARAM_LEN] for k, v in flatten(params or {}).items()},
        "metrics": {_key(k): float(v) for k, v in flatten(metrics or {}).items() if _is_number(v)},
        "step_metrics": steps,
    }


def _write_record(spool: Path, record: dict[str, Any], artifacts: list[str | Path]) -> Path:
    """``spool/<id>/record.json`` plus a copy of each artifact (a later rerun may overwrite the
    original before the batch logs it), renamed into place whole: a half-written record is
    never seen."""
    spool.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=spool))
    try:
        names = []
        for i, path in enumerate(p for p in map(Path, artifacts) if p.is_file()):
            dest = tmp / "files" / str(i) / path.name
            dest.parent.mkdir(parents=True)
            shutil.copyfile(path, dest)
            names.append(f"{i}/{path.name}")
        record = {**record, "end_time": _now_ms(), "artifacts": names}
        (tmp / RECORD_FILE).write_text(json.dumps(record, sort_keys=True))
        final = spool / str(record["id"])
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def pending_records(spool: str | os.PathLike[str]) -> list[Path]:
    """The record folders waiting in ``spool`` (cheap: no MLflow import), oldest name first."""
    try:
        entries = list(os.scandir(spool))
    except FileNotFoundError:
        return []
    return sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))


def flush_records(spool: str | os.PathLike[str]) -> list[str]:
    """Log every pending record in ``spool`` as an MLflow run, then remove it; return the run ids.

    One client per tracking store, one ``log_batch`` per run. Idempotent: each run is tagged
    ``record_id``, and a record whose run already finished is only removed (a flush that died
    between logging and removing); an unfinished one is deleted and logged again. Flushes
    take a lock on the folder, so two never log the same record.
    """
    spool = Path(spool)
    if not pending_records(spool):
        return []
    run_ids: list[str] = []
    with _file_lock(spool / ".lock"):
        records = []
        for folder in pending_records(spool):
            try:
                records.append((json.loads((folder / RECORD_FILE).read_text()), folder))
            except (OSError, ValueError) as exc:
                raise TrackingError(f"unreadable run record {folder}: {exc}") from exc
        records.sort(key=lambda r: (r[0]["start_time"], r[0]["id"]))
        stores: dict[tuple[str, str], list[tuple[dict[str, Any], Path]]] = {}
        for record, folder in records:
            stores.setdefault((record["tracking_uri"], record["experiment"]), []).append((record, folder))
        for (uri, experiment), batch in stores.items():
            try:
                with _db_lock(uri):
                    run_ids += _flush_store(uri, experiment, batch)
            except Exception as exc:
                raise _failure(uri, batch[0][0]["stage"], exc) from exc
    log.info("logged %d run records from %s", len(run_ids), spool)
    return run_ids


def _flush_store(uri: str, experiment: str, batch: list[tuple[dict[str, Any], Path]]) -> list[str]:
    from mlflow.entities import RunStatus, ViewType

    client = _client(uri)
    exp_id = _experiment_id(client, uri, experiment, batch[0][0]["artifact_root"])
    done: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_runs(
            [exp_id], filter_string="tags.record_id IS NOT NULL", run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000, page_token=token,
        )  # fmt: skip
        done.update({r.data.tags["record_id"]: r for r in page})
        token = page.token
        if not token:
            break
    run_ids = []
    for record, folder in batch:
        old = done.get(record["id"])
        if old is not None and old.info.status == RunStatus.to_string(RunStatus.FINISHED):
            run_ids.append(old.info.run_id)
        else:
            if old is not None:
                client.delete_run(old.info.run_id)
            files = [folder / "files" / name for name in record["artifacts"]]
            run_ids.append(_log_record(client, exp_id, record, files))
        shutil.rmtree(folder)
    return run_ids


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, uri: str, experiment: str, artifact_root: str | None) -> str:
    """The experiment's id, creating it if missing. A local store gets ``artifact_root`` as
    artifact root; a server chooses its own (its ``--artifacts-destination``, over HTTP)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return str(exp.experiment_id)
    location = Path(artifact_root).resolve().as_uri() if artifact_root and not is_server(uri) else None
    try:
        return str(client.create_experiment(experiment, artifact_location=location))
    except MlflowException as exc:
        # Another job created it between the lookup and here (no lock in front of a server).
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return str(client.get_experiment_by_name(experiment).experiment_id)


def _log_record(client: Any, exp_id: str, record: dict[str, Any], files: Sequence[Path]) -> str:
    """One run from a record: created with its tags, params and metrics in one ``log_batch``,
    its artifacts, then marked finished at the record's end time."""
    from mlflow.entities import Metric, Param

    tags = {**record["tags"], "record_id": record["id"]}
    run = client.create_run(exp_id, start_time=record["start_time"], tags=tags, run_name=record["run_name"])
    run_id: str = run.info.run_id
    ts = record["start_time"]
    metrics = [Metric(k, v, ts, 0) for k, v in record["metrics"].items()]
    metrics += [Metric(k, v, ts, step) for k, v, step in record["step_metrics"]]
    params = [Param(k, v) for k, v in record["params"].items()]
    client.log_batch(run_id, metrics=metrics, params=params)
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status="FINISHED", end_time=record.get("end_time") or _now_ms())
    return run_id


def _is_number(v: Any) -> bool:
    """Real numbers only: not bools, not numeric-looking strings (a hex hash can parse), not NaN."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return False
    return v == v
