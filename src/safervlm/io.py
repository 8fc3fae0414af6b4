"""Atomic writes and typed parquet I/O shared by every stage.

Every output is written to a temporary sibling and renamed into place, so a crashed
or failed stage never leaves a file that looks valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Works for files and directories. On error the temporary path is removed.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent)) / final.name
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``df`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def read_parquet(path: str | os.PathLike[str], required: list[str] | None = None) -> pd.DataFrame:
    """Read a parquet file, failing with a clear error if it is missing or lacks columns."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path=p)
    try:
        df = pd.read_parquet(p)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(f"cannot read parquet: {exc}", path=p) from exc
    missing = [c for c in (required or []) if c not in df.columns]
    if missing:
        raise InputError(f"missing required columns {missing}", path=p)
    return df


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as pretty JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read JSON, naming the file on a parse error."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path=p)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc}", path=p) from exc


def md5_file(path: str | os.PathLike[str]) -> str:
    """md5 of a file's bytes (the hash DVC records for a file)."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
