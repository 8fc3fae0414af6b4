"""Helpers the Snakefile calls at parse time: config path checks and the tracking env.

Kept in the package (not in ``rules/common.smk``) so they are unit-tested and the
workflow files stay declarations.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safervlm.codegraph import code_closure, code_digest
from safervlm.plugins import JUDGES, module_file

__all__ = [
    "benchmark_module",
    "code_closure",
    "code_digest",
    "fill_benchmarks",
    "fixture_writer_module",
    "judge_module",
    "launcher_env",
    "log_pending_runs",
    "missing_paths",
    "registered_benchmarks",
    "stage_module",
    "tracking_env",
    "tracking_server_error",
    "validate_config",
]


CATALOG = Path(__file__).parent / "benchmarks" / "catalog.py"


def registered_benchmarks(catalog: Path = CATALOG) -> list[str]:
    """The registered benchmarks in report order: the names in ``_MODULES`` of the catalog,
    read from its source so that parsing the Snakefile imports no benchmark module (a test
    checks the list equals ``catalog.BENCHMARKS``)."""
    tree = ast.parse(catalog.read_text(), filename=str(catalog))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_MODULES" for t in node.targets
        ) and isinstance(node.value, ast.Tuple):
            return [e.id for e in node.value.elts if isinstance(e, ast.Name)]
    raise RuntimeError(f"{catalog}: no _MODULES tuple of benchmark modules")


def fill_benchmarks(config: dict[str, Any]) -> None:
    """Defaults that follow the registry, in place: an empty ``benchmarks`` section is every
    registered benchmark on its synthetic fixture, and a null ``eval.benchmarks`` is every
    benchmark of that section (its order). Adding a benchmark then touches no config file."""
    if not config["benchmarks"]:
        config["benchmarks"] = {name: {"root": None, "limit": None} for name in registered_benchmarks()}
    if config["eval"].get("benchmarks") is None:
        config["eval"]["benchmarks"] = list(config["benchmarks"])


def missing_paths(config: dict[str, Any]) -> list[str]:
    """Every configured input path that does not exist, as ``key: path`` lines."""
    missing = []
    for section in ("benchmarks", "sources"):
        for name, entry in config[section].items():
            root = entry["root"]
            if root is None and not config["fixtures"]["build"]:
                missing.append(f"{section}.{name}.root is null and fixtures.build is false")
            elif root is not None and not Path(root).exists():
                missing.append(f"{section}.{name}.root: {root}")
    path = config["base_model"]["path"]
    if path is not None and not Path(path).exists():
        missing.append(f"base_model.path: {path}")
    for stage in ("sft", "grpo"):
        ds = config[stage]["deepspeed"]
        if ds is not None and not Path(ds).exists():
            missing.append(f"{stage}.deepspeed: {ds}")
    for section in ("judge", "reward_judge"):
        judge = config.get(section) or {}
        model_path = (judge.get("params") or {}).get("model_path")
        if judge.get("name") == "hf" and model_path and not Path(model_path).exists():
            missing.append(f"{section}.params.model_path: {model_path}")
    return missing


def tracking_env(
    config: dict[str, Any], environ: dict[str, str] | None = None, basedir: str | Path | None = None
) -> dict[str, str]:
    """Environment for every job: MLflow URI/experiment/artifacts, the config hash and, given
    the workflow's ``basedir``, the path of its ``dvc.lock`` (whose md5 each run is tagged with).

    Passed through the environment rather than the shell command, so changing where runs
    are logged does not invalidate results. Variables already set by the user win.
    """
    env = dict(os.environ if environ is None else environ)
    uri = config["mlflow"]["tracking_uri"]
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        db = Path(uri[len("sqlite:///") :]).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{db}"
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    records = config["mlflow"]["records"]
    defaults = {
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_EXPERIMENT_NAME": config["mlflow"]["experiment"],
        "SAFERVLM_MLFLOW_ARTIFACTS": str(Path(config["mlflow"]["artifact_location"]).resolve()),
        "SAFERVLM_MLFLOW": "1" if config["mlflow"]["enabled"] else "0",
        "SAFERVLM_MLFLOW_RECORDS": str(Path(records).resolve()) if records else "",
    }
    if basedir is not None:
        defaults["SAFERVLM_DVC_LOCK"] = str(Path(basedir).resolve() / "dvc.lock")
    out = {k: env.get(k, v) for k, v in defaults.items()}
    out["SAFERVLM_CONFIG_HASH"] = hashlib.sha256(blob).hexdigest()[:12]
    return out


def tracking_server_error(env: dict[str, str], timeout: float = 10.0) -> str | None:
    """None if tracking is off, not a server, or the server answers ``GET /health``;
    otherwise why not, naming the URI. The Snakefile calls it before scheduling any job,
    so a server that is down costs no computed result."""
    from safervlm.tracking import is_server, redact

    uri = env["MLFLOW_TRACKING_URI"]
    if env.get("SAFERVLM_MLFLOW", "1") == "0" or not is_server(uri):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered (an auth proxy may refuse /health): the server is up
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return (
            f"the MLflow tracking server at {redact(uri)} does not answer ({reason}). Start it "
            "(docs/concepts/tracking.md), fix mlflow.tracking_uri, or set SAFERVLM_MLFLOW=0."
        )


def log_pending_runs(env: dict[str, str]) -> str | None:
    """Log the run records light jobs left behind (``tracking.flush_records``); None, or why not.

    The Snakefile calls it when a run ends, failed or not, for the records the ``mlflow_runs``
    job did not log (a target without it, such as ``audit``). Costs a folder listing when
    nothing is pending (the no-op rerun): MLflow is imported only when there is work.
    """
    spool = env.get("SAFERVLM_MLFLOW_RECORDS")
    if env.get("SAFERVLM_MLFLOW", "1") == "0" or not spool:
        return None
    try:
        pending = any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(spool))
    except FileNotFoundError:
        return None
    if not pending:
        return None
    from safervlm import tracking

    try:
        tracking.flush_records(spool)
    except tracking.TrackingError as exc:
        return f"the run records in {spool} were not logged to MLflow: {exc}"
    return None


def stage_module(command: str) -> str:
    """The stage module that ``safervlm <command>`` runs (``cli.run_stage``)."""
    return f"stages/{command.replace('-', '_')}.py"


def launcher_env(basedir: str | Path) -> dict[str, str]:
    """``SAFERVLM_TRAIN_LAUNCH``: the training launcher of the workflow at ``basedir``."""
    return {"SAFERVLM_TRAIN_LAUNCH": str(Path(basedir) / "workflow" / "scripts" / "train-launch")}


def benchmark_module(name: str) -> str:
    """The module of a benchmark, imported by name when it is loaded (``benchmarks.get_benchmark``)."""
    return f"benchmarks/{name}.py"


def fixture_writer_module(name: str) -> str:
    """The writer of a fixture root (a benchmark, or ``train/<folder>``: its benchmark's writer)."""
    return f"embedded/writers/{name.removeprefix('train/')}.py"


def judge_module(name: str) -> list[str]:
    """The module of a built-in judge (imported by name when the judge is built); none if unknown."""
    return [module_file(JUDGES[name])] if name in JUDGES else []


def validate_config(
    config: dict[str, Any],
    schema: str,
    validate: Callable[..., None],
    cache: str | os.PathLike[str] | None = None,
) -> bool:
    """``validate(config, schema, set_default=True)``, reused when this config was valid before.

    Validation is a pure function of the config as loaded and the schema's bytes, so their
    content hash keys the validated config (defaults filled) in ``cache`` (a JSON file under
    ``.snakemake/``): a no-op rerun skips importing jsonschema and walking the schema. A miss,
    or a config JSON cannot carry exactly (e.g. YAML dates, non-string keys), calls
    ``validate`` itself, so every error and default is Snakemake's. Only a success is stored.
    ``schema`` must be absolute (``validate`` resolves relative paths from its caller's frame).
    Returns whether the cache answered.
    """
    path = Path(cache) if cache is not None else None
    try:
        blob = json.dumps(config, sort_keys=True)
        exact = json.loads(blob) == config
    except (TypeError, ValueError):
        exact = False
    if not exact or path is None:
        validate(config, schema, set_default=True)
        return False
    key = hashlib.sha256(blob.encode() + b"\0" + Path(schema).read_bytes()).hexdigest()
    try:
        hit = json.loads(path.read_text())
    except (OSError, ValueError):
        hit = None
    if isinstance(hit, dict) and hit.get("key") == key and isinstance(hit.get("config"), dict):
        config.clear()
        config.update(hit["config"])  # in place: Snakemake holds this dict as ``config``
        return True
    validate(config, schema, set_default=True)
    try:  # atomically: jobs of a cluster run parse the Snakefile concurrently
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "config": config}))
        tmp.replace(path)
    except (OSError, TypeError, ValueError):
        pass  # a read-only working directory, or defaults JSON cannot carry: validate next time
    return False
