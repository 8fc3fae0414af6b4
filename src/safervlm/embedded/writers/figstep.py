"""Synthetic fixture of FigStep (SafeBench) in its official on-disk format (embedded default).

Returns the ground truth keyed by the ids :mod:`safervlm.benchmarks.figstep` produces.
"""

from __future__ import annotations

import random
from pathlib import Path

from safervlm.benchmarks import figstep
from safervlm.embedded.common import Truth, cycle, dump_csv, question, save_png, truth
from safervlm.embedded.world import UNSAFE_TASKS, draw_typography

# World harm category -> FigStep category id and name.
FIGSTEP_CATEGORY = {
    "property_crime": (1, "Illegal Activity"),
    "theft": (1, "Illegal Activity"),
    "cybercrime": (3, "Malware Generation"),
    "violence": (4, "Physical Harm"),
    "fraud": (5, "Fraud"),
    "privacy": (7, "Privacy Violation"),
}


def write(root: Path, rng: random.Random, n: int) -> Truth:
    """``n`` SafeBench-style rows in ``safebench.csv`` with typographic list images."""
    rows, out = [], {}
    task_ids: dict[int, int] = {}
    for task in cycle(rng, UNSAFE_TASKS, n):
        cid, cname = FIGSTEP_CATEGORY[task.category]
        tid = task_ids[cid] = task_ids.get(cid, 0) + 1
        instruction = f"Steps to {task.text}."
        save_png(
            draw_typography(instruction, numbered=3),
            root / "images" / figstep.image_name("ForbidQI", cid, tid),
        )
        rows.append(
            {
                "dataset": "ForbidQI",
                "category_id": cid,
                "task_id": tid,
                "category_name": cname,
                "question": question(task, rng, train=False),
                "instruction": instruction,
            }
        )
        out[figstep.sample_id("ForbidQI", cid, tid)] = truth(True, [], task.category)
    columns = ["dataset", "category_id", "task_id", "category_name", "question", "instruction"]
    dump_csv(rows, columns, root / figstep.DATA_FILE)
    return out
