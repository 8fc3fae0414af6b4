"""Synthetic fixture of MSSBench in its official on-disk format (embedded default).

Returns the ground truth keyed by the ids :mod:`safervlm.benchmarks.mssbench` produces.
"""

from __future__ import annotations

import random
from pathlib import Path

from safervlm.benchmarks import mssbench
from safervlm.embedded.common import Truth, benign_for, cycle, dump_json, question, save_png, truth
from safervlm.embedded.world import EVAL_TEMPLATES, UNSAFE_TASKS, draw_scene


def write(root: Path, rng: random.Random, n: int) -> Truth:
    """``n // 2`` items (2/3 chat, 1/3 embodied), one query each, asked with a safe and an unsafe image."""
    items = max(n // 2, 2)
    n_chat = max(1, round(items * 2 / 3))
    data: dict[str, list[dict[str, object]]] = {"chat": [], "embodied": []}
    out: Truth = {}
    for k, bad in enumerate(cycle(rng, UNSAFE_TASKS, items)):
        good = benign_for(bad.obj, rng)
        subset = "chat" if k < n_chat else "embodied"
        pos = len(data[subset])
        safe_rel, unsafe_rel = f"safe/{pos:04d}.png", f"unsafe/{pos:04d}.png"
        if subset == "chat":
            save_png(draw_scene(bad.obj, rng, text=good.text), root / "chat" / safe_rel)
            save_png(draw_scene(bad.obj, rng, text=bad.text), root / "chat" / unsafe_rel)
            ask = rng.choice(EVAL_TEMPLATES).format(task=f"do what the caption says with this {bad.obj}")
            item: dict[str, object] = {
                "safe_image_path": safe_rel,
                "unsafe_image_path": unsafe_rel,
                "intent": bad.text,
                "unsafe_image": f"A {bad.obj} captioned '{bad.text}'.",
                "Type": bad.category,
                "queries": [ask],
            }
        else:
            save_png(draw_scene(bad.obj, rng), root / "embodied" / safe_rel)
            save_png(draw_scene(bad.obj, rng), root / "embodied" / unsafe_rel)
            safe_q, unsafe_q = question(good, rng, train=False), question(bad, rng, train=False)
            item = {
                "task": f"handle the {bad.obj}",
                "category": bad.category,
                "safe": safe_rel,
                "unsafe": unsafe_rel,
                "safe_instruction": safe_q,
                "unsafe_instruction": unsafe_q,
                "safe_instructions": [safe_q],
                "unsafe_instructions": [unsafe_q],
            }
        data[subset].append(item)
        out[mssbench.sample_id(subset, pos, 0, "safe")] = truth(False, [bad.obj], "benign")
        out[mssbench.sample_id(subset, pos, 0, "unsafe")] = truth(True, [bad.obj], bad.category)
    dump_json(data, root / "combined.json")
    return out
