"""The audit stage and the pin stage (``safervlm audit``, ``safervlm audit --pin``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from safervlm.errors import SafervlmError
from safervlm.metrics.asr import ASR_THRESHOLD
from safervlm.report.audit import (
    AuditFailed,
    AuditInputs,
    AuditResult,
    demo_cells,
    inputs_from_config,
    run_audit,
    write_audit,
    write_pins,
)
from safervlm.stages.args import analysis_args, many, pairs_arg

log = logging.getLogger(__name__)


def artifacts_arg(values: list[str]) -> dict[str, str]:
    """``NAME=FOLDER`` flags as a mapping."""
    out = {}
    for v in values:
        name, sep, folder = v.partition("=")
        if not sep or not name or not folder:
            raise SafervlmError(f"--artifact {v!r}: expected NAME=FOLDER")
        out[name] = folder
    return out


def audit_stage(
    inputs: AuditInputs,
    out_dir: str | None = None,
    dvc_lock: str | os.PathLike[str] | None = None,
    report_rates: str | os.PathLike[str] | None = None,
    strict: bool = False,
) -> AuditResult:
    """Recompute every expected cell and the report's rates; write the audit to ``out_dir``.

    Prints the verdict counts, then one line per cell that is not a plain match or absent
    (``<id>: <verdict> (<detail>)``, in the counts' words; mismatches on stderr) and one per
    report value that does not match.

    Raises:
        SafervlmError: when no expectations file is named.
        AuditFailed: with ``strict``, when a comparable cell or a report value mismatches
            (not comparable, not reproduced and not computable cells never fail).
    """
    if not inputs.expected:
        raise SafervlmError("--expected names no expectations file")
    result = run_audit(
        inputs.results, inputs.expected, pairs=inputs.pairs, audit_pairs=inputs.audit_pairs,
        threshold=inputs.threshold, missing=inputs.missing, dvc_lock=dvc_lock, report_rates=report_rates,
        artifacts=inputs.artifacts, judgments=inputs.judgments, judge_model=inputs.judge_model,
    )  # fmt: skip
    if out_dir:
        write_audit(result, out_dir, inputs.expected)
    for line, failing in verdict_lines(result):
        print(line, file=sys.stderr if failing else sys.stdout)
    if strict and result.mismatches:
        first = ", ".join(result.mismatches[:10])
        raise AuditFailed(f"{len(result.mismatches)} mismatch: {first}")
    return result


QUIET = ("match", "absent")  # verdicts the summary counts without a line per cell


def verdict_lines(result: AuditResult) -> list[tuple[str, bool]]:
    """The command's answer: (line, whether it is a mismatch) in the summary's words.

    The first line counts the cells per verdict and the report values cross-checked; then
    one line per cell that is neither a match nor absent, and one per report mismatch.
    """
    counts = ", ".join(f"{n} {v}" for v, n in result.counts().items())
    report_bad = result.report[result.report["verdict"] == "mismatch"]
    lines = [
        (f"{counts}; report values cross-checked: {len(result.report)}, {len(report_bad)} mismatch", False)
    ]
    for r in result.cells.to_dict("records"):
        if r["verdict"] not in QUIET:
            lines.append((f"{r['id']}: {r['verdict']} ({r['detail']})", r["verdict"] == "mismatch"))
    for r in report_bad.to_dict("records"):
        lines.append(
            (f"{r['id']}: mismatch (reported {r['expected']:.6g}, recomputed {r['recomputed']:.6g})", True)
        )
    return lines


def pin_stage(inputs: AuditInputs, pin: str | os.PathLike[str], note: str) -> list[dict[str, Any]]:
    """Write the run's numbers as expectations to ``pin`` (``report.audit.pin``)."""
    if not inputs.models or not inputs.benchmarks:
        raise SafervlmError("--pin needs --models and --benchmarks")
    cells = demo_cells(
        Path(inputs.results), inputs.models, inputs.benchmarks, inputs.pairs,
        inputs.threshold, inputs.missing,
    )  # fmt: skip
    if not cells:
        raise SafervlmError(f"no judgments under {inputs.results}/eval to pin numbers from")
    write_pins(pin, cells, note)
    log.info("pinned %d cells to %s", len(cells), pin)
    return cells


def inputs_from_args(a: argparse.Namespace) -> AuditInputs:
    """What to audit, from the flags, completed from ``--config`` when given."""
    inputs = AuditInputs(
        results=a.results, expected=a.expected, models=a.models, benchmarks=a.benchmarks,
        pairs=pairs_arg(a.pair), audit_pairs=pairs_arg(a.audit_pair),
        threshold=ASR_THRESHOLD if a.threshold is None else a.threshold, missing=a.missing,
        artifacts=artifacts_arg(a.artifact), judgments=a.judgments_name, judge_model=a.judge_model or "",
    )  # fmt: skip
    return inputs_from_config(a.config, inputs) if a.config else inputs


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm audit`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument(
        "--results", default="results", help="results folder (eval/{model}/{bench}/judgments.parquet)"
    )
    many(p, "--expected", nargs="*", default=[], help="expectation YAML files (config/audit/*.yaml)")
    p.add_argument("--out-dir", help="write audit.md / audit.csv / audit.json here")
    p.add_argument("--report-rates", help="the report's rates.csv, cross-checked value by value")
    p.add_argument(
        "--judgments-name",
        default="judgments.parquet",
        help="the audited judge's file (judgments.<judge>.parquet with several)",
    )
    p.add_argument(
        "--judge-model",
        help="model of the judge that wrote the judgments (else from --config), "
        "checked against the judge of cells that name one",
    )
    p.add_argument("--dvc-lock", help="dvc.lock whose pinned hashes the artifacts are checked against")
    p.add_argument(
        "--strict", action="store_true", help="exit 1 when a comparable cell or a report value mismatches"
    )
    many(
        p,
        "--audit-pair",
        nargs="*",
        default=[],
        metavar="REASONING=BASE",
        help="pairs that published cells with 'pairs: config' refer to",
    )
    p.add_argument("--pin", help="write the run's numbers as expectations to this YAML instead")
    many(p, "--models", nargs="*", default=[], help="models to pin (with --pin)")
    many(p, "--benchmarks", nargs="*", default=[], help="benchmarks to pin (with --pin)")
    p.add_argument("--note", default="", help="provenance note stored with pinned numbers")
    p.add_argument("--config", help="take results, models, benchmarks, pairs and settings from this config")
    many(
        p,
        "--artifact",
        nargs="*",
        default=[],
        metavar="NAME=FOLDER",
        help="imported releases that cells with 'artifact: NAME' are recomputed from",
    )
    analysis_args(p)


def main(a: argparse.Namespace) -> Any:
    """Run the audit, or pin this run's numbers (``--pin``), from parsed arguments."""
    inputs = inputs_from_args(a)
    if a.pin:
        return pin_stage(inputs, a.pin, a.note)
    return audit_stage(inputs, a.out_dir, a.dvc_lock, a.report_rates, a.strict)
