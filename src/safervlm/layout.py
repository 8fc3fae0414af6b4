"""Where a run's files live along the seed and judge dimensions: the one rule for both.

``rules/common.smk`` builds every per-seed and per-judge path from these functions, and the
audit (:func:`safervlm.report.audit.spec.inputs_from_config`) reads a finished run back
with them, so the two cannot drift apart.

- **Seeds** (``seeds: [...]``): an empty list means ``[seed]``. One seed keeps the run's
  files directly under ``results``; several put each seed's curation, training and
  evaluation under ``results/seeds/<seed>``.
- **Judges** (``eval.judges: {label: {name, params}}``): an empty mapping means the
  ``judge`` section alone, labelled by its name. One judge writes ``judgments.parquet`` and
  ``metrics.json``; several write ``judgments.<label>.parquet`` and ``metrics.<label>.json``.

Functions take the config as a mapping, with or without the schema's defaults filled in
(the audit reads the YAML file as written).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_JUDGE = "reference"


def run_seeds(config: Mapping[str, Any]) -> list[Any]:
    """The seeds a config runs, in order (the first one's run feeds the main tables)."""
    return list(config.get("seeds") or [config.get("seed", 0)])


def run_judges(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Judge label -> ``{name, params}`` of every judge a config runs, in order."""
    judges = (config.get("eval") or {}).get("judges") or {}
    if judges:
        return {str(label): dict(spec) for label, spec in judges.items()}
    judge = config.get("judge") or {}
    name = str(judge.get("name", DEFAULT_JUDGE))
    return {name: {"name": name, "params": judge.get("params") or {}}}


def seed_dir(results: str, seeds: list[Any], seed: Any) -> str:
    """The folder of one seed's run: ``results`` itself when the config runs one seed.

    ``seed`` may be a wildcard (``"{seed}"``) for a Snakemake path pattern.
    """
    return f"{results}/seeds/{seed}" if len(seeds) > 1 else results


def judge_suffix(judges: Mapping[str, Any], label: str) -> str:
    """``.<label>``, what one judge's files carry before their extension when the config runs
    several judges; empty for one. ``label`` may be a wildcard (``"{judge}"``)."""
    return f".{label}" if len(judges) > 1 else ""


def judged_name(name: str, judges: Mapping[str, Any], label: str) -> str:
    """``judgments.parquet`` / ``metrics.json`` of one judge (:func:`judge_suffix`)."""
    stem, ext = name.split(".", 1)
    return f"{stem}{judge_suffix(judges, label)}.{ext}"
