"""Synthetic fixture of SPA-VL in its official on-disk format (embedded default).

EvalHarm by default, ``data/train`` with ``train=True`` (the training source). Images
are embedded as ``{bytes, path}`` structs, as ``datasets`` writes an Image feature.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa

from safervlm.benchmarks import spa_vl
from safervlm.embedded.common import (
    IMAGE_STRUCT,
    Truth,
    cycle,
    dump_parquet,
    harmful_compliance,
    image_struct,
    mixed_tasks,
    over_refusal,
    question,
    truth,
)
from safervlm.embedded.world import UNSAFE_TASKS, response_for

SPA_VL_EVAL_SCHEMA = pa.schema(
    [("image", IMAGE_STRUCT), ("question", pa.string())] + [(f"class{i}", pa.string()) for i in (1, 2, 3)]
)
SPA_VL_TRAIN_SCHEMA = pa.schema(
    [
        ("image", IMAGE_STRUCT),
        ("question", pa.string()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("image_name", pa.string()),
    ]
    + [(f"class{i}", pa.string()) for i in (1, 2, 3)]
)


def write(root: Path, rng: random.Random, n: int, *, train: bool = False) -> Truth:
    """Eval: ``n`` harmful rows in ``evalharm/``; train: ``n`` mixed rows with chosen/rejected in ``data/``.

    Returns:
        Ground truth keyed by the ids the SPA-VL adapter produces.
    """
    split = "train" if train else "evalharm"
    tasks = mixed_tasks(rng, n) if train else cycle(rng, UNSAFE_TASKS, n)
    rows: list[dict[str, Any]] = []
    out: Truth = {}
    for i, task in enumerate(tasks):
        name = f"spa_vl_{split}_{i:06d}.png"
        row: dict[str, Any] = {
            "image": image_struct(task, rng, name),
            "question": question(task, rng, train=train),
            "class1": task.category,
            "class2": task.obj,
            "class3": "synthetic",
        }
        if train:
            row |= {
                "chosen": response_for(task),
                "rejected": harmful_compliance(task) if task.unsafe else over_refusal(task),
                "image_name": name,
            }
        rows.append(row)
        out[spa_vl.sample_id(split, i)] = truth(task.unsafe, [task.obj], task.category)
    if train:
        dump_parquet(rows, SPA_VL_TRAIN_SCHEMA, root / "data" / "train-00000-of-00001.parquet")
    else:
        dump_parquet(rows, SPA_VL_EVAL_SCHEMA, root / "evalharm" / "test-00000-of-00001.parquet")
    return out
