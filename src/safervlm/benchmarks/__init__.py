"""Benchmarks: one module per benchmark, and the one list every benchmark table derives from.

A benchmark module holds its adapter from the official on-disk format (with ``version``
and ``card``), the judge rubric of its official protocol and its official metric, and
declares them in one ``BENCHMARK`` record. Its synthetic fixture writer for the embedded
default lives in :mod:`safervlm.embedded.writers` (real-data paths never load the
synthetic world). Adding a benchmark: its module, one line in ``_MODULES`` below, a
writer in ``embedded/writers`` with one line in ``embedded.fixtures.BENCHMARK_WRITERS``, and its
config entries::

    from safervlm.benchmarks import list_benchmarks, load_benchmark
    samples = load_benchmark("vlguard", "/data/VLGuard", limit=100)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from safervlm.benchmarks import (
    beavertails_v,
    figstep,
    mmsafetybench,
    mssbench,
    siuo,
    spa_vl,
    vlguard,
    vlsbench,
)
from safervlm.benchmarks.registry import Benchmark, Indicator, UnknownBenchmarkError, build_registry, lookup
from safervlm.data.base import CARD_KEYS, BenchmarkAdapter
from safervlm.errors import ConfigError, InputError
from safervlm.schema import Sample

logger = logging.getLogger(__name__)

# The registry: one line per benchmark.
_MODULES = (
    beavertails_v,
    figstep,
    mmsafetybench,
    mssbench,
    siuo,
    spa_vl,
    vlguard,
    vlsbench,
)
BENCHMARKS: dict[str, Benchmark] = build_registry(m.BENCHMARK for m in _MODULES)
# Benchmark -> rubric of its official protocol (for judge.params.rubrics: official).
OFFICIAL_RUBRICS: dict[str, str] = {name: b.rubric for name, b in BENCHMARKS.items()}
# Benchmark -> (official metric name, per-sample indicator).
OFFICIAL: dict[str, tuple[str, Indicator]] = {name: (b.metric, b.official) for name, b in BENCHMARKS.items()}

__all__ = [
    "BENCHMARKS",
    "CARD_KEYS",
    "OFFICIAL",
    "OFFICIAL_RUBRICS",
    "Benchmark",
    "BenchmarkAdapter",
    "UnknownBenchmarkError",
    "get_adapter",
    "get_benchmark",
    "list_benchmarks",
    "load_benchmark",
    "validate_samples",
]


def list_benchmarks() -> list[str]:
    """Names of every registered benchmark, sorted."""
    return sorted(BENCHMARKS)


def get_benchmark(name: str) -> Benchmark:
    """The :class:`Benchmark` record registered as ``name``.

    Raises:
        UnknownBenchmarkError: (a ConfigError and KeyError) listing the known names.
    """
    return lookup(BENCHMARKS, name)


def get_adapter(name: str, **options: Any) -> BenchmarkAdapter:
    """Instantiate the adapter registered under ``name``.

    Args:
        name: Registry name, e.g. ``"vlguard"``.
        **options: Adapter-specific constructor options (e.g. ``image_types`` for MM-SafetyBench).

    Raises:
        UnknownBenchmarkError: (a ConfigError and KeyError) listing the known names.
        ConfigError: The options do not fit the adapter.
    """
    cls = get_benchmark(name).adapter
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for benchmark {name!r}: {exc}") from exc


def validate_samples(samples: list[Sample], root: Path | str) -> None:
    """Check ids are unique and non-empty, and every sample has text or an image.

    A sample whose question is empty but which has an image is an image-only prompt (the
    image carries the request, as in some official VLSBench records) and is accepted.

    Raises:
        InputError: Naming ``root`` and the offending sample id.
    """
    seen: set[str] = set()
    for i, s in enumerate(samples):
        if not s.id:
            raise InputError("sample has an empty id", path=root, record=i)
        if s.id in seen:
            raise InputError("duplicate sample id", path=root, record=s.id)
        seen.add(s.id)
        if not isinstance(s.question, str):
            raise InputError("sample question is not text", path=root, record=s.id)
        if not s.question.strip() and not s.image:
            raise InputError("sample has an empty question and no image", path=root, record=s.id)


def load_benchmark(
    name: str, root: Path | str, limit: int | None = None, *, max_image_pixels: int | None = None
) -> list[Sample]:
    """Load and validate up to ``limit`` samples of benchmark ``name`` from its local copy.

    Args:
        name: Registry name (see :func:`list_benchmarks`).
        root: Folder holding the benchmark in its official on-disk format.
        limit: Maximum number of samples (all when None).
        max_image_pixels: Pixel limit for decoding images (``data.max_image_pixels``;
            :data:`~safervlm.data.base.DEFAULT_MAX_IMAGE_PIXELS` when None).

    Raises:
        UnknownBenchmarkError: ``name`` is not registered (a ConfigError and KeyError).
        InputError: The local copy is missing or malformed.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    samples = get_adapter(name).load(root, limit=limit, max_image_pixels=max_image_pixels)
    validate_samples(samples, root)
    return samples
