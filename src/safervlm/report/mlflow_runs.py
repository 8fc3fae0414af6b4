"""The MLflow runs behind a results directory, listed for the HTML report.

One row per stage run: the latest finished run of each (stage, run name) among the runs
tagged with the current config hash, read with ``MlflowClient`` from the configured store.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from typing import Any

from safervlm.io import write_text

COLUMNS = ["stage", "run_name", "run_id", "start_time", "git_commit", "config_hash", "tracking_uri"]
HEADERS = {
    "stage": "stage",
    "run_name": "run name",
    "run_id": "MLflow run id",
    "start_time": "start time (UTC)",
    "git_commit": "git commit",
    "config_hash": "config hash",
}
# The listing's own runs are not results of the DAG.
SELF_STAGE = "mlflow_runs"
_USERINFO = re.compile(r"^(\w[\w+.-]*://)[^/@]*@")


def safe_uri(uri: str) -> str:
    """The tracking URI without any ``user:password@`` part."""
    return _USERINFO.sub(r"\1", uri)


def _iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")


def latest_runs(
    tracking_uri: str, experiment: str, config_hash: str, exclude: Sequence[str] = (SELF_STAGE,)
) -> list[dict[str, str]]:
    """The latest finished run per (stage, run name) tagged ``config_hash``, oldest first.

    Returns an empty list when the experiment does not exist.
    """
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.config_hash = '{config_hash}' and attributes.status = 'FINISHED'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    latest: dict[tuple[str, str], Any] = {}
    # Newest first (ties: the later end), so the first run seen per key is the latest.
    for run in sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.end_time or 0), reverse=True):
        tags = run.data.tags
        stage = tags.get("stage", "")
        if stage in exclude:
            continue
        latest.setdefault((stage, run.info.run_name or ""), run)
    rows = [
        {
            "stage": stage,
            "run_name": run_name,
            "run_id": run.info.run_id,
            "start_time": _iso(run.info.start_time),
            "git_commit": run.data.tags.get("git_commit", ""),
            "config_hash": run.data.tags.get("config_hash", ""),
            "tracking_uri": safe_uri(tracking_uri),
            "_start": run.info.start_time or 0,
        }
        for (stage, run_name), run in latest.items()
    ]
    rows.sort(key=lambda r: (r["_start"], r["run_name"]))
    return [{k: str(r[k]) for k in COLUMNS} for r in rows]


def _md_cell(value: str) -> str:
    return value.replace("|", "\\|")


def to_markdown(
    rows: Sequence[dict[str, str]], *, tracking_uri: str, experiment: str, config_hash: str
) -> str:
    """The runs as a Markdown page: where they were read from, then one table row per run."""
    head = (
        "# MLflow runs\n\n"
        f"Tracking URI: `{safe_uri(tracking_uri)}`; experiment: `{experiment}`; "
        f"config hash: `{config_hash}`.\n\n"
    )
    if not rows:
        return head + "No finished MLflow runs with this config hash in this experiment.\n"
    cols = [c for c in COLUMNS if c in HEADERS]
    lines = [
        "| " + " | ".join(HEADERS[c] for c in cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
        *("| " + " | ".join(_md_cell(r[c]) for c in cols) + " |" for r in rows),
    ]
    return head + "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict[str, str]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


TRACKING_OFF = (
    "# MLflow runs\n\n"
    "MLflow tracking was off (`SAFERVLM_MLFLOW=0` or `mlflow.enabled: false`) when this listing "
    "was written: no run ids to list.\n"
)


def write_runs(
    out_md: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    rows: Sequence[dict[str, str]] | None,
    *,
    tracking_uri: str,
    experiment: str,
    config_hash: str,
) -> None:
    """Write the listing (``rows`` None: tracking was off) as Markdown and CSV, atomically."""
    if rows is None:
        write_text(TRACKING_OFF, out_md)
        write_text(to_csv([]), out_csv)
        return
    write_text(
        to_markdown(rows, tracking_uri=tracking_uri, experiment=experiment, config_hash=config_hash), out_md
    )
    write_text(to_csv(rows), out_csv)
