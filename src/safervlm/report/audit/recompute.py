"""Audit recomputation: every expected number recomputed from the per-sample judgments.

Recomputation uses the metrics of the report (``metrics.outcomes``, ``metrics.safemlrm``),
read straight from ``eval/{model}/{benchmark}/judgments.parquet``, never from the report's
own files. A cell whose judgments are not all present is ``absent`` (never a pass); one
whose rate is undefined (e.g. no should-refuse samples) is ``undefined``. The report's
``rates.csv`` is cross-checked too: every value in it is recomputed.

Each cell carries the artifact hash it came from (md5 of its judgments files, the hash DVC
pins) and whether that hash equals the one pinned in ``dvc.lock``. A cell that names the
judge of its protocol and whose judgments come from another judge is ``not comparable``
(``report.audit.protocol``): recomputed, never compared, never a failure.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from safervlm.errors import InputError, SafervlmError
from safervlm.metrics import ASR_THRESHOLD, RATE_COLUMNS, Settings, analyse, outcomes_from_judgments
from safervlm.report.audit.artifacts import (
    JUDGMENTS,
    Artifacts,
    dvc_pins,
    load_judgments,
    pin_status,
)
from safervlm.report.audit.definitions import SOURCE_VERDICTS, audit_row
from safervlm.report.audit.protocol import NOT_COMPARABLE, incomparable, protocol_detail
from safervlm.report.audit.sources import audit_source_cells
from safervlm.report.audit.spec import Cell, load_expectations

log = logging.getLogger(__name__)

# match / mismatch / not comparable: cells naming models; reproduced / not reproduced / not
# computable: cells naming an imported release, over their definition variants
# (report.audit.sources). Only a mismatch of a comparable cell fails (--strict): "not
# reproduced" is a finding about a release, not a fault of this run.
VERDICTS = ("match", "mismatch", NOT_COMPARABLE, *SOURCE_VERDICTS, "absent", "undefined")
FAILING = ("mismatch",)
REPORT_TOLERANCE = 1e-9


# The audit table's columns (``low`` … ``provenance``: cells naming an imported release).
CELL_COLUMNS = [
    "id", "source", "description", "expected", "recomputed", "tolerance", "verdict", "artifact_md5", "pin",
    "detail", "low", "high", "reproducing", "closest", "provenance", "protocol",
]  # fmt: skip


class AuditFailed(SafervlmError):
    """``--strict`` and at least one cell does not match."""

    exit_code = 1


def recompute_rates(
    judgments: pd.DataFrame, pairs: Sequence[tuple[str, str]], threshold: float, missing: str
) -> pd.DataFrame:
    """The report's rate table (point values only: no bootstrap) from per-sample judgments."""
    if judgments.empty:
        return pd.DataFrame(columns=RATE_COLUMNS)
    settings = Settings(threshold=threshold, missing=missing, n_bootstrap=0)
    return analyse(outcomes_from_judgments(judgments, threshold), list(pairs), settings)["rates"]


class RateLookup:
    """value(model, benchmark, attack, category, metric) over a rates frame."""

    def __init__(self, rates: pd.DataFrame) -> None:
        keys = zip(
            *(rates[c].astype(str) for c in ("model", "benchmark", "attack", "category", "metric")),
            strict=True,
        )
        self._v: dict[tuple[str, ...], float] = dict(zip(keys, rates["value"].astype(float), strict=True))

    def get(self, model: str, bench: str, attack: str, category: str, metric: str) -> float:
        """The rate at that key, NaN when the rates have none."""
        return self._v.get((model, bench, attack, category, metric), math.nan)


def _rate(look: RateLookup, cell: Cell, model: str) -> float:
    values = [look.get(model, b, cell.attack, cell.category, cell.metric) for b in cell.benchmarks]
    if any(math.isnan(v) for v in values):
        return math.nan
    return sum(values) / len(values)


def cell_value(look: RateLookup, cell: Cell) -> float:
    """The recomputed number of a cell, on the cell's scale (NaN when undefined)."""
    values = []
    for model, versus in cell.sides():
        v = _rate(look, cell, model)
        if cell.kind == "difference":
            v -= _rate(look, cell, versus)
        elif cell.kind == "ratio":
            base = _rate(look, cell, versus)
            v = v / base if base else math.nan
        values.append(v)
    if any(math.isnan(v) for v in values):
        return math.nan
    return sum(values) / len(values) * cell.scale


def _judged(
    cell: Cell, value: float, arts: Artifacts, paths: Sequence[Path], judge_model: str
) -> dict[str, str]:
    """Verdict and detail of a cell whose judgments are all present."""
    reason = incomparable(cell.judge, arts.judges(paths), judge_model) if cell.judge else ""
    if reason:
        return {
            "verdict": NOT_COMPARABLE,
            "detail": protocol_detail(cell.protocol, cell.judge, reason, value),
        }
    if math.isnan(value):
        return {
            "verdict": "undefined",
            "detail": "the rate is undefined on these artifacts (no applicable samples)",
        }
    if abs(value - cell.expected) <= cell.tolerance:
        return {"verdict": "match", "detail": ""}
    return {"verdict": "mismatch", "detail": f"off by {value - cell.expected:+.6g}"}


