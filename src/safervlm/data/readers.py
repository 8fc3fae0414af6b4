"""Checked readers of untrusted benchmark and training-source files.

Benchmark and training-source files are untrusted input. Every reader here fails with
:class:`~safervlm.errors.InputError` naming the file and, where known, the record, so a
user with a broken local copy knows what to fix, and nothing is read from outside the
benchmark root:

* image paths (relative, absolute, or through symlinks) are resolved and must stay
  inside the root; the check runs before the file is opened or even stat'ed;
* images are decoded under an explicit pixel limit (:data:`DEFAULT_MAX_IMAGE_PIXELS`,
  config key ``data.max_image_pixels``; see :func:`image_pixel_limit`);
* JSON is parsed strictly: ``NaN``/``Infinity`` literals, numbers that overflow,
  integers longer than :data:`MAX_INT_DIGITS` digits, lone UTF-16 surrogates and nesting
  deeper than :data:`MAX_JSON_DEPTH` are refused, as are empty files and empty lists;
* required text and id fields must not be NaN/Infinity (parquet) or ``"nan"``-like text.

The adapter base class that uses them is :mod:`safervlm.data.adapter`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import re
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from PIL import Image

from safervlm.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

# Pixel limit for decoding benchmark images: twice PIL's default MAX_IMAGE_PIXELS
# (89,478,485), i.e. the size at which PIL itself refuses an image outright. Real
# benchmark images are at most a few megapixels; a 30000x30000 header (900M pixels,
# ~2.7 GB decoded) is refused before any pixel is decoded.
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970
# Real records nest a handful of levels and carry ids of a few digits.
MAX_JSON_DEPTH = 64
MAX_INT_DIGITS = 100
# Text that is a stringified missing number (pandas' str(float("nan")) and friends).
_NON_FINITE_TEXT = frozenset(
    {"nan", "-nan", "+nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"}
)

# Exceptions a malformed record can raise inside an adapter; reported as InputError.
HOSTILE = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, UnicodeError, OverflowError,
)  # fmt: skip
_max_pixels: ContextVar[int] = ContextVar("safervlm_max_image_pixels", default=DEFAULT_MAX_IMAGE_PIXELS)
_PIL_LOCK = threading.Lock()  # Image.MAX_IMAGE_PIXELS is a module global


def current_max_image_pixels() -> int:
    """The pixel limit images are decoded under (set with :func:`image_pixel_limit`)."""
    return _max_pixels.get()


@contextlib.contextmanager
def image_pixel_limit(limit: int | None) -> Iterator[int]:
    """Decode images under ``limit`` pixels (width x height) inside the ``with`` block.

    ``None`` keeps the current limit (:data:`DEFAULT_MAX_IMAGE_PIXELS` unless set).

    Raises:
        ConfigError: ``limit`` is not a positive integer.
    """
    if limit is None:
        yield current_max_image_pixels()
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"data.max_image_pixels must be a positive integer, got {limit!r}")
    token = _max_pixels.set(limit)
    try:
        yield limit
    finally:
        _max_pixels.reset(token)


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


class _Rejected:
    """Placeholder the strict JSON parser leaves where a value is refused (see :func:`_check_tree`)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


def _parse_constant(text: str) -> _Rejected:
    return _Rejected(f"{text} (JSON has no NaN/Infinity; write null for a missing value)")


def _parse_float(text: str) -> float | _Rejected:
    value = float(text)
    return value if math.isfinite(value) else _Rejected(f"number {text[:40]} overflows to infinity")


def _parse_int(text: str) -> int | _Rejected:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return _Rejected(f"an integer with {digits} digits (more than {MAX_INT_DIGITS})")
    return int(text)


def _where(steps: tuple[object, ...]) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps) or "(top level)"


