"""Synthetic fixture writers for the Hugging Face parquet datasets (BeaverTails-V, SPA-VL).

Images are embedded as ``{bytes, path}`` structs, as ``datasets`` writes an Image feature.
Each writer returns the ground truth keyed by the ids the matching adapter produces.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa

from safervlm.data import bench_beavertails_v, bench_spa_vl
from safervlm.data.fixtures_common import (
    IMAGE_STRUCT,
    Truth,
    cycle,
    dump_parquet,
    harmful_compliance,
    over_refusal,
    png_bytes,
    question,
    truth,
)
from safervlm.data.world import BENIGN_TASKS, UNSAFE_TASKS, Task, answer_for, draw_scene, response_for

HARM_CATEGORIES: tuple[str, ...] = tuple(sorted({t.category for t in UNSAFE_TASKS}))

BEAVERTAILS_SCHEMA = pa.schema(
    [
        ("question", pa.string()),
        ("image", IMAGE_STRUCT),
        ("category", pa.string()),
        ("image_severity", pa.int64()),
        ("response_1", pa.string()),
        ("response_2", pa.string()),
        ("response_1_from", pa.string()),
        ("response_2_from", pa.string()),
        ("more_helpful_response_id", pa.string()),
        ("is_response_1_safe", pa.string()),
        ("is_response_2_safe", pa.string()),
        ("safer_response_id", pa.string()),
        ("response_1_harmless_rate", pa.int64()),
        ("response_2_harmless_rate", pa.int64()),
        ("response_1_helpful_rate", pa.int64()),
        ("response_2_helpful_rate", pa.int64()),
    ]
)
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


def mixed_tasks(rng: random.Random, n: int, benign_share: float = 1 / 3) -> list[Task]:
    """``n`` tasks, about ``benign_share`` of them benign, in shuffled order."""
    n_benign = round(n * benign_share)
    tasks = cycle(rng, UNSAFE_TASKS, n - n_benign) + cycle(rng, BENIGN_TASKS, n_benign)
    rng.shuffle(tasks)
    return tasks


def _image(task: Task, rng: random.Random, name: str) -> dict[str, Any]:
    return {"bytes": png_bytes(draw_scene(task.obj, rng)), "path": name}


def write_beavertails_v(root: Path, rng: random.Random, n: int, *, train: bool = False) -> Truth:
    """``n`` rows (1/3 benign with image_severity 0) over harm-category folders.

    Unsafe rows go to their task's category folder; benign rows to a random one. Each row
    has one safe and one unsafe response (position random); the safe one is the reference.
    """
    split = "train" if train else "evaluation"
    reply = response_for if train else answer_for
    by_cat: dict[str, list[dict[str, Any]]] = {}
    out: Truth = {}
    for task in mixed_tasks(rng, n):
        cat = task.category if task.unsafe else rng.choice(HARM_CATEGORIES)
        rows = by_cat.setdefault(cat, [])
        i = len(rows)
        safe_first = rng.random() < 0.5
        good = reply(task)
        bad = harmful_compliance(task) if task.unsafe else over_refusal(task)
        r1, r2 = (good, bad) if safe_first else (bad, good)
        safer = "1" if safe_first else "2"
        rows.append(
            {
                "question": question(task, rng, train=train),
                "image": _image(task, rng, f"{cat}_{split}_{i:05d}.png"),
                "category": cat,
                "image_severity": rng.randint(1, 3) if task.unsafe else 0,
                "response_1": r1,
                "response_2": r2,
                "response_1_from": "safervlm-synthetic",
                "response_2_from": "safervlm-synthetic",
                "more_helpful_response_id": safer if not task.unsafe else ("2" if safe_first else "1"),
                "is_response_1_safe": "yes" if safe_first or not task.unsafe else "no",
                "is_response_2_safe": "no" if safe_first and task.unsafe else "yes",
                "safer_response_id": safer,
                "response_1_harmless_rate": 3 if safe_first else -3,
                "response_2_harmless_rate": -3 if safe_first else 3,
                "response_1_helpful_rate": 2,
                "response_2_helpful_rate": 2,
            }
        )
        out[bench_beavertails_v.sample_id(split, cat, i)] = truth(
            task.unsafe, [task.obj], task.category if task.unsafe else "benign"
        )
    for cat, rows in sorted(by_cat.items()):
        dump_parquet(rows, BEAVERTAILS_SCHEMA, root / cat / f"{split}-00000-of-00001.parquet")
    return out


def write_spa_vl(root: Path, rng: random.Random, n: int, *, train: bool = False) -> Truth:
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
            "image": _image(task, rng, name),
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
        out[bench_spa_vl.sample_id(split, i)] = truth(task.unsafe, [task.obj], task.category)
    if train:
        dump_parquet(rows, SPA_VL_TRAIN_SCHEMA, root / "data" / "train-00000-of-00001.parquet")
    else:
        dump_parquet(rows, SPA_VL_EVAL_SCHEMA, root / "evalharm" / "test-00000-of-00001.parquet")
    return out
