"""Training-source readers: rows for the QI-Safe training pool.

Each row is :meth:`Sample.to_row` plus ``source`` (the source name) and ``response``
(the safe reference response used for supervised fine-tuning):

* ``beavertails_v`` — BeaverTails-V ``train`` split of every harm-category config (or
  the chosen ``configs``), layout as in :mod:`safervlm.benchmarks.beavertails_v`;
  response = a response marked safe (the safer one first). Rows with no safe response
  are skipped.
* ``spa_vl`` — SPA-VL ``data/train-*.parquet`` (``image, question, chosen, rejected,
  class1..3``); response = ``chosen`` (``rejected`` and ``class1..3`` are kept in ``meta``).
* ``vlguard_train`` — VLGuard ``train.json`` with images under ``train/``; one row per
  instr-resp entry, response = the entry's ``response``. Entries without one are skipped.

A ``cap`` keeps a seeded uniform sample of that many rows (reservoir sampling over the
source in file order, so memory stays bounded by the cap), returned in file order.
Missing folders, files, columns, undecodable or oversized images, image paths that leave
the root and malformed JSON raise :class:`InputError` naming the file and the record,
exactly as the benchmark adapters do (they share the readers of
:mod:`safervlm.data.readers`). A row with an empty question and a valid image is an
image-only prompt and kept. A ``safervlm_truth.json`` sidecar is merged when present.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from safervlm.benchmarks.beavertails_v import BeaverTailsV
from safervlm.benchmarks.spa_vl import SpaVL
from safervlm.benchmarks.vlguard import VLGuard
from safervlm.data.adapter import BenchmarkAdapter
from safervlm.embedded.truth import with_truth
from safervlm.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

# name -> factory(configs); only sources split into dataset configs accept ``configs``.
_FACTORIES: dict[str, Callable[[Sequence[str] | None], BenchmarkAdapter]] = {
    "beavertails_v": lambda configs: BeaverTailsV(split="train", categories=configs),
    "spa_vl": lambda configs: SpaVL(split="train"),
    "vlguard_train": lambda configs: VLGuard(
        filename="train.json", image_dirs=("train", ""), id_prefix="vlguard_train"
    ),
}
_WITH_CONFIGS = frozenset({"beavertails_v"})


def list_sources() -> list[str]:
    """Names accepted by :func:`load_source`, sorted."""
    return sorted(_FACTORIES)


def source_adapter(name: str, configs: Sequence[str] | None = None) -> BenchmarkAdapter:
    """The adapter that reads training source ``name`` (restricted to ``configs`` if given).

    Raises:
        ConfigError: ``name`` is unknown (the message lists the known names), or
            ``configs`` is given for a source that has no dataset configs.
    """
    if name not in _FACTORIES:
        raise ConfigError(f"unknown training source {name!r}; known sources: {', '.join(list_sources())}")
    if configs is not None and name not in _WITH_CONFIGS:
        raise ConfigError(
            f"training source {name!r} has no dataset configs to choose from; "
            f"'configs' applies to {sorted(_WITH_CONFIGS)}"
        )
    return _FACTORIES[name](configs)


def _reservoir(
    rows: list[tuple[int, dict[str, Any]]], item: dict[str, Any], seen: int, cap: int, rng: random.Random
) -> None:
    """Algorithm R: after ``seen`` items every one is kept with probability cap/seen."""
    if len(rows) < cap:
        rows.append((seen - 1, item))
        return
    j = rng.randrange(seen)
    if j < cap:
        rows[j] = (seen - 1, item)


def load_source(
    name: str,
    root: Path | str,
    cap: int | None = None,
    *,
    seed: int = 0,
    configs: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Read the training rows of source ``name`` from its local copy at ``root``.

    Args:
        name: One of :func:`list_sources`.
        root: The source's root folder (official on-disk layout).
        cap: Keep a seeded uniform sample of at most this many rows (all when None).
        seed: Seed of the cap's sample (the source name is mixed in).
        configs: Dataset configs to read (BeaverTails-V harm categories; all when None).

    Returns:
        Rows with every ``SAMPLE_COLUMNS`` field plus ``source`` and ``response``, in file order.

    Raises:
        ConfigError: Unknown source name, or ``configs`` for a source without configs.
        InputError: Bad local copy, duplicate ids, or no row with a safe response.
    """
    if cap is not None and cap <= 0:
        raise ConfigError(f"cap of training source {name!r} must be >= 1, got {cap}")
    adapter = source_adapter(name, configs)
    rng = random.Random(f"safervlm-pool/{seed}/{name}")
    kept: list[tuple[int, dict[str, Any]]] = []
    seen_ids: set[str] = set()
    skipped = 0
    for sample in with_truth(adapter.iter_samples(root), root):
        if not sample.reference.strip():
            skipped += 1
            continue
        if sample.id in seen_ids:
            raise InputError("duplicate sample id", path=root, record=sample.id)
        seen_ids.add(sample.id)
        sample.benchmark = name
        row = sample.to_row()
        row["source"] = name
        row["response"] = sample.reference
        if cap is None:
            kept.append((len(seen_ids) - 1, row))
        else:
            _reservoir(kept, row, len(seen_ids), cap, rng)
    if skipped:
        logger.info("%s: skipped %d rows without a safe reference response", name, skipped)
    if not kept:
        raise InputError(f"training source {name!r} has no rows with a safe reference response", path=root)
    rows = [row for _, row in sorted(kept, key=lambda t: t[0])]
    logger.info(
        "loaded %d of %d training rows of %s from %s (cap %s)", len(rows), len(seen_ids), name, root, cap
    )
    return rows
