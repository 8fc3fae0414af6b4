"""Benchmarks: one module per benchmark, loaded by name.

A benchmark module (``benchmarks/<name>.py``) holds its adapter from the official on-disk
format (with ``version`` and ``card``), the judge rubric of its official protocol (its own
:class:`~safervlm.benchmarks.rubric.RubricSpec` -- prompt text, verdict schema, parser -- or
the name of a shared protocol such as ``saferv``) and its official metric, and declares them
in one ``BENCHMARK`` record. Its synthetic fixture writer for the embedded default lives in
``embedded/writers/<name>.py`` (real-data paths never load the synthetic world).

:func:`get_benchmark` imports only the named module, so preparing one benchmark runs (and
its rule tracks) that module alone; :mod:`safervlm.benchmarks.catalog` imports them all,
for the tables every benchmark contributes to (official metrics, official rubrics, the
rubrics the judge registers). The catalog's module list is the registry: adding a benchmark
is its module, one entry there, a fixture writer (``tests/test_add_benchmark.py`` does it),
and its config entries::

    from safervlm.benchmarks import list_benchmarks, load_benchmark
    samples = load_benchmark("vlguard", "/data/VLGuard", limit=100)
"""

from __future__ import annotations

import functools
import importlib
import logging
from pathlib import Path
from typing import Any

from safervlm.benchmarks.registry import Benchmark, Indicator, UnknownBenchmarkError, build_registry
from safervlm.data.adapter import CARD_KEYS, BenchmarkAdapter
from safervlm.errors import ConfigError, InputError
from safervlm.schema import Sample

logger = logging.getLogger(__name__)

# Modules of this package that are not benchmarks.
_SUPPORT = frozenset({"catalog", "official", "registry", "rubric"})
_PACKAGE = Path(__file__).parent


def list_benchmarks() -> list[str]:
    """Names of every benchmark module in this package, sorted (nothing is imported)."""
    return sorted(p.stem for p in _PACKAGE.glob("*.py") if p.stem not in _SUPPORT and p.stem != "__init__")


@functools.cache
def get_benchmark(name: str) -> Benchmark:
    """The :class:`Benchmark` record of ``benchmarks/<name>.py`` (imports that module only).

    Raises:
        UnknownBenchmarkError: (a ConfigError and KeyError) listing the known names.
    """
    known = list_benchmarks()
    if name not in known:
        raise UnknownBenchmarkError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(known)}")
    record = importlib.import_module(f"{__name__}.{name}").BENCHMARK
    return build_registry([record])[name]


__all__ = [
    "Indicator",
    "CARD_KEYS",
    "Benchmark",
    "BenchmarkAdapter",
    "UnknownBenchmarkError",
    "get_adapter",
    "get_benchmark",
    "list_benchmarks",
    "load_benchmark",
    "validate_samples",
]


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
            :data:`~safervlm.data.readers.DEFAULT_MAX_IMAGE_PIXELS` when None).

    Raises:
        UnknownBenchmarkError: ``name`` is not registered (a ConfigError and KeyError).
        InputError: The local copy is missing or malformed.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    samples = get_adapter(name).load(root, limit=limit, max_image_pixels=max_image_pixels)
    validate_samples(samples, root)
    return samples
