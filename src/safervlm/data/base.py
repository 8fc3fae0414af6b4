"""Shared machinery for benchmark adapters: the adapter base class and checked readers.

Every reader here fails with :class:`~safervlm.errors.InputError` naming the file and,
where known, the record, so a user with a broken local copy knows what to fix.

Ground truth for synthetic fixtures lives in a sidecar ``safervlm_truth.json`` in the
benchmark root (sample id -> ``{"should_refuse", "image_objects", "category"}``).
Official copies do not have it; when present, :meth:`BenchmarkAdapter.iter_samples`
merges it into the samples.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image, UnidentifiedImageError

from safervlm.errors import InputError
from safervlm.schema import Sample

logger = logging.getLogger(__name__)

TRUTH_FILE = "safervlm_truth.json"
CARD_KEYS: tuple[str, ...] = ("source", "license", "size", "metric", "paper")


def require_dir(root: Path | str) -> Path:
    """Return ``root`` as a Path, raising InputError if it is not an existing folder."""
    p = Path(root)
    if not p.is_dir():
        raise InputError("benchmark root folder not found", path=p)
    return p


def require_file(path: Path) -> Path:
    """Return ``path``, raising InputError if it is not an existing file."""
    if not path.is_file():
        raise InputError("file not found", path=path)
    return path


def read_json_file(path: Path) -> Any:
    """Read a JSON file, naming the file when it is missing or malformed."""
    require_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"invalid JSON: {exc}", path=path) from exc


def iter_json_list(path: Path) -> Iterator[tuple[Any, object, Path]]:
    """Yield ``(record, position, path)`` for a file holding a JSON list of records."""
    data = read_json_file(path)
    if not isinstance(data, list):
        raise InputError("expected a JSON list of records", path=path)
    for i, record in enumerate(data):
        yield record, i, path


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Read a CSV file with a header row into a list of dicts."""
    require_file(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"invalid CSV: {exc}", path=path) from exc


def get_field(record: Any, key: str, *, path: Path, record_id: object, kind: type = str) -> Any:
    """Return ``record[key]``, raising InputError if absent, null, or of the wrong type.

    Args:
        record: The official record (a mapping).
        key: The required field.
        path: The file the record came from (for the message).
        record_id: The record's index or id (for the message).
        kind: Expected type; ``str`` values must also be non-empty after stripping.
    """
    if not isinstance(record, Mapping):
        raise InputError(
            f"record is a {type(record).__name__}, expected an object", path=path, record=record_id
        )
    if key not in record or record[key] is None:
        raise InputError(f"missing required field {key!r}", path=path, record=record_id)
    value = record[key]
    if kind is str and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, kind):
        raise InputError(
            f"field {key!r} is a {type(value).__name__}, expected {kind.__name__}",
            path=path,
            record=record_id,
        )
    if isinstance(value, str) and not value.strip():
        raise InputError(f"required field {key!r} is empty", path=path, record=record_id)
    return value


def check_image_bytes(data: bytes, *, image: str | Path, record: object) -> bytes:
    """Return ``data`` if it decodes as an image, else raise InputError naming ``image``."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot decode image: {exc}", path=image, record=record) from exc
    return data


def read_image_file(path: Path, *, record: object, referenced_from: Path | None = None) -> bytes:
    """Read and verify an image file, naming it (and its referencing file) on failure."""
    where = f" (referenced from {referenced_from})" if referenced_from is not None else ""
    if not path.is_file():
        raise InputError(f"image not found{where}", path=path, record=record)
    return check_image_bytes(path.read_bytes(), image=path, record=record)


def image_from_struct(value: Any, *, base: Path, path: Path, record: object) -> tuple[bytes, str]:
    """Decode a Hugging Face ``Image`` struct ``{"bytes", "path"}`` from a parquet row.

    Embedded bytes win; otherwise ``path`` is read relative to ``base``.

    Returns:
        The verified image bytes and the provenance path string.
    """
    if isinstance(value, bytes | bytearray):
        return check_image_bytes(bytes(value), image=f"{path}:image", record=record), ""
    if not isinstance(value, Mapping):
        raise InputError("missing required field 'image'", path=path, record=record)
    name = value.get("path") or ""
    data = value.get("bytes")
    if data:
        label = f"{path}:image({name})" if name else f"{path}:image"
        return check_image_bytes(bytes(data), image=label, record=record), str(name)
    if name:
        return read_image_file(base / name, record=record, referenced_from=path), str(name)
    raise InputError("image struct has neither bytes nor path", path=path, record=record)


def load_truth(root: Path) -> dict[str, dict[str, Any]]:
    """Read the fixture ground-truth sidecar if present, else return an empty dict."""
    path = root / TRUTH_FILE
    if not path.exists():
        return {}
    truth = read_json_file(path)
    if not isinstance(truth, dict):
        raise InputError("truth sidecar must map sample id -> object", path=path)
    return truth


def apply_truth(sample: Sample, truth: Mapping[str, Mapping[str, Any]]) -> Sample:
    """Merge sidecar ground truth into ``sample`` (image_objects, should_refuse; empty category)."""
    t = truth.get(sample.id)
    if not t:
        return sample
    if t.get("should_refuse") is not None:
        sample.should_refuse = bool(t["should_refuse"])
    if "image_objects" in t:
        sample.image_objects = [str(o) for o in t["image_objects"]]
    if t.get("category") and not sample.category:
        sample.category = str(t["category"])
    return sample


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
        """Yield normalised samples lazily, merging the truth sidecar when present."""
        base = require_dir(root)
        truth = load_truth(base)
        for record, index, source in self.iter_records(base):
            for sample in self.record_to_sample(record, base, index, source):
                yield apply_truth(sample, truth)

    def load(self, root: Path | str, limit: int | None = None) -> list[Sample]:
        """Load up to ``limit`` samples (all when None) from the local copy at ``root``."""
        samples = list(islice(self.iter_samples(root), limit))
        logger.info("loaded %d samples of %s from %s", len(samples), self.name, root)
        return samples
