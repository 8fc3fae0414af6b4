"""The benchmark adapter base class: an official local copy read into :class:`Sample` records.

Adapters read their files with the checked readers of :mod:`safervlm.data.readers`; a
record shaped unlike the official format fails with an error naming file and record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

from safervlm.data.readers import HOSTILE, image_pixel_limit, require_dir
from safervlm.errors import InputError, SafervlmError
from safervlm.schema import Sample

logger = logging.getLogger(__name__)

CARD_KEYS: tuple[str, ...] = ("source", "license", "size", "metric", "paper")


class BenchmarkAdapter:
    """Reads one benchmark's official local copy into normalised :class:`Sample` records.

    Subclasses set ``name``, ``version`` and ``card`` and implement :meth:`iter_records`
    (official records in file order) and :meth:`record_to_sample` (one record to its
    samples; a record may expand to several, e.g. one per image type or instruction).
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    card: ClassVar[dict[str, Any]] = {}

    def iter_records(self, root: Path) -> Iterator[tuple[Any, object, Path]]:
        """Yield ``(record, index, source_file)`` for every official record under ``root``."""
        raise NotImplementedError

    def record_to_sample(
        self, record: Any, root: Path, index: object, source: Path | None = None
    ) -> list[Sample]:
        """Normalise one official record to its samples.

        Args:
            record: The record as read from the official file.
            root: The benchmark root (image paths are resolved against it).
            index: The record's position or key in its file (used in ids and errors).
            source: The file the record came from; defaults to the benchmark's main file.
        """
        raise NotImplementedError

    def iter_samples(self, root: Path | str) -> Iterator[Sample]:
        """Yield normalised samples lazily, in file order."""
        base = require_dir(root)
        for record, index, source in self.iter_records(base):
            try:
                samples = self.record_to_sample(record, base, index, source)
            except SafervlmError:
                raise
            except HOSTILE as exc:  # a record shaped unlike the official format
                logger.debug("record %s of %s", index, source, exc_info=True)
                raise InputError(
                    f"cannot read record: {type(exc).__name__}: {exc}", path=source, record=index
                ) from exc
            yield from samples

    def load(
        self, root: Path | str, limit: int | None = None, *, max_image_pixels: int | None = None
    ) -> list[Sample]:
        """Load up to ``limit`` samples (all when None) from the local copy at ``root``.

        Args:
            root: The benchmark root.
            limit: Maximum number of samples (all when None).
            max_image_pixels: Pixel limit for decoding images (the one in force when None).

        Raises:
            InputError: Bad local copy, or no samples at all (unless ``limit`` is 0).
        """
        with image_pixel_limit(max_image_pixels):
            samples = list(islice(self.iter_samples(root), limit))
        if not samples and limit != 0:
            raise InputError(f"no samples: the {self.name} copy is empty", path=root)
        logger.info("loaded %d samples of %s from %s", len(samples), self.name, root)
        return samples
