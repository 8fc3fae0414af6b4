"""``safervlm fixtures``: the embedded default's synthetic benchmarks and sources, in their
official formats; all of them (with ``MANIFEST.json``), or one root (``--only``, one
Snakemake job per benchmark and source)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from safervlm import tracking
from safervlm.embedded.fixtures import build_fixtures, write_fixture
from safervlm.embedded.truth import TRUTH_FILE
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


def fixture(out: str, name: str, seed: int, n: int) -> dict[str, Any]:
    """Write the fixture root ``out/<name>`` (a benchmark, or ``train/<source>``) with ``n`` samples."""
    entry = write_fixture(out, name, seed, n)
    tracking.log_stage(
        "fixtures",
        params={"fixture": name, "seed": seed, "n": n},
        metrics=entry,
        artifacts=[Path(out) / name / TRUTH_FILE],
        run_name=f"fixtures:{name}",
    )
    return entry


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm fixtures`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-per-benchmark", type=int, default=24)
    p.add_argument("--n-train-per-source", type=int, default=120)
    p.add_argument("--only", help="write only this root: a benchmark, or train/<source>")


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    if a.only is None:
        return fixtures(a.out, a.seed, a.n_per_benchmark, a.n_train_per_source)
    n = a.n_train_per_source if a.only.startswith("train/") else a.n_per_benchmark
    return fixture(a.out, a.only, a.seed, n)
