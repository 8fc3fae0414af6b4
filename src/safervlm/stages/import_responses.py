"""``safervlm import-responses``: released generations -> ``eval/{model}/{bench}/responses.parquet``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from safervlm.errors import InputError
from safervlm.evaluate.released import bench_loader, match_responses, read_released
from safervlm.io import write_json, write_parquet

log = logging.getLogger(__name__)


def import_responses_stage(
    file: str, data_dir: str, results: str, model: str | None, benchmark: str | None, allow_unmatched: bool
) -> dict[str, Any]:
    """Match a released generations file to the prepared benchmarks and write responses.

    Nothing is written unless every record is valid, and (without ``allow_unmatched``) every
    record matched a sample; then ``responses.parquet`` and ``import.json`` (what matched,
    what did not, samples left without a response) per (model, benchmark).
    """
    path = Path(file)
    records = read_released(path)
    if not records:
        raise InputError("no records", path=path)
    matched = match_responses(
        records, path, bench_loader(Path(data_dir)), {"model": model, "benchmark": benchmark}
    )
    for u in matched.unmatched:
        log.warning(
            "%s %s: %s matches no sample of %s (%s)", path, u["record"], u["key"], u["benchmark"], u["reason"]
        )
    if matched.unmatched and not allow_unmatched:
        first = "; ".join(f"{u['record']}: {u['key']} ({u['reason']})" for u in matched.unmatched[:5])
        raise InputError(f"{len(matched.unmatched)} record(s) match no benchmark sample: {first}", path=path)
    summary: dict[str, Any] = {
        "file": str(path),
        "records": len(records),
        "unmatched": matched.unmatched,
        "written": {},
    }
    for (m, bench), df in matched.responses.items():
        out = Path(results) / "eval" / m / bench
        write_parquet(df, out / "responses.parquet")
        report = {
            "file": str(path),
            "matched": len(df),
            "samples_without_response": matched.uncovered[(m, bench)],
            "unmatched": [u for u in matched.unmatched if u["benchmark"] == bench],
        }
        write_json(report, out / "import.json")
        summary["written"][f"{m}/{bench}"] = len(df)
    print(
        f"imported {sum(summary['written'].values())} responses: {summary['written']}; "
        f"unmatched records: {len(matched.unmatched)}"
    )
    return summary


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return import_responses_stage(a.file, a.data_dir, a.results, a.model, a.benchmark, a.allow_unmatched)
