"""Parse-time helpers of the Snakefile: missing-path checks and the tracking environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

from safervlm.workflow_support import (  # noqa: E402
    fill_benchmarks,
    missing_paths,
    registered_benchmarks,
    tracking_env,
    tracking_server_error,
)


def _config() -> dict:
    """config/config.yaml with the registry's benchmark defaults filled (as rules/common.smk does)."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    fill_benchmarks(cfg)
    return cfg


def test_benchmark_lists_follow_the_registry_in_its_order() -> None:
    from safervlm.benchmarks.catalog import BENCHMARKS

    assert registered_benchmarks() == list(BENCHMARKS)  # read without importing the modules
    cfg = _config()
    assert list(cfg["benchmarks"]) == cfg["eval"]["benchmarks"] == list(BENCHMARKS)
    assert all(entry == {"root": None, "limit": None} for entry in cfg["benchmarks"].values())
    # A config that lists its own keeps them; eval.benchmarks then follows that section.
    own = {"benchmarks": {"vlguard": {"root": "/data/VLGuard", "limit": None}}, "eval": {"benchmarks": None}}
    fill_benchmarks(own)
    assert list(own["benchmarks"]) == own["eval"]["benchmarks"] == ["vlguard"]
    chosen = {"benchmarks": {}, "eval": {"benchmarks": ["mssbench"]}}
    fill_benchmarks(chosen)
    assert chosen["eval"]["benchmarks"] == ["mssbench"] and len(chosen["benchmarks"]) == len(BENCHMARKS)


def test_default_config_needs_no_paths() -> None:
    assert missing_paths(_config()) == []


def test_missing_paths_are_named(tmp_path: Path) -> None:
    cfg = _config()
    cfg["benchmarks"]["siuo"]["root"] = str(tmp_path / "SIUO")
    cfg["base_model"]["path"] = str(tmp_path)  # exists
    cfg["sft"]["deepspeed"] = "nope.json"
    assert missing_paths(cfg) == [f"benchmarks.siuo.root: {tmp_path / 'SIUO'}", "sft.deepspeed: nope.json"]
    cfg["fixtures"]["build"] = False
    assert "benchmarks.vlguard.root is null and fixtures.build is false" in missing_paths(cfg)


