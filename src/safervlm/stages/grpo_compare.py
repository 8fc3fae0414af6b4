"""``safervlm grpo-compare``: plain vs safety-aware GRPO, a table and safety curves."""

from __future__ import annotations

import argparse
from typing import Any

from safervlm.report.compare import compare_grpo
from safervlm.stages.args import many


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm grpo-compare`` (collected by :func:`safervlm.cli.build_parser`)."""
    many(p, "--runs", nargs="+", required=True, help="NAME=CHECKPOINT_DIR, in display order")
    many(p, "--metrics", nargs="+", required=True, help="results/eval/{model}/{bench}/metrics.json")
    many(p, "--judgments", nargs="*", default=[], help="their judgments.parquet (paired tests)")
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-png", required=True)


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    runs = dict(r.split("=", 1) for r in a.runs)
    return compare_grpo(runs, a.metrics, a.out_md, a.out_png, a.judgments)
