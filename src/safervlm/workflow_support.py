"""Helpers the Snakefile calls at parse time: config path checks and the tracking env.

Kept in the package (not in ``rules/common.smk``) so they are unit-tested and the
workflow files stay declarations.
"""

from __future__ import annotations

import hashlib
import json
import os
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


def tracking_env(config: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every job: MLflow URI/experiment/artifacts and the config hash.

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
    out = {k: env.get(k, v) for k, v in defaults.items()}
    out["SAFERVLM_CONFIG_HASH"] = hashlib.sha256(blob).hexdigest()[:12]
    return out
