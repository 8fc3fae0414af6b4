"""``safervlm audit``: recompute every reported number from the judgments and compare it
with pinned expectations (or pin this run's numbers)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from safervlm import audit
from safervlm.errors import SafervlmError
from safervlm.stages.args import pairs_arg

log = logging.getLogger(__name__)


def _audit_args_from_config(a: argparse.Namespace) -> None:
    try:
        cfg = yaml.safe_load(Path(a.config).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SafervlmError(f"{a.config}: cannot read the config: {exc}") from exc
    ev = cfg.get("eval") or {}
    a.results = cfg.get("results", a.results)
    a.models = a.models or ev.get("models", [])
    a.benchmarks = a.benchmarks or ev.get("benchmarks", [])
    a.pair = a.pair or [f"{r}={b}" for r, b in ev.get("pairs", [])]
    a.threshold = (ev.get("safemlrm") or {}).get("threshold", a.threshold)
    a.missing = (ev.get("safemlrm") or {}).get("missing", a.missing)
    audit_cfg = cfg.get("audit") or {}
    # Relative expectation paths are relative to the workflow folder (the config's parent's
    # parent, as for config/config.yaml) unless they exist from the working directory.
    root = Path(a.config).resolve().parent.parent
    a.expected = a.expected or [
        p if Path(p).is_absolute() or Path(p).exists() else str(root / p)
        for p in audit_cfg.get("expected", [])
    ]
    a.audit_pair = a.audit_pair or [f"{r}={b}" for r, b in audit_cfg.get("pairs", [])]


def main(a: argparse.Namespace) -> Any:
    """Run the audit (or pin numbers) from parsed arguments."""
    if a.config:  # results, models, benchmarks, pairs and analysis settings from a config file
        _audit_args_from_config(a)
    pairs = pairs_arg(a.pair)
    if a.pin:
        if not a.models or not a.benchmarks:
            raise SafervlmError("--pin needs --models and --benchmarks")
        cells = audit.demo_cells(Path(a.results), a.models, a.benchmarks, pairs, a.threshold, a.missing)
        if not cells:
            raise SafervlmError(f"no judgments under {a.results}/eval to pin numbers from")
        audit.write_pins(a.pin, cells, a.note)
        log.info("pinned %d cells to %s", len(cells), a.pin)
        return cells
    if not a.expected:
        raise SafervlmError("--expected names no expectations file")
    result = audit.run_audit(
        a.results, a.expected, pairs=pairs, audit_pairs=pairs_arg(a.audit_pair), threshold=a.threshold,
        missing=a.missing, dvc_lock=a.dvc_lock, report_rates=a.report_rates,
    )  # fmt: skip
    if a.out_dir:
        audit.write_audit(result, a.out_dir, a.expected)
    counts = result.counts()
    print(
        ", ".join(f"{n} {v}" for v, n in counts.items())
        + f"; report values cross-checked: {len(result.report)}"
    )
    for cell in result.mismatches:
        print(f"MISMATCH {cell}", file=sys.stderr)
    if a.strict and result.mismatches:
        raise audit.AuditFailed(
            f"{len(result.mismatches)} cell(s) do not match: {', '.join(result.mismatches[:10])}"
        )
    return result
