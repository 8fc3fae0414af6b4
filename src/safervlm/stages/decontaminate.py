"""``safervlm decontaminate``: drop pool rows that duplicate an evaluation benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from safervlm import tracking
from safervlm.config import DecontaminateParams
from safervlm.curate.decontaminate import decontaminate
from safervlm.errors import InputError
from safervlm.io import read_parquet, write_json, write_parquet
from safervlm.stages.args import many, params_arg

_EVAL_COLUMNS = ["id", "question", "image"]


def decontaminate_stage(
    pool_path: str, eval_paths: list[str], out: str, report_path: str, params: DecontaminateParams
) -> dict[str, Any]:
    """Drop pool rows that duplicate any evaluation benchmark (exact/near text, near image).

    Benchmarks are named after their parquet files (``results/data/bench/{name}.parquet``).

    Raises:
        InputError: a missing column, an undecodable image, or nothing left after filtering.
    """
    pool = read_parquet(pool_path, required=[*_EVAL_COLUMNS, "source"])
    paths = {Path(p).stem: str(p) for p in eval_paths}
    evals = {name: read_parquet(p, required=_EVAL_COLUMNS) for name, p in paths.items()}
    clean, report = decontaminate(pool, evals, params, pool_path=pool_path, eval_paths=paths)
    if clean.empty:
        raise InputError(
            f"decontamination removed all {len(pool)} pool rows {report['removed_by_reason']}; "
            "nothing is left to curate",
            path=pool_path,
        )
    write_parquet(clean, out)
    write_json(report, report_path)
    tracking.log_stage(
        "decontaminate",
        params={**params.model_dump(), "eval_sets": sorted(paths)},
        metrics={k: report[k] for k in ("n_pool", "n_removed", "n_kept", "removed_by_reason")}
        | {"removed_by_benchmark": report["removed_by_benchmark"]},
        artifacts=[report_path],
    )
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm decontaminate`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument("--pool", required=True)
    many(p, "--eval", nargs="+", required=True, help="benchmark parquet files ({name}.parquet)")
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--params", default="{}", help="curate keys as JSON (thresholds, image hash)")


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    params = params_arg(DecontaminateParams, a.params)
    return decontaminate_stage(a.pool, a.eval, a.out, a.report, params)