def audit_cells(
    cells: Sequence[Cell],
    look: RateLookup,
    arts: Artifacts,
    pins: Mapping[str, str],
    judge_model: str = "",
) -> pd.DataFrame:
    """One row per cell: expected, recomputed, tolerance, verdict, artifact hash, pin check.

    ``judge_model`` is the model of the judge that produced the judgments ("" when not
    known), checked against the judge of cells that name one.
    """
    rows = []
    for cell in cells:
        needed = [(m, b) for m in cell.models() for b in cell.benchmarks]
        absent = [f"{m}/{b}" for m, b in needed if not arts.has(m, b)]
        row = audit_row(cell)
        if cell.unresolved or absent:
            row["detail"] = cell.unresolved or "no judgments for " + ", ".join(absent)
            rows.append(row)
            continue
        paths = [arts.path(m, b) for m, b in needed]
        row["artifact_md5"] = arts.digest(paths)
        row["pin"] = pin_status(arts, paths, pins, cell.pinned_md5, row["artifact_md5"])
        value = cell_value(look, cell)
        row["recomputed"] = value
        rows.append({**row, **_judged(cell, value, arts, paths, judge_model)})
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


REPORT_KEYS = ("model", "benchmark", "attack", "category", "metric")
CHECK_COLUMNS = ["id", "expected", "recomputed", "verdict"]


def read_report_rates(rates_csv: Path | None) -> pd.DataFrame:
    """The report's ``rates.csv`` (empty when there is none), its columns checked."""
    if rates_csv is None or not rates_csv.is_file():
        return pd.DataFrame(columns=[*REPORT_KEYS, "value"])
    try:
        reported = pd.read_csv(rates_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the report's rates: {exc}", path=rates_csv) from exc
    lacking = [c for c in (*REPORT_KEYS, "value") if c not in reported]
    if lacking:
        raise InputError(f"cannot read the report's rates: missing columns {lacking}", path=rates_csv)
    return reported


def cross_check_report(rates_csv: Path | None, look: RateLookup) -> pd.DataFrame:
    """Every value the report's ``rates.csv`` states, recomputed from the judgments."""
    return _cross_check(read_report_rates(rates_csv), look, rates_csv)


def _cross_check(reported: pd.DataFrame, look: RateLookup, rates_csv: Path | None) -> pd.DataFrame:
    rows = []
    for i, r in enumerate(reported.to_dict("records")):
        key = tuple(str(r[k]) for k in REPORT_KEYS)
        try:
            expected = float(r["value"]) if pd.notna(r["value"]) else math.nan
        except (TypeError, ValueError) as exc:
            raise InputError(f"value {r['value']!r} is not a number", path=rates_csv, record=i + 2) from exc
        value = look.get(*key)
        if math.isnan(expected) and math.isnan(value):
            verdict = "match"
        elif math.isnan(expected) or math.isnan(value):
            verdict = "mismatch"
        else:
            verdict = "match" if abs(expected - value) <= REPORT_TOLERANCE else "mismatch"
        rows.append(
            {
                "id": f"report.rates[{i}]:" + "/".join(key),
                "expected": expected,
                "recomputed": value,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


# --- the audit as a whole -------------------------------------------------------------


@dataclass
class AuditResult:
    """Cell verdicts and the cross-check of the report's rates."""

    cells: pd.DataFrame
    report: pd.DataFrame
    variants: pd.DataFrame = field(default_factory=pd.DataFrame)  # per (source cell, variant)

    @property
    def mismatches(self) -> list[str]:
        """Ids of the comparable cells and the report values that do not match (what
        ``--strict`` fails on)."""
        bad = self.cells[self.cells["verdict"].isin(FAILING)]["id"].tolist()
        return bad + self.report[self.report["verdict"] == "mismatch"]["id"].tolist()

    def counts(self) -> dict[str, int]:
        """Cells per verdict, every verdict present."""
        c = self.cells["verdict"].value_counts()
        return {v: int(c.get(v, 0)) for v in VERDICTS}


def run_audit(
    results: str | os.PathLike[str],
    expectations: Sequence[str | os.PathLike[str]],
    *,
    pairs: Sequence[tuple[str, str]] = (),
    audit_pairs: Sequence[tuple[str, str]] = (),
    threshold: float = ASR_THRESHOLD,
    missing: str = "count",
    dvc_lock: str | os.PathLike[str] | None = None,
    report_rates: str | os.PathLike[str] | None = None,
    artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
    judgments: str = JUDGMENTS,
    judge_model: str = "",
) -> AuditResult:
    """Recompute every cell of ``expectations`` (and the report's rates) from ``results``.

    ``pairs`` are the report's Reasoning Tax pairs; ``audit_pairs`` those that published
    cells with ``pairs: config`` refer to (the models standing for the paper's); ``artifacts``
    maps the names cells with ``artifact`` use to imported release folders; ``judgments`` is
    the judgments file name of the audited judge (``judgments.<judge>.parquet`` when a run
    has several), ``judge_model`` the model of the judge that wrote them ("" when not known;
    ``report.audit.protocol``).
    """
    root = Path(results)
    cells, source_cells = load_expectations(expectations, audit_pairs)
    known = [c for c in cells if not c.unresolved]
    all_pairs = list(dict.fromkeys([*pairs, *(p for c in known for p in c.sides() if p[1])]))
    models = {m for c in known for m in c.models()} | {m for p in pairs for m in p}
    rates_csv = Path(report_rates) if report_rates else None
    reported = read_report_rates(rates_csv)
    models |= set(reported["model"].astype(str))
    judged = load_judgments(root, all_pairs, models, judgments)
    look = RateLookup(recompute_rates(judged, all_pairs, threshold, missing))
    pins = dvc_pins(dvc_lock, Path(dvc_lock).resolve().parent if dvc_lock else Path.cwd())
    table = audit_cells(cells, look, Artifacts(root, judgments), pins, judge_model)
    source_rows, variants = audit_source_cells(source_cells, artifacts or {})
    if source_rows:
        table = pd.concat([table, pd.DataFrame(source_rows, columns=table.columns)], ignore_index=True)
    return AuditResult(table, _cross_check(reported, look, rates_csv), variants)
