"""``safervlm grpo-compare``: plain vs safety-aware GRPO, a table and safety curves."""

from __future__ import annotations

import argparse
from typing import Any

from safervlm.report.compare import compare_grpo


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    runs = dict(r.split("=", 1) for r in a.runs)
    return compare_grpo(runs, a.metrics, a.out_md, a.out_png, a.judgments)
