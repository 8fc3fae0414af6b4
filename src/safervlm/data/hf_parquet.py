"""Readers for Hugging Face dataset copies on disk: parquet shards or ``save_to_disk`` folders.

Hugging Face stores an ``Image`` feature in parquet as a struct ``{bytes, path}``; the
adapters decode it with :func:`safervlm.data.readers.image_from_struct`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from safervlm.errors import InputError

logger = logging.getLogger(__name__)


def find_shards(folder: Path, patterns: Sequence[str]) -> list[Path]:
    """Return the sorted files matching the first of ``patterns`` (globs under ``folder``) that matches."""
    for pattern in patterns:
        files = sorted(p for p in folder.glob(pattern) if p.is_file())
        if files:
            return files
    return []


def is_saved_dataset(folder: Path) -> bool:
    """Whether ``folder`` looks like a ``datasets.Dataset.save_to_disk`` output."""
    return (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file()


def iter_parquet_rows(
    files: Sequence[Path], required: Sequence[str]
) -> Iterator[tuple[dict[str, Any], int, Path]]:
    """Yield ``(row, index_within_file, file)`` for every row of ``files``, streaming in batches.

    Raises:
        InputError: A file is unreadable or lacks a required column.
    """
    for f in files:
        try:
            pf = pq.ParquetFile(f)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise InputError(f"cannot read parquet: {exc}", path=f) from exc
        missing = [c for c in required if c not in pf.schema_arrow.names]
        if missing:
            raise InputError(f"missing required columns {missing}", path=f)
        i = 0
        try:
            for batch in pf.iter_batches(batch_size=64):
                for row in batch.to_pylist():
                    yield row, i, f
                    i += 1
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot read parquet row group: {exc}", path=f, record=i) from exc


def iter_saved_dataset_rows(
    folder: Path, required: Sequence[str]
) -> Iterator[tuple[dict[str, Any], int, Path]]:
    """Yield ``(row, index, folder)`` from a ``save_to_disk`` folder, images left undecoded."""
    import datasets  # heavy import, only needed for this layout

    try:
        ds = datasets.load_from_disk(str(folder))
    except Exception as exc:
        raise InputError(f"cannot load saved dataset: {exc}", path=folder) from exc
    if not isinstance(ds, datasets.Dataset):
        raise InputError("expected a single-split Dataset folder, found a DatasetDict", path=folder)
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise InputError(f"missing required columns {missing}", path=folder)
    if "image" in ds.features and isinstance(ds.features["image"], datasets.Image):
        ds = ds.cast_column("image", datasets.Image(decode=False))
    for i, row in enumerate(ds):
        yield dict(row), i, folder


def iter_split_rows(
    folder: Path, patterns: Sequence[str], saved_dirs: Sequence[str], required: Sequence[str]
) -> Iterator[tuple[dict[str, Any], int, Path]]:
    """Rows of one split: parquet shards matching ``patterns``, else a saved-dataset folder.

    Args:
        folder: Where the split lives.
        patterns: Globs for parquet shards, tried in order.
        saved_dirs: Sub-folders of ``folder`` that may hold a ``save_to_disk`` copy.
        required: Columns every row must have.

    Raises:
        InputError: Nothing matching was found (names ``folder`` and the patterns).
    """
    files = find_shards(folder, patterns)
    if files:
        yield from iter_parquet_rows(files, required)
        return
    for sub in saved_dirs:
        if is_saved_dataset(folder / sub):
            yield from iter_saved_dataset_rows(folder / sub, required)
            return
    raise InputError(
        f"no data files matching {list(patterns)} or saved dataset in {list(saved_dirs)}", path=folder
    )
