"""Benchmark adapters, training-source readers and synthetic fixtures.

Importing this package registers every benchmark adapter::

    from safervlm.data import list_benchmarks, load_benchmark
    samples = load_benchmark("vlguard", "/data/VLGuard", limit=100)
"""

from __future__ import annotations

import logging
from pathlib import Path

from safervlm.data import (  # noqa: F401  (imported to register the adapters)
    bench_beavertails_v,
    bench_figstep,
    bench_mmsafetybench,
    bench_mssbench,
    bench_siuo,
    bench_spa_vl,
    bench_vlguard,
    bench_vlsbench,
)
from safervlm.data.base import CARD_KEYS, BenchmarkAdapter
from safervlm.data.registry import UnknownBenchmarkError, get_adapter, list_benchmarks, register
from safervlm.errors import InputError
from safervlm.schema import Sample

logger = logging.getLogger(__name__)

__all__ = [
    "CARD_KEYS",
    "BenchmarkAdapter",
    "UnknownBenchmarkError",
    "get_adapter",
    "list_benchmarks",
    "load_benchmark",
    "register",
    "validate_samples",
]


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
