"""``safervlm mlflow-runs``: the MLflow runs behind the results, for the HTML report."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from safervlm import tracking
from safervlm.report.mlflow_runs import latest_runs, write_runs

log = logging.getLogger(__name__)


def mlflow_runs_stage(out_md: str, out_csv: str) -> list[dict[str, str]] | None:
    """List the latest run per stage and run name of the current config hash (None: tracking off).

    First logs the run records the light stages left (``SAFERVLM_MLFLOW_RECORDS``) in one
    batch, then reads the store the stages logged to (``MLFLOW_TRACKING_URI``,
    ``MLFLOW_EXPERIMENT_NAME``, ``SAFERVLM_CONFIG_HASH``, as exported by the Snakefile), then
    logs its own run with the listing as artifacts. With tracking off it writes a listing
    that says so.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI", tracking.DEFAULT_URI)
    experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "safervlm")
    config_hash = os.environ.get("SAFERVLM_CONFIG_HASH", "unknown")
    meta = {"tracking_uri": uri, "experiment": experiment, "config_hash": config_hash}
    if not tracking.enabled():
        write_runs(out_md, out_csv, None, **meta)
        log.info("MLflow tracking is off: wrote %s saying so", out_md)
        return None
    spool = tracking.records_dir()
    if spool is not None:
        tracking.flush_records(spool)
    rows = latest_runs(uri, experiment, config_hash)
    write_runs(out_md, out_csv, rows, **meta)
    log.info("listed %d MLflow runs (config hash %s) in %s", len(rows), config_hash, out_md)
    tracking.log_stage(
        "mlflow_runs",
        params={"experiment": experiment, "config_hash": config_hash},
        metrics={"n_runs": len(rows)},
        artifacts=[out_md, out_csv],
    )
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm mlflow-runs`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument("--out", required=True, help="Markdown listing")
    p.add_argument("--csv", required=True, help="CSV listing")


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return mlflow_runs_stage(a.out, a.csv)
