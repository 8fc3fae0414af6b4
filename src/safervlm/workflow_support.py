"""Helpers the Snakefile calls at parse time: config path checks and the tracking env.

Kept in the package (not in ``rules/common.smk``) so they are unit-tested and the
workflow files stay declarations.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any


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
    defaults = {
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_EXPERIMENT_NAME": config["mlflow"]["experiment"],
        "SAFERVLM_MLFLOW_ARTIFACTS": str(Path(config["mlflow"]["artifact_location"]).resolve()),
        "SAFERVLM_MLFLOW": "1" if config["mlflow"]["enabled"] else "0",
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
            "(README: 'Experiment tracking'), fix mlflow.tracking_uri, or set SAFERVLM_MLFLOW=0."
        )


def _module_file(pkg: Path, dotted: str) -> Path | None:
    """``safervlm.a.b`` -> ``a/b.py`` or ``a/b/__init__.py`` under ``pkg`` (None if neither)."""
    path = pkg.joinpath(*dotted.split(".")[1:])
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _imports(pkg: Path, path: Path) -> frozenset[Path]:
    """Package modules ``path`` imports at module level (what importing it runs).

    ``if TYPE_CHECKING:`` blocks are skipped (annotations only, never run). Imports inside
    functions are not followed: the package has none (tests/test_imports.py), except the
    name-keyed plugin registries (stages, judges, benchmarks), which rules name explicitly.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes: list[ast.AST] = []
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        nodes.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    found: set[Path | None] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {_module_file(pkg, a.name) for a in node.names if a.name.split(".")[0] == pkg.name}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == pkg.name:
            found.add(_module_file(pkg, node.module))
            found |= {_module_file(pkg, f"{node.module}.{a.name}") for a in node.names}
    return frozenset(p for p in found if p is not None)


def code_closure(pkg: str | os.PathLike[str], modules: Iterable[str]) -> list[str]:
    """The package modules a job runs: ``modules`` and every module they import, transitively.

    Every package ``__init__.py`` on the way to a module counts (Python runs it first).
    Returns paths relative to ``pkg``, sorted.
    """
    root = Path(pkg)
    seen: set[Path] = set()
    todo = [root / m for m in modules]
    for path in todo:
        if not path.is_file():
            raise FileNotFoundError(f"code module {path} does not exist")
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_imports(root, path) - seen)
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        todo.extend(p / "__init__.py" for p in path.parents if p == root or root in p.parents)
    return sorted(p.relative_to(root).as_posix() for p in seen)


@functools.cache
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def code_digest(pkg: str | os.PathLike[str], modules: Iterable[str]) -> dict[str, str]:
    """``{module: sha256 prefix}`` over :func:`code_closure` — a rule's ``code`` param.

    As a param (not as input files), it reruns a job exactly when a module it runs changed
    (Snakemake's params trigger), and neither mtimes nor the checkout's location matter:
    a clone or a copy elsewhere plans nothing.
    """
    return {m: _digest(Path(pkg) / m) for m in code_closure(pkg, modules)}


def stage_module(command: str) -> str:
    """The stage module that ``safervlm <command>`` runs (``cli.run_stage``)."""
    return f"stages/{command.replace('-', '_')}.py"


def judge_module(name: str) -> list[str]:
    """The module of a built-in judge (imported by name when the judge is built); none if unknown."""
    from safervlm.judge.base import BUILTIN_JUDGES

    target = BUILTIN_JUDGES.get(name)
    return [target.split(":")[0].removeprefix("safervlm.").replace(".", "/") + ".py"] if target else []
