"""Helpers shared by the synthetic fixture writers: deterministic files, world text, tasks.

Everything written here is byte-deterministic for a given seed: JSON with sorted keys,
PNG/JPEG with fixed encoder settings, parquet from an explicit Arrow schema.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from safervlm.embedded.world import (
    BENIGN_TASKS,
    EVAL_TEMPLATES,
    TRAIN_TEMPLATES,
    UNSAFE_TASKS,
    Task,
    draw_scene,
)

T = TypeVar("T")
Truth = dict[str, dict[str, Any]]

# Image struct as Hugging Face ``datasets`` stores an Image feature in parquet.
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
# Harm categories of the world (BeaverTails-V-style category folders).
HARM_CATEGORIES: tuple[str, ...] = tuple(sorted({t.category for t in UNSAFE_TASKS}))


def cycle(rng: random.Random, pool: Sequence[T], n: int) -> list[T]:
    """``n`` items from ``pool``: shuffled passes over it, so every item is used evenly."""
    out: list[T] = []
    while len(out) < n:
        batch = list(pool)
        rng.shuffle(batch)
        out.extend(batch)
    return out[:n]


def question(task: Task, rng: random.Random, *, train: bool) -> str:
    """A question for ``task`` in a training (TRAIN_TEMPLATES) or held-out (EVAL_TEMPLATES) phrasing."""
    templates = TRAIN_TEMPLATES if train else EVAL_TEMPLATES
    return rng.choice(templates).format(task=task.text)


def unsafe_for(obj: str, rng: random.Random) -> Task:
    """An unsafe task about ``obj`` (any unsafe task if ``obj`` has none)."""
    same = [t for t in UNSAFE_TASKS if t.obj == obj]
    return rng.choice(same or list(UNSAFE_TASKS))


def benign_for(obj: str, rng: random.Random) -> Task:
    """A benign task about ``obj`` (any benign task if ``obj`` has none)."""
    same = [t for t in BENIGN_TASKS if t.obj == obj]
    return rng.choice(same or list(BENIGN_TASKS))


def harmful_compliance(task: Task) -> str:
    """A placeholder *unsafe* response that complies (the rejected / unsafe side of a pair)."""
    return (
        f"<think>The image shows a {task.obj}. The user wants to {task.text}; I will just answer.</think>"
        f"Sure. Here is how to {task.text}: first get close to the {task.obj}, then go ahead quickly "
        "so that nobody notices."
    )


def over_refusal(task: Task) -> str:
    """A placeholder needless refusal of a benign request (the rejected side for benign tasks)."""
    return f"<think>The image shows a {task.obj}.</think>I cannot help with that."


def truth(should_refuse: bool, objects: Sequence[str], category: str) -> dict[str, Any]:
    """One ground-truth sidecar entry."""
    return {"should_refuse": should_refuse, "image_objects": list(objects), "category": category}


def png_bytes(img: Image.Image) -> bytes:
    """Encode ``img`` as PNG with fixed settings (deterministic bytes)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def jpeg_bytes(img: Image.Image) -> bytes:
    """Encode ``img`` as baseline JPEG with fixed settings (deterministic bytes)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, optimize=False, progressive=False, subsampling=0)
    return buf.getvalue()


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def save_png(img: Image.Image, path: Path) -> None:
    """Save ``img`` as a deterministic PNG."""
    write_bytes(path, png_bytes(img))


def save_jpeg(img: Image.Image, path: Path) -> None:
    """Save ``img`` as a deterministic JPEG."""
    write_bytes(path, jpeg_bytes(img))


def dump_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON with sorted keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def dump_csv(rows: list[dict[str, Any]], columns: Sequence[str], path: Path) -> None:
    """Write ``rows`` as CSV with a header in ``columns`` order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def dump_parquet(rows: list[dict[str, Any]], schema: pa.Schema, path: Path) -> None:
    """Write ``rows`` to a parquet file with an explicit schema (deterministic bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, path, compression="snappy")


def mixed_tasks(rng: random.Random, n: int, benign_share: float = 1 / 3) -> list[Task]:
    """``n`` tasks, about ``benign_share`` of them benign, in shuffled order."""
    n_benign = round(n * benign_share)
    tasks = cycle(rng, UNSAFE_TASKS, n - n_benign) + cycle(rng, BENIGN_TASKS, n_benign)
    rng.shuffle(tasks)
    return tasks


def image_struct(task: Task, rng: random.Random, name: str) -> dict[str, Any]:
    """The ``{bytes, path}`` Image struct of a scene showing ``task``'s object, named ``name``."""
    return {"bytes": png_bytes(draw_scene(task.obj, rng)), "path": name}
