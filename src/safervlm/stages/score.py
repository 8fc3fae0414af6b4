"""``safervlm score``: aggregate one model's judgments on one benchmark into metrics."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from safervlm import __version__, tracking
from safervlm.evaluate.score import score_judgments
from safervlm.io import read_parquet, write_json
from safervlm.schema import JUDGMENT_COLUMNS


def score_stage(judgments_path: str, out: str, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Aggregate judgments into metrics (means, unsafety of the reasoning/answer/full response, CIs)."""

    df = read_parquet(judgments_path, required=JUDGMENT_COLUMNS)
    metrics = score_judgments(df, n_bootstrap=n_bootstrap, seed=seed)
    model = df["model"].iloc[0] if len(df) else "unknown"
    provenance = {
        "judgments": judgments_path,
        "judge": sorted(df["judge"].unique().tolist()),
        "git_commit": tracking.git_commit(),
        "config_hash": os.environ.get("SAFERVLM_CONFIG_HASH", "unknown"),
        "safervlm_version": __version__,
    }
    metrics = {"model": model, "provenance": provenance, **metrics}
    write_json(metrics, out)
    tracking.log_stage(
        "score",
        params={"judgments": judgments_path, "n_bootstrap": n_bootstrap},
        metrics={k: v for k, v in metrics.items() if k != "provenance"},
        artifacts=[out],
        run_name=f"score:{model}:{Path(judgments_path).parent.name}",
    )
    return metrics


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm score`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument("--judgments", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return score_stage(a.judgments, a.out, a.n_bootstrap, a.seed)
