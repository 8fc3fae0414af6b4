"""Training-source readers: rows for the SFT/RL training pool.

Each row is :meth:`Sample.to_row` plus ``source`` (the source name) and ``response``
(the safe reference response used for supervised fine-tuning):

* ``beavertails_v`` — BeaverTails-V ``train`` split (layout as in
  :mod:`safervlm.data.bench_beavertails_v`); response = a response marked safe (the
  safer one first). Rows with no safe response are skipped.
* ``spa_vl`` — SPA-VL ``data/train-*.parquet``; response = ``chosen`` (``rejected`` and
  ``class1..3`` are kept in ``meta``).
* ``vlguard_train`` — VLGuard ``train.json`` with images under ``train/``; one row per
  instr-resp entry, response = the entry's ``response``. Entries without one are skipped.

Missing folders, files, fields and unreadable images raise :class:`InputError` exactly
as the benchmark adapters do. A ``safervlm_truth.json`` sidecar is merged when present.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safervlm.data.base import BenchmarkAdapter
from safervlm.data.bench_beavertails_v import BeaverTailsV
from safervlm.data.bench_spa_vl import SpaVL
from safervlm.data.bench_vlguard import VLGuard
from safervlm.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

_FACTORIES: dict[str, Callable[[], BenchmarkAdapter]] = {
    "beavertails_v": lambda: BeaverTailsV(split="train"),
    "spa_vl": lambda: SpaVL(split="train"),
    "vlguard_train": lambda: VLGuard(
        filename="train.json", image_dirs=("train", ""), id_prefix="vlguard_train"
    ),
}


def list_sources() -> list[str]:
    """Names accepted by :func:`load_source`, sorted."""
    return sorted(_FACTORIES)


def source_adapter(name: str) -> BenchmarkAdapter:
    """The adapter that reads training source ``name``.

    Raises:
        ConfigError: ``name`` is unknown (the message lists the known names).
    """
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise ConfigError(
            f"unknown training source {name!r}; known sources: {', '.join(list_sources())}"
        ) from None


def load_source(name: str, root: Path | str, limit: int | None = None) -> list[dict[str, Any]]:
    """Read up to ``limit`` training rows of source ``name`` from its local copy at ``root``.

    Args:
        name: One of :func:`list_sources`.
        root: The source's root folder (official on-disk layout).
        limit: Maximum number of rows returned (all when None).

    Returns:
        Rows with every ``SAMPLE_COLUMNS`` field plus ``source`` and ``response``.

    Raises:
        ConfigError: Unknown source name.
        InputError: Bad local copy, duplicate ids, or no row with a safe response.
    """
    adapter = source_adapter(name)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    skipped = 0
    if limit is not None and limit <= 0:
        return rows
    for sample in adapter.iter_samples(root):
        if not sample.reference.strip():
            skipped += 1
            continue
        if sample.id in seen:
            raise InputError("duplicate sample id", path=root, record=sample.id)
        seen.add(sample.id)
        sample.benchmark = name
        row = sample.to_row()
        row["source"] = name
        row["response"] = sample.reference
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    if skipped:
        logger.info("%s: skipped %d rows without a safe reference response", name, skipped)
    if not rows:
        raise InputError(f"training source {name!r} has no rows with a safe reference response", path=root)
    logger.info("loaded %d training rows of %s from %s", len(rows), name, root)
    return rows
