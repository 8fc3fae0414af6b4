"""Pinning a run's numbers as expectations (``config/audit/demo.yaml``, ``make pin``).

The pinned cells are the numbers a run reports, derived from the config's models, benchmarks
and pairs: per model, its safety and helpfulness on each benchmark and its benchmark averages
(safety, helpfulness, ASR on reasoning / answer / full, self-correction); per Reasoning Tax
pair, the tax on the full response; and SaFeR-VLM's claim, the *safety-aware gain* (safety
and helpfulness of a model minus those of its plain variant), for every evaluated model
``m`` whose plain variant ``m`` + :data:`PLAIN_SUFFIX` is evaluated too (the workflow names
the GRPO run without the safety-aware rollout that way).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from safervlm.io import write_text
from safervlm.metrics import ASR_THRESHOLD
from safervlm.report.audit.artifacts import judgments_path
from safervlm.report.audit.recompute import (
    Artifacts,
    RateLookup,
    cell_value,
    load_judgments,
    recompute_rates,
)
from safervlm.report.audit.spec import cell_from

PER_BENCHMARK = ("safety", "helpfulness")
AVERAGED = ("safety", "helpfulness", "asr_reasoning", "asr_answer", "asr_full", "self_correction")
TAX_METRIC = "asr_full"
PIN_TOLERANCE = 1e-9
# <m>_plain is <m> trained without the safety-aware rollout (rules/common.smk's grpo_section).
PLAIN_SUFFIX = "_plain"
GAIN_METRICS = ("safety", "helpfulness")


def _generated(
    models: Sequence[str], benchmarks: Sequence[str], pairs: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Cell specs (no values yet) of the numbers a run with these models reports."""
    specs: list[dict[str, Any]] = []
    for m in models:
        for b in benchmarks:
            for metric in PER_BENCHMARK:
                specs.append({"id": f"demo.{m}.{b}.{metric}", "kind": "rate", "metric": metric,
                              "model": m, "benchmarks": [b]})  # fmt: skip
        for metric in AVERAGED:
            specs.append({"id": f"demo.{m}.avg.{metric}", "kind": "rate", "metric": metric,
                          "model": m, "benchmarks": list(benchmarks)})  # fmt: skip
    for a, b in pairs:
        specs.append({"id": f"demo.tax.{a}-{b}.{TAX_METRIC}", "kind": "difference", "metric": TAX_METRIC,
                      "model": a, "versus": b, "benchmarks": list(benchmarks)})  # fmt: skip
    gains = [(m, m + PLAIN_SUFFIX) for m in models if m + PLAIN_SUFFIX in models]
    for m, plain in gains:
        # One pair keeps the plain id (the one pinned so far); several are told apart by model.
        prefix = "demo.safety_aware_gain" + ("" if len(gains) == 1 else f".{m}")
        for metric in GAIN_METRICS:
            specs.append({"id": f"{prefix}.{metric}", "kind": "difference", "metric": metric,
                          "model": m, "versus": plain, "benchmarks": list(benchmarks)})  # fmt: skip
    for spec in specs:
        spec["scale"] = 1.0 if spec["kind"] == "ratio" else 100.0
    return specs


def demo_cells(
    results: Path,
    models: Sequence[str],
    benchmarks: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    threshold: float = ASR_THRESHOLD,
    missing: str = "count",
) -> list[dict[str, Any]]:
    """The numbers a run reports, as cells with today's values.

    Args:
        results: Results folder (``eval/{model}/{benchmark}/judgments.parquet``).
        models: Models whose numbers are pinned, in order.
        benchmarks: Benchmarks averaged over.
        pairs: (reasoning, base) pairs whose Reasoning Tax is pinned.
        threshold: Attack-success threshold (``eval.safemlrm.threshold``).
        missing: Missing-verdict policy (``eval.safemlrm.missing``).

    Returns:
        Cell mappings with ``expected``, ``tolerance`` and ``pinned_md5``; cells undefined on
        these results (e.g. no should-refuse samples) or lacking judgments are left out.
    """
    specs = _generated(models, benchmarks, pairs)
    cells = [cell_from({**spec, "expected": 0.0}, Path("<pin>"), i, "demo") for i, spec in enumerate(specs)]
    wanted = [m for c in cells for m in c.models()]
    look = RateLookup(recompute_rates(load_judgments(results, pairs, wanted), pairs, threshold, missing))
    arts = Artifacts(results)
    out = []
    for spec, cell in zip(specs, cells, strict=True):
        value = cell_value(look, cell)
        paths = [judgments_path(results, m, b) for m in cell.models() for b in cell.benchmarks]
        if math.isnan(value) or not all(p.is_file() for p in paths):
            continue  # undefined on these results: nothing to pin
        pinned = {"expected": float(value), "tolerance": PIN_TOLERANCE, "pinned_md5": arts.digest(paths)}
        out.append({**spec, **pinned})
    return out


def write_pins(path: str | os.PathLike[str], cells: list[dict[str, Any]], note: str) -> None:
    """Write pinned cells as an expectations file (``source``, ``note``, ``cells``)."""
    doc = {"source": "embedded default (pinned run)", "note": note, "cells": cells}
    write_text(yaml.safe_dump(doc, sort_keys=False, width=100), path)
