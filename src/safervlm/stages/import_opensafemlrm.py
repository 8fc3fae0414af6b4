"""``safervlm import-opensafemlrm``: re-analyse OpenSafeMLRM's per-sample judged files."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm import tracking
from safervlm.errors import InputError
from safervlm.evaluate.opensafemlrm import import_opensafemlrm
from safervlm.io import write_parquet
from safervlm.metrics import Settings, analyse
from safervlm.stages.args import analysis_args, pairs_arg
from safervlm.stages.report import _analysis_outputs, analysis_settings


def import_stage(
    root: str, out_dir: str, pairs: list[tuple[str, str]], settings: Settings, benchmark: str
) -> dict[str, pd.DataFrame]:
    """Re-analyse OpenSafeMLRM's published files with the same metrics code and tables."""

    outcomes = import_opensafemlrm(root, benchmark=benchmark, threshold=settings.threshold)
    models = set(outcomes["model"])
    unknown = sorted({m for pair in pairs for m in pair} - models)
    if unknown:
        raise InputError(f"--pair names models {unknown} not found; imported: {sorted(models)}", path=root)
    analysis = analyse(outcomes, pairs, settings)
    artifacts = _analysis_outputs(analysis, out_dir, {benchmark: "not available (imported)"}, settings)
    write_parquet(outcomes, Path(out_dir) / "outcomes.parquet")
    tracking.log_stage(
        "import_opensafemlrm",
        params={"root": root, "pairs": json.dumps(pairs), **dataclasses.asdict(settings)},
        metrics={"n": len(outcomes), "n_models": len(models)},
        artifacts=artifacts,
    )
    return analysis


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm import-opensafemlrm`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument("dir", help="folder of OpenSafeMLRM result files")
    p.add_argument("--out", required=True, help="folder for the tables")
    p.add_argument("--benchmark", default="opensafemlrm", help="benchmark name in the tables")
    analysis_args(p)


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return import_stage(a.dir, a.out, pairs_arg(a.pair), analysis_settings(a), a.benchmark)
