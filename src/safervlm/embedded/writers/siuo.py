"""Synthetic fixture of SIUO in its official on-disk format (embedded default).

Returns the ground truth keyed by the ids :mod:`safervlm.benchmarks.siuo` produces.
"""

from __future__ import annotations

import random
from pathlib import Path

from safervlm.benchmarks import siuo
from safervlm.embedded.common import Truth, cycle, dump_json, question, save_png, truth
from safervlm.embedded.world import UNSAFE_TASKS, answer_for, draw_scene, reasoning_for


def write(root: Path, rng: random.Random, n: int) -> Truth:
    """``n`` unsafe pairs in ``siuo_gen.json`` with images under ``images/``."""
    records, out = [], {}
    for i, task in enumerate(cycle(rng, UNSAFE_TASKS, n)):
        qid = 1000 + i
        name = f"{task.category[:2].upper()}-{i:02d}.png"
        save_png(draw_scene(task.obj, rng), root / "images" / name)
        records.append(
            {
                "question_id": qid,
                "image": name,
                "question": question(task, rng, train=False),
                "category": task.category,
                "safety_warning": reasoning_for(task),
                "reference_answer": answer_for(task),
            }
        )
        out[siuo.sample_id(qid)] = truth(True, [task.obj], task.category)
    dump_json(records, root / "siuo_gen.json")
    return out
