"""Helpers shared by the workflow and end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]

# Every rule of the DAG but `all`.
RULES = (
    "fixtures",
    "prepare",
    "attack",
    "pool",
    "decontaminate",
    "tiny_model",
    "qi_score",
    "qi_select",
    "sft",
    "grpo",
    "grpo_compare",
    "generate",
    "judge",
    "score",
    "report",
    "mlflow_runs",
)


def snakemake_command(*args: str, tracking: bool = False) -> tuple[list[str], dict[str, str]]:
    """Command line and environment that run this repository's Snakefile with the venv's tools.

    With ``tracking`` False, MLflow logging is off; with True, the config decides.
    """
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    if tracking:
        env.pop("SAFERVLM_MLFLOW", None)
    else:
        env["SAFERVLM_MLFLOW"] = "0"
    return [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), *args], env


def snakemake(*args: str, tracking: bool = False) -> subprocess.CompletedProcess[str]:
    """Run this repository's Snakefile (see :func:`snakemake_command`) to completion."""
    cmd, env = snakemake_command(*args, tracking=tracking)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)


def mlflow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, experiment: str, **extra: str) -> str:
    """Tracking on, into a fresh SQLite store under ``tmp_path`` (and ``extra`` env vars): its URI."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for key, value in {
        "SAFERVLM_MLFLOW": "1",
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_EXPERIMENT_NAME": experiment,
        "SAFERVLM_MLFLOW_ARTIFACTS": str(tmp_path / "artifacts"),
        **extra,
    }.items():
        monkeypatch.setenv(key, value)
    return uri


def vlguard_train_parquet(root: Path) -> Path:
    """A small GRPO training file under ``root``: the synthetic VLGuard train split (16 rows)."""
    import pandas as pd

    from safervlm.embedded.fixtures import build_fixtures
    from safervlm.io import write_parquet
    from safervlm.schema import POOL_EXTRA, SAMPLE_COLUMNS
    from safervlm.sources import load_source

    build_fixtures(root / "fx", seed=0, n_per_benchmark=4, n_train_per_source=16)
    rows = load_source("vlguard_train", root / "fx" / "train" / "vlguard")
    path = root / "train.parquet"
    write_parquet(pd.DataFrame(rows, columns=SAMPLE_COLUMNS + POOL_EXTRA), path)
    return path
