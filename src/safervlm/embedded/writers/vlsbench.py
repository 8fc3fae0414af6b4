"""Synthetic fixture of VLSBench in its official on-disk format (embedded default).

Returns the ground truth keyed by the ids :mod:`safervlm.benchmarks.vlsbench` produces.
"""

from __future__ import annotations

import random
from pathlib import Path

from safervlm.benchmarks import vlsbench
from safervlm.embedded.common import Truth, cycle, dump_json, question, save_png, truth
from safervlm.embedded.world import UNSAFE_TASKS, draw_scene, reasoning_for


def write(root: Path, rng: random.Random, n: int) -> Truth:
    """``n`` unsafe image-instruction pairs in ``data.json`` with images under ``imgs/``."""
    records, out = [], {}
    for i, task in enumerate(cycle(rng, UNSAFE_TASKS, n)):
        path = f"imgs/{i:05d}.png"
        save_png(draw_scene(task.obj, rng), root / path)
        records.append(
            {
                "instruction_id": i,
                "instruction": question(task, rng, train=False),
                "image_path": path,
                "category": task.category,
                "sub_category": task.obj,
                "source": "safervlm-synthetic",
                "image_description": f"A {task.obj} on a plain background.",
                "safety_reason": reasoning_for(task),
            }
        )
        out[vlsbench.sample_id(i)] = truth(True, [task.obj], task.category)
    dump_json(records, root / "data.json")
    return out
