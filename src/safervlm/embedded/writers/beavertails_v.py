"""Synthetic fixture of BeaverTails-V in its official on-disk format (embedded default).

Evaluation split by default, ``train`` with ``train=True`` (the training source). Images
are embedded as ``{bytes, path}`` structs, as ``datasets`` writes an Image feature.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa

from safervlm.benchmarks import beavertails_v
from safervlm.embedded.common import (
    HARM_CATEGORIES,
    IMAGE_STRUCT,
    Truth,
    dump_parquet,
    harmful_compliance,
    image_struct,
    mixed_tasks,
    over_refusal,
    question,
    truth,
)
from safervlm.embedded.world import answer_for, response_for

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


def write(root: Path, rng: random.Random, n: int, *, train: bool = False) -> Truth:
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
                "image": image_struct(task, rng, f"{cat}_{split}_{i:05d}.png"),
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
        out[beavertails_v.sample_id(split, cat, i)] = truth(
            task.unsafe, [task.obj], task.category if task.unsafe else "benign"
        )
    for cat, rows in sorted(by_cat.items()):
        dump_parquet(rows, BEAVERTAILS_SCHEMA, root / cat / f"{split}-00000-of-00001.parquet")
    return out