def _record_of(steps: tuple[object, ...]) -> object:
    """The record a JSON location belongs to: list position or object key at the top, or
    ``key[i]`` for an object of lists (MSSBench's ``combined.json``)."""
    if not steps:
        return None
    if len(steps) >= 2 and isinstance(steps[0], str) and isinstance(steps[1], int):
        return f"{steps[0]}[{steps[1]}]"
    return steps[0]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_tree(data: Any, path: Path) -> None:
    """Refuse rejected numbers, lone surrogates and over-deep nesting anywhere in ``data``.

    Iterative, so it cannot overflow the stack however deep ``data`` is.
    """
    stack: list[tuple[Any, tuple[object, ...]]] = [(data, ())]
    while stack:
        value, steps = stack.pop()
        if len(steps) > MAX_JSON_DEPTH:
            raise InputError(
                f"JSON nested more than {MAX_JSON_DEPTH} levels deep at {_where(steps[:8])}...",
                path=path,
                record=_record_of(steps),
            )
        if isinstance(value, _Rejected):
            raise InputError(
                f"refused value at {_where(steps)}: {value.what}", path=path, record=_record_of(steps)
            )
        if isinstance(value, str):
            if not _encodable(value):
                raise InputError(
                    f"string at {_where(steps)} holds a lone UTF-16 surrogate (not valid Unicode text)",
                    path=path,
                    record=_record_of(steps),
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                if not _encodable(key):
                    raise InputError(
                        f"key at {_where(steps)} holds a lone UTF-16 surrogate (not valid Unicode text)",
                        path=path,
                        record=_record_of(steps),
                    )
                stack.append((item, (*steps, key)))
        elif isinstance(value, list):
            stack.extend((item, (*steps, i)) for i, item in enumerate(value))


def read_json_file(path: Path) -> Any:
    """Read a JSON file strictly, naming the file (and the record) when it is unusable.

    Raises:
        InputError: Missing, empty, undecodable or malformed file; nesting too deep for the
            parser or deeper than :data:`MAX_JSON_DEPTH`; ``NaN``/``Infinity``, an overflowing
            number or an integer of more than :data:`MAX_INT_DIGITS` digits; a lone surrogate.
    """
    require_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid JSON: not UTF-8 text: {exc}", path=path) from exc
    if not text.strip():
        raise InputError("invalid JSON: the file is empty", path=path)
    try:
        data = json.loads(
            text, parse_constant=_parse_constant, parse_float=_parse_float, parse_int=_parse_int
        )
    except RecursionError as exc:
        raise InputError("invalid JSON: nested too deeply to parse", path=path) from exc
    except ValueError as exc:  # json.JSONDecodeError and other parse failures
        raise InputError(f"invalid JSON: {exc}", path=path) from exc
    _check_tree(data, path)
    return data


def iter_json_list(path: Path) -> Iterator[tuple[Any, object, Path]]:
    """Yield ``(record, position, path)`` for a file holding a non-empty JSON list of records."""
    data = read_json_file(path)
    if not isinstance(data, list):
        raise InputError(f"expected a JSON list of records, found a {_json_type(data)}", path=path)
    if not data:
        raise InputError("the JSON list of records is empty", path=path)
    for i, record in enumerate(data):
        yield record, i, path


def _json_type(value: Any) -> str:
    names = {dict: "JSON object", list: "JSON list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Read a CSV file with a header row into a list of dicts (at least one data row)."""
    require_file(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"invalid CSV: {exc}", path=path) from exc
    if not rows:
        raise InputError("invalid CSV: no data rows (the file is empty or holds only a header)", path=path)
    return rows


def is_non_finite(value: Any) -> bool:
    """Whether ``value`` is a float NaN or infinity (e.g. a missing value from parquet)."""
    return isinstance(value, float) and not math.isfinite(value)


def optional_text(record: Any, key: str) -> str:
    """``record[key]`` as text; "" when absent, null, NaN or infinite (never the text "nan")."""
    value = record.get(key) if isinstance(record, Mapping) else None
    if value is None or is_non_finite(value):
        return ""
    return str(value)


def get_field(
    record: Any,
    key: str,
    *,
    path: Path,
    record_id: object,
    kind: type = str,
    allow_empty: bool = False,
) -> Any:
    """Return ``record[key]``, raising InputError if absent, null, or of the wrong type.

    Args:
        record: The official record (a mapping).
        key: The required field.
        path: The file the record came from (for the message).
        record_id: The record's index or id (for the message).
        kind: Expected type. ``str`` fields accept integers and finite floats (converted),
            and refuse NaN/Infinity and text such as ``"nan"`` or ``"inf"``.
        allow_empty: For ``str``: an empty (or blank) value is returned as ``""`` instead of
            refused (prompt text, where an image-only prompt is legitimate).
    """
    if not isinstance(record, Mapping):
        raise InputError(
            f"record is a {type(record).__name__}, expected an object", path=path, record=record_id
        )
    if key not in record or record[key] is None:
        raise InputError(f"missing required field {key!r}", path=path, record=record_id)
    value = record[key]
    if kind is str and is_non_finite(value):
        raise InputError(
            f"field {key!r} is {value} (a missing number), expected text", path=path, record=record_id
        )
    if kind is str and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, kind):
        raise InputError(
            f"field {key!r} is a {type(value).__name__}, expected {kind.__name__}",
            path=path,
            record=record_id,
        )
    if isinstance(value, str):
        if not _encodable(value):
            raise InputError(
                f"field {key!r} holds a lone UTF-16 surrogate (not valid Unicode text)",
                path=path,
                record=record_id,
            )
        if value.strip().lower() in _NON_FINITE_TEXT:
            raise InputError(
                f"field {key!r} is {value.strip()!r}, a missing number written as text",
                path=path,
                record=record_id,
            )
        if not value.strip():
            if allow_empty:
                return ""
            raise InputError(f"required field {key!r} is empty", path=path, record=record_id)
    return value


def check_image_bytes(
    data: bytes,
    *,
    image: str | Path,
    record: object,
    max_pixels: int | None = None,
    referenced_from: Path | None = None,
) -> bytes:
    """Return ``data`` if it decodes as an image within the pixel limit, else raise InputError.

    Args:
        data: The encoded image.
        image: Where it came from (named in the message).
        record: The record it belongs to (named in the message).
        max_pixels: Pixel limit (width x height); the :func:`image_pixel_limit` in force when None.
        referenced_from: The file whose record names the image (added to the message).
    """
    limit = current_max_image_pixels() if max_pixels is None else max_pixels
    where = f" (referenced from {referenced_from})" if referenced_from is not None else ""
    too_big = f"exceeds the pixel limit of {limit:,} (data.max_image_pixels){where}"
    try:
        with _PIL_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = limit  # explicit: never PIL's process-wide default
            try:
                # Image.open checks the header's size against the limit before decoding pixels.
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # PIL checks the header's size in Image.open: "Image size (N pixels) exceeds limit ..."
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" of {int(found.group(1)):,} pixels" if found else ""
        raise InputError(f"image{size} {too_big}", path=image, record=record) from exc
    except Exception as exc:  # PIL raises many types on hostile data (OSError, ValueError, struct.error, ...)
        raise InputError(f"cannot decode image: {exc}{where}", path=image, record=record) from exc
    return data


def resolve_inside(candidate: Path, *, root: Path, path: Path | None, record: object) -> Path:
    """``candidate`` resolved (symlinks followed); InputError if that leaves ``root``.

    Only path names are looked at (no file is opened), so nothing outside ``root`` is read.

    Args:
        candidate: The image path as built from the record (``root / rel``, or absolute).
        root: The benchmark root it must stay inside.
        path: The file that referenced it (named in the message; ``candidate`` when None).
        record: The record it came from.
    """
    where = path if path is not None else candidate
    try:
        base = root.resolve()
        target = candidate.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loop, NUL byte, ...
        raise InputError(
            f"cannot resolve image path {str(candidate)!r}: {exc}", path=where, record=record
        ) from exc
    if not target.is_relative_to(base):
        lexical = Path(os.path.normpath(os.path.abspath(candidate)))  # "..", no links followed
        via_link = lexical.is_relative_to(Path(os.path.abspath(root)))
        hint = (
            "; a symbolic link leads out (a Hugging Face cache snapshot links its files to "
            "../../blobs: download with --local-dir instead)"
            if via_link
            else ""
        )
        raise InputError(
            f"image path {str(candidate)!r} leaves the benchmark root {base} (it resolves to {target})"
            f"{hint}; refusing to read it",
            path=where,
            record=record,
        )
    return target


def read_image_file(path: Path, *, root: Path, record: object, referenced_from: Path | None = None) -> bytes:
    """Read and verify an image file inside ``root``, naming it (and its referencing file) on failure.

    The containment check (:func:`resolve_inside`) runs before the file is stat'ed or opened.
    """
    target = resolve_inside(path, root=root, path=referenced_from, record=record)
    where = f" (referenced from {referenced_from})" if referenced_from is not None else ""
    if not target.is_file():
        raise InputError(f"image not found{where}", path=path, record=record)
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read image{where}: {exc}", path=path, record=record) from exc
    return check_image_bytes(data, image=path, record=record, referenced_from=referenced_from)


def image_from_struct(value: Any, *, root: Path, base: Path, path: Path, record: object) -> tuple[bytes, str]:
    """Decode a Hugging Face ``Image`` struct ``{"bytes", "path"}`` from a parquet row.

    Embedded bytes win; otherwise ``path`` is read relative to ``base`` and must stay
    inside ``root``.

    Returns:
        The verified image bytes and the provenance path string.
    """
    if isinstance(value, bytes | bytearray):
        return check_image_bytes(bytes(value), image=f"{path}:image", record=record), ""
    if not isinstance(value, Mapping):
        raise InputError("missing required field 'image'", path=path, record=record)
    name = value.get("path") or ""
    data = value.get("bytes")
    if name and not isinstance(name, str):
        raise InputError(f"image path is a {type(name).__name__}, expected str", path=path, record=record)
    if data:
        if not isinstance(data, bytes | bytearray):
            raise InputError(
                f"image bytes are a {type(data).__name__}, expected bytes", path=path, record=record
            )
        label = f"{path}:image({name})" if name else f"{path}:image"
        return check_image_bytes(bytes(data), image=label, record=record), str(name)
    if name:
        return read_image_file(base / name, root=root, record=record, referenced_from=path), str(name)
    raise InputError("image struct has neither bytes nor path", path=path, record=record)
