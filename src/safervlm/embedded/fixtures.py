"""Synthetic fixtures: every benchmark and training source in its official on-disk format.

Layout written by :func:`build_fixtures` under ``out``::

    MANIFEST.json
    mmsafetybench/  processed_questions/*.json, imgs/{scenario}/{SD,SD_TYPO,TYPO}/{k}.jpg
    vlguard/        test.json, test/{category|safe}/{i}.png
    vlsbench/       data.json, imgs/{i}.png
    siuo/           siuo_gen.json, images/*.png
    mssbench/       combined.json, chat/{safe,unsafe}/*.png, embodied/{safe,unsafe}/*.png
    figstep/        safebench.csv, images/query_ForbidQI_{cid}_{tid}_6.png
    beavertails_v/  {category}/evaluation-00000-of-00001.parquet
    spa_vl/         evalharm/test-00000-of-00001.parquet
    train/beavertails_v/  {category}/train-00000-of-00001.parquet
    train/spa_vl/         data/train-00000-of-00001.parquet
    train/vlguard/        train.json, train/{category|safe}/{i}.png

Every benchmark/source root also holds ``safervlm_truth.json`` (sample id ->
should_refuse, image_objects, category), which the adapters merge on load.
Evaluation fixtures phrase questions with ``EVAL_TEMPLATES``, training sources with
``TRAIN_TEMPLATES``. The same seed gives byte-identical files.
"""

from __future__ import annotations

import importlib
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safervlm.benchmarks import list_benchmarks
from safervlm.embedded.common import Truth, dump_json
from safervlm.embedded.truth import TRUTH_FILE
from safervlm.io import atomic_path

logger = logging.getLogger(__name__)

Writer = Callable[[Path, random.Random, int], Truth]

# Training-source folders under ``out/train`` -> the source name they are loaded as. Each is
# written by its benchmark's writer with ``train=True``.
SOURCE_FOLDERS: dict[str, str] = {
    "beavertails_v": "beavertails_v",
    "spa_vl": "spa_vl",
    "vlguard": "vlguard_train",
}
MANIFEST_FILE = "MANIFEST.json"


def _write_root(root: Path, writer: Writer, rng: random.Random, n: int) -> dict[str, Any]:
    """Write one benchmark/source atomically (replacing any old copy); return its manifest entry."""
    with atomic_path(root) as tmp:
        tmp.mkdir(parents=True)
        truth = writer(tmp, rng, n)
        dump_json(truth, tmp / TRUTH_FILE)
        files = sum(1 for p in tmp.rglob("*") if p.is_file())
    refuse = sum(1 for t in truth.values() if t["should_refuse"])
    return {"samples": len(truth), "should_refuse": refuse, "benign": len(truth) - refuse, "files": files}


def fixture_names() -> list[str]:
    """Every fixture root under the fixtures folder: each benchmark, then ``train/<source>``."""
    return [*list_benchmarks(), *(f"train/{folder}" for folder in SOURCE_FOLDERS)]


def writer_module(name: str) -> str:
    """The writer module of a fixture root (``train/<folder>`` uses its benchmark's writer)."""
    if name not in fixture_names():
        raise ValueError(f"unknown fixture {name!r}; known: {fixture_names()}")
    return f"safervlm.embedded.writers.{name.removeprefix('train/')}"


def write_fixture(out: Path | str, name: str, seed: int, n: int) -> dict[str, Any]:
    """Write one fixture root ``out/<name>`` (atomically, replacing an old copy) with ``n`` samples.

    Imports only that fixture's writer, so a job writing one fixture runs (and its rule
    tracks) that writer alone. Each root has its own seeded generator: the bytes do not
    depend on which other fixtures are written, or in what order.

    Returns:
        Its manifest entry: sample, should_refuse / benign and file counts.
    """
    writer = importlib.import_module(writer_module(name)).write
    rng = random.Random(f"safervlm-fixtures/{seed}/{name}")
    if name.startswith("train/"):
        return _write_root(Path(out) / name, lambda r, g, k: writer(r, g, k, train=True), rng, n)
    return _write_root(Path(out) / name, writer, rng, n)


def build_fixtures(
    out: Path | str, seed: int = 0, n_per_benchmark: int = 24, n_train_per_source: int = 120
) -> dict[str, Any]:
    """Write synthetic copies of every benchmark and training source under ``out``.

    Args:
        out: Output folder (created; existing benchmark folders in it are replaced).
        seed: Random seed; the same seed gives byte-identical files.
        n_per_benchmark: Samples per benchmark (MM-SafetyBench rounds up to a multiple of 3).
        n_train_per_source: Rows per training source.

    Returns:
        The manifest (also written to ``out/MANIFEST.json``): seed, sizes and, per
        benchmark and source, the sample count, should_refuse / benign counts and file count.
    """
    if n_per_benchmark < 4 or n_train_per_source < 4:
        raise ValueError("n_per_benchmark and n_train_per_source must be >= 4")
    start = time.perf_counter()
    base = Path(out)
    base.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "seed": seed,
        "n_per_benchmark": n_per_benchmark,
        "n_train_per_source": n_train_per_source,
        "benchmarks": {},
        "train": {},
    }
    for name in list_benchmarks():
        manifest["benchmarks"][name] = {"root": name, **write_fixture(base, name, seed, n_per_benchmark)}
    for folder, source in SOURCE_FOLDERS.items():
        entry = write_fixture(base, f"train/{folder}", seed, n_train_per_source)
        manifest["train"][source] = {"root": f"train/{folder}", **entry}
    dump_json(manifest, base / MANIFEST_FILE)
    logger.info("built fixtures in %s (%.1fs)", base, time.perf_counter() - start)
    return manifest
