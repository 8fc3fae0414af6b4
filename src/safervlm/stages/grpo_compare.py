"""``safervlm grpo-compare``: plain vs safety-aware GRPO, a table and learning curves over seeds."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from safervlm.errors import SafervlmError
from safervlm.report.compare import compare_grpo
from safervlm.stages.args import many


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm grpo-compare`` (collected by :func:`safervlm.cli.build_parser`)."""
    many(
        p,
        "--runs",
        nargs="+",
        required=True,
        help="NAME=CHECKPOINT_DIR, in display order; repeat a NAME once per seed (first: the tables' seed)",
    )
    many(p, "--metrics", nargs="+", required=True, help="results/eval/{model}/{bench}/metrics.json")
    many(p, "--judgments", nargs="*", default=[], help="their judgments.parquet (paired tests)")
    many(p, "--seeds", nargs="*", type=int, default=[], help="the seeds of each NAME's runs, in order")
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-png", required=True)
    p.add_argument(
        "--out-curves-md", default=None, help="the learning-curve section alone (seeds.md appends it)"
    )


def parse_runs(items: Sequence[str]) -> dict[str, list[str]]:
    """``NAME=DIR`` items as ``{name: [dir, ...]}``: names in first-seen order, a name's
    folders in the order given (one per seed)."""
    runs: dict[str, list[str]] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise SafervlmError(f"--runs expects NAME=CHECKPOINT_DIR, got {item!r}")
        runs.setdefault(name, []).append(folder)
    return runs


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return compare_grpo(
        parse_runs(a.runs), a.metrics, a.out_md, a.out_png, a.judgments, a.seeds, a.out_curves_md
    )
