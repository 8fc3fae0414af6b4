"""Synthetic fixture of VLGuard in its official on-disk format (embedded default).

Test split by default, ``train.json`` with ``train=True`` (the training source).
"""

from __future__ import annotations

import random
from pathlib import Path

from safervlm.benchmarks import vlguard
from safervlm.embedded.common import Truth, cycle, dump_json, question, save_png, truth, unsafe_for
from safervlm.embedded.world import BENIGN_TASKS, UNSAFE_TASKS, answer_for, draw_scene, response_for


def write(root: Path, rng: random.Random, n: int, *, train: bool = False) -> Truth:
    """``n`` samples: ``n // 4`` safe images (a safe and an unsafe instruction each), the rest unsafe.

    With ``train`` the split file is ``train.json`` (images under ``train/``), questions use
    TRAIN_TEMPLATES and responses are the full ``<think>…</think>answer`` references.
    """
    n_safe = n // 4
    n_unsafe = n - 2 * n_safe
    split, prefix = ("train", "vlguard_train") if train else ("test", "vlguard")
    reply = response_for if train else answer_for
    kinds = [False] * n_safe + [True] * n_unsafe
    rng.shuffle(kinds)
    benign = iter(cycle(rng, BENIGN_TASKS, n_safe))
    unsafe = iter(cycle(rng, UNSAFE_TASKS, n_unsafe))
    records, out = [], {}
    for i, is_unsafe in enumerate(kinds):
        task = next(unsafe) if is_unsafe else next(benign)
        folder = task.category if is_unsafe else "safe"
        name = f"{folder}/{i:04d}.png"
        save_png(draw_scene(task.obj, rng), root / split / name)
        rec = {"id": f"{split}_{i:04d}", "image": name, "safe": not is_unsafe}
        if is_unsafe:
            rec |= {"harmful_category": task.category, "harmful_subcategory": task.obj}
            rec["instr-resp"] = [{"instruction": question(task, rng, train=train), "response": reply(task)}]
            out[vlguard.sample_id("unsafes", i, 0, prefix)] = truth(True, [task.obj], task.category)
        else:
            bad = unsafe_for(task.obj, rng)
            rec["instr-resp"] = [
                {"safe_instruction": question(task, rng, train=train), "response": reply(task)},
                {"unsafe_instruction": question(bad, rng, train=train), "response": reply(bad)},
            ]
            out[vlguard.sample_id("safe_safes", i, 0, prefix)] = truth(False, [task.obj], "benign")
            out[vlguard.sample_id("safe_unsafes", i, 1, prefix)] = truth(True, [task.obj], bad.category)
        records.append(rec)
    dump_json(records, root / f"{split}.json")
    return out
