"""``safervlm fixtures``: the embedded default's synthetic benchmarks and sources."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from safervlm import tracking
from safervlm.embedded.fixtures import build_fixtures
from safervlm.io import atomic_path


def fixtures(out: str, seed: int, n_per_benchmark: int, n_train_per_source: int) -> dict[str, Any]:
    """Write every benchmark and training source in its official format under ``out``."""
    with atomic_path(out) as tmp:
        manifest = build_fixtures(
            tmp, seed=seed, n_per_benchmark=n_per_benchmark, n_train_per_source=n_train_per_source
        )
    tracking.log_stage(
        "fixtures",
        params={"seed": seed, "n_per_benchmark": n_per_benchmark, "n_train_per_source": n_train_per_source},
        metrics=manifest,
        artifacts=[Path(out) / "MANIFEST.json"],
    )
    return manifest


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return fixtures(a.out, a.seed, a.n_per_benchmark, a.n_train_per_source)