def test_tracking_env_resolves_sqlite_and_respects_user_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _config()
    env = tracking_env(cfg, environ={})
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path}/results/mlflow/mlflow.db"
    assert (tmp_path / "results" / "mlflow").is_dir()
    assert len(env["SAFERVLM_CONFIG_HASH"]) == 12
    user = tracking_env(cfg, environ={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert user["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    cfg["sft"]["epochs"] = 99
    assert tracking_env(cfg, environ={})["SAFERVLM_CONFIG_HASH"] != env["SAFERVLM_CONFIG_HASH"]


def test_tracking_env_points_at_the_workflows_dvc_lock(tmp_path: Path) -> None:
    cfg = _config()
    assert "SAFERVLM_DVC_LOCK" not in tracking_env(cfg, environ={})
    env = tracking_env(cfg, environ={}, basedir=tmp_path)
    assert env["SAFERVLM_DVC_LOCK"] == str(tmp_path / "dvc.lock")
    mine = tracking_env(cfg, environ={"SAFERVLM_DVC_LOCK": "/elsewhere/dvc.lock"}, basedir=tmp_path)
    assert mine["SAFERVLM_DVC_LOCK"] == "/elsewhere/dvc.lock"


def test_tracking_env_names_the_records_folder(tmp_path: Path, monkeypatch) -> None:
    """Light stages' run records go to mlflow.records (absolute); null: every stage logs live."""
    monkeypatch.chdir(tmp_path)
    cfg = _config()
    records = tracking_env(cfg, environ={})["SAFERVLM_MLFLOW_RECORDS"]
    assert records == str(tmp_path / "results/mlflow/records")
    cfg["mlflow"]["records"] = None
    assert tracking_env(cfg, environ={})["SAFERVLM_MLFLOW_RECORDS"] == ""


def test_tracking_server_error_only_for_a_server_that_does_not_answer() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        down = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}", "SAFERVLM_MLFLOW": "1"}
        why = tracking_server_error(down, timeout=5)
        assert why is not None and f"http://127.0.0.1:{port}" in why
        assert tracking_server_error({**down, "SAFERVLM_MLFLOW": "0"}) is None
    local = {"MLFLOW_TRACKING_URI": "sqlite:////nowhere/db", "SAFERVLM_MLFLOW": "1"}
    assert tracking_server_error(local) is None


def _package(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "safervlm"
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    return pkg


def test_code_closure_follows_imports_the_way_python_runs_them(tmp_path: Path) -> None:
    from safervlm.workflow_support import code_closure, code_digest

    pkg = _package(
        tmp_path,
        {
            "__init__.py": "",
            "cli.py": "from safervlm import io\n\ndef cmd():\n    from safervlm.stages import big\n",
            "io.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from safervlm import typed\n",
            "typed.py": "",
            "stages/__init__.py": "",
            "stages/big.py": "import safervlm.lib.a\n\ndef other_stage():\n    from safervlm.lib import b\n",
            "lib/__init__.py": "try:\n    from safervlm.lib import c\nexcept ImportError:\n    pass\n",
            "lib/a.py": "class A:\n    def f(self):\n        from safervlm.lib.lazy import g\n",
            "lib/b.py": "",
            "lib/c.py": "",
            "lib/lazy.py": "",
        },
    )
    got = code_closure(pkg, ["cli.py", "stages/big.py"])
    # What importing runs: module-level imports (inside try/if too), every package __init__
    # on the way; never imports inside functions/classes' methods, nor TYPE_CHECKING ones.
    assert got == ["__init__.py", "cli.py", "io.py", "lib/__init__.py", "lib/a.py", "lib/c.py",
                   "stages/__init__.py", "stages/big.py"]  # fmt: skip
    digest = code_digest(pkg, ["cli.py", "stages/big.py"])
    assert list(digest) == got
    with pytest.raises(FileNotFoundError, match="nope.py"):
        code_closure(pkg, ["nope.py"])


def test_code_digest_parses_only_changed_modules_through_its_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safervlm import codegraph

    pkg = _package(tmp_path, {"__init__.py": "", "a.py": "from safervlm import b\n", "b.py": ""})
    cache = tmp_path / "cache.json"
    first = codegraph.code_digest(pkg, ["a.py"], cache=cache)
    assert list(first) == ["__init__.py", "a.py", "b.py"] and cache.is_file()
    codegraph._package.cache_clear()
    parsed: list[str] = []
    real = codegraph._imported_names
    monkeypatch.setattr(
        codegraph,
        "_imported_names",
        lambda source, filename: parsed.append(filename) or real(source, filename),
    )
    assert codegraph.code_digest(pkg, ["a.py"], cache=cache) == first
    assert parsed == []  # nothing changed: every import list came from the cache
    (pkg / "a.py").write_text("from safervlm import b, c\n")
    (pkg / "c.py").write_text("# new\n")
    codegraph._package.cache_clear()
    second = codegraph.code_digest(pkg, ["a.py"], cache=cache)
    assert sorted(Path(p).name for p in parsed) == ["a.py", "c.py"]
    assert list(second) == ["__init__.py", "a.py", "b.py", "c.py"] and second["a.py"] != first["a.py"]


def _validate_calls(calls: list[dict]):
    from snakemake.utils import validate

    def counted(config, schema, set_default=True):
        calls.append(config)
        validate(config, schema, set_default=set_default)

    return counted


@pytest.mark.parametrize("name", ["config", "paper"])
def test_validate_config_cache_fills_what_validate_fills(name: str, tmp_path: Path) -> None:
    """A cache hit leaves the same config as Snakemake's validate(), in the same dict object."""
    from safervlm.workflow_support import validate_config

    schema = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    raw = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
    cache = tmp_path / ".snakemake" / "safervlm-config.json"
    calls: list[dict] = []
    first = json.loads(json.dumps(raw))
    assert validate_config(first, schema, _validate_calls(calls), cache=cache) is False
    second = json.loads(json.dumps(raw))
    same = second
    assert validate_config(second, schema, _validate_calls(calls), cache=cache) is True
    assert len(calls) == 1 and second is same and second == first
    assert json.dumps(second) == json.dumps(first)  # key order too
    second["seed"] = second["seed"] + 1  # another config: validated again
    assert validate_config(second, schema, _validate_calls(calls), cache=cache) is False
    assert len(calls) == 2


def test_validate_config_errors_are_snakemakes_and_never_cached(tmp_path: Path) -> None:
    from snakemake.exceptions import WorkflowError

    from safervlm.workflow_support import validate_config

    schema = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    cache = tmp_path / "cache.json"
    bad = _config()
    bad["grpo"]["num_generations"] = 1
    for _ in range(2):
        with pytest.raises(WorkflowError, match="Failed validating"):
            validate_config(json.loads(json.dumps(bad)), schema, _validate_calls([]), cache=cache)
    assert not cache.exists()
    good = _config()
    validate_config(good, schema, _validate_calls([]), cache=cache)
    with pytest.raises(WorkflowError, match="num_generations"):  # a valid one cached: still fails
        validate_config(json.loads(json.dumps(bad)), schema, _validate_calls([]), cache=cache)


def test_validate_config_revalidates_on_schema_change_and_odd_values(tmp_path: Path) -> None:
    import datetime

    from safervlm.workflow_support import validate_config

    schema = tmp_path / "schema.json"
    draft = "https://json-schema.org/draft/2020-12/schema"
    schema.write_text(json.dumps({"$schema": draft, "properties": {"a": {"default": 1}}}))
    cache = tmp_path / "cache.json"
    calls: list[dict] = []
    for _ in range(2):
        validate_config({}, str(schema), _validate_calls(calls), cache=cache)
    assert len(calls) == 1
    schema.write_text(json.dumps({"$schema": draft, "properties": {"a": {"default": 2}}}))
    cfg: dict = {}
    assert validate_config(cfg, str(schema), _validate_calls(calls), cache=cache) is False
    assert cfg == {"a": 2} and len(calls) == 2
    odd = {"when": datetime.date(2026, 1, 1)}  # YAML dates: JSON cannot carry them exactly
    for _ in range(2):
        assert validate_config(dict(odd), str(schema), _validate_calls(calls), cache=cache) is False
    assert len(calls) == 4
