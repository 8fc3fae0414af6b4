"""Run-state folders for resumable training: checkpoints outside the rule's output.

Snakemake deletes the declared outputs of a failed job, so checkpoints live in a run-state
folder next to them (``<results>/checkpoints/<stage>.partial/<key>/``). ``key`` hashes
everything that determines the run (params, seed, and the size and mtime of every input
file), so a changed config or a retrained input model starts from step 0 instead of
resuming a stale run; folders of other keys are removed when a run starts. A checkpoint
counts only once the trainer has finished writing it (``last_checkpoint.json``, written
atomically from ``on_save``): a job killed halfway through a save resumes from the one before.

With several training processes the main process alone prepares the folder (removes stale
and partial state, writes the key) and the trainer's main process writes the marker; the
others wait for it and only read.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from safervlm.config import config_hash
from safervlm.io import read_json, write_json

log = logging.getLogger(__name__)

MARKER = "last_checkpoint.json"
_CKPT = re.compile(r"checkpoint-(\d+)$")


def fingerprint(path: str | os.PathLike[str]) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of a file or of every file under a folder."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    return [
        (f.name if f == p else str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns) for f in files
    ]


def state_path(root: str | os.PathLike[str], key: dict[str, Any]) -> Path:
    """Where :func:`run_state_dir` keeps the run state of ``key`` (nothing is created)."""
    return Path(root) / config_hash(key)


def run_state_dir(root: str | os.PathLike[str], key: dict[str, Any]) -> Path:
    """The run-state folder of ``key`` under ``root``; other keys' folders are removed."""
    root = Path(root)
    state = state_path(root, key)
    digest = state.name
    if root.is_dir():
        for other in root.iterdir():
            if other.name != digest:
                log.info("removing stale run state %s (config or inputs changed)", other)
                shutil.rmtree(other, ignore_errors=True)
    state.mkdir(parents=True, exist_ok=True)
    write_json(key, state / "key.json")
    return state


def last_checkpoint(state: Path, clean: bool = True) -> str | None:
    """The last completely written checkpoint in ``state``, or None; drops partial ones (``clean``)."""
    marker = state / MARKER
    step = -1
    if marker.exists():
        name = read_json(marker)["checkpoint"]
        m = _CKPT.search(name)
        if m and (state / name).is_dir():
            step = int(m.group(1))
    for d in state.glob("checkpoint-*"):
        m = _CKPT.search(d.name)
        if clean and m and int(m.group(1)) > step:
            log.info("removing partially written %s", d)
            shutil.rmtree(d, ignore_errors=True)
    return str(state / f"checkpoint-{step}") if step >= 0 else None


class CheckpointMarker(TrainerCallback):
    """Records the last finished checkpoint after the trainer has written it."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            name = f"checkpoint-{state.global_step}"
            write_json({"checkpoint": name, "step": state.global_step}, Path(args.output_dir) / MARKER)
            log.info("checkpoint %s written", name)
