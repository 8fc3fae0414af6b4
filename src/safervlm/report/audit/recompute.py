"""Audit recomputation: every expected number recomputed from the per-sample judgments.

Recomputation uses the metrics of the report (``metrics.outcomes``, ``metrics.safemlrm``),
read straight from ``eval/{model}/{benchmark}/judgments.parquet``, never from the report's
own files. A cell whose judgments are not all present is ``absent`` (never a pass); one
whose rate is undefined (e.g. no should-refuse samples) is ``undefined``. The report's
``rates.csv`` is cross-checked too: every value in it is recomputed.

Each cell carries the artifact hash it came from (md5 of its judgments files, the hash DVC
pins) and whether that hash equals the one pinned in ``dvc.lock``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from safervlm.errors import InputError, SafervlmError
from safervlm.io import md5_file, read_parquet
from safervlm.metrics import ASR_THRESHOLD, RATE_COLUMNS, Settings, analyse, outcomes_from_judgments
from safervlm.report.audit.spec import Cell, load_cells
from safervlm.schema import JUDGMENT_COLUMNS

log = logging.getLogger(__name__)

VERDICTS = ("match", "mismatch", "absent", "undefined")
REPORT_TOLERANCE = 1e-9


class AuditFailed(SafervlmError):
    """``--strict`` and at least one cell does not match."""

    exit_code = 1


# --- artifacts and their hashes -------------------------------------------------------


def judgments_path(results: Path, model: str, bench: str) -> Path:
    return results / "eval" / model / bench / "judgments.parquet"


def dvc_pins(lock: str | os.PathLike[str] | None, root: Path) -> dict[str, str]:
    """Absolute path -> md5 of every file out pinned in ``dvc.lock`` (directories skipped)."""
    if not lock or not Path(lock).is_file():
        return {}
    try:
        doc = yaml.safe_load(Path(lock).read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", path=lock) from exc
    pins: dict[str, str] = {}
    for stage in (doc.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            md5 = str(out.get("md5", ""))
            if md5 and not md5.endswith(".dir"):
                pins[str((root / out["path"]).resolve())] = md5
    return pins


@dataclass
class Artifacts:
    """The per-sample judgments found under a results folder, hashed once."""

    results: Path
    md5: dict[str, str] = field(default_factory=dict)

    def has(self, model: str, bench: str) -> bool:
        return judgments_path(self.results, model, bench).is_file()

    def digest(self, paths: Sequence[Path]) -> str:
        """One md5 for a cell's artifacts (the file md5 itself when there is one file)."""
        sums = []
        for p in paths:
            key = str(p.resolve())
            if key not in self.md5:
                self.md5[key] = md5_file(p)
            sums.append(self.md5[key])
        if len(sums) == 1:
            return sums[0]
        return hashlib.md5("\n".join(sums).encode()).hexdigest()


def load_judgments(results: Path, pairs: Iterable[tuple[str, str]], models: Iterable[str]) -> pd.DataFrame:
    """Every ``eval/<model>/<bench>/judgments.parquet`` for the given models."""
    wanted = set(models) | {m for p in pairs for m in p}
    frames = []
    for model in sorted(wanted):
        for path in sorted((results / "eval" / model).glob("*/judgments.parquet")):
            frames.append(read_parquet(path, required=JUDGMENT_COLUMNS))
    if not frames:
        return pd.DataFrame(columns=JUDGMENT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


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


def audit_cells(
    cells: Sequence[Cell], look: RateLookup, arts: Artifacts, pins: Mapping[str, str]
) -> pd.DataFrame:
    """One row per cell: expected, recomputed, tolerance, verdict, artifact hash, pin check."""
    rows = []
    for cell in cells:
        needed = [(m, b) for m in cell.models() for b in cell.benchmarks]
        absent = [f"{m}/{b}" for m, b in needed if not arts.has(m, b)]
        row: dict[str, Any] = {
            "id": cell.id,
            "source": cell.source,
            "description": cell.description,
            "expected": cell.expected,
            "recomputed": math.nan,
            "tolerance": cell.tolerance,
            "verdict": "absent",
            "artifact_md5": "",
            "pin": "",
            "detail": "",
        }
        if cell.unresolved or absent:
            row["detail"] = cell.unresolved or "no judgments for " + ", ".join(absent)
            rows.append(row)
            continue
        paths = [judgments_path(arts.results, m, b) for m, b in needed]
        row["artifact_md5"] = arts.digest(paths)
        row["pin"] = _pin_status(arts, paths, pins, cell.pinned_md5, row["artifact_md5"])
        value = cell_value(look, cell)
        row["recomputed"] = value
        if math.isnan(value):
            row["verdict"] = "undefined"
            row["detail"] = "the rate is undefined on these artifacts (no applicable samples)"
        elif abs(value - cell.expected) <= cell.tolerance:
            row["verdict"] = "match"
        else:
            row["verdict"] = "mismatch"
            row["detail"] = f"off by {value - cell.expected:+.6g}"
        rows.append(row)
    return pd.DataFrame(rows)


def _pin_status(
    arts: Artifacts, paths: Sequence[Path], pins: Mapping[str, str], cell_pin: str, md5: str
) -> str:
    """``pinned`` when every file's md5 equals dvc.lock's (or the cell's own pinned md5)."""
    if cell_pin:
        return "pinned" if cell_pin == md5 else "differs from pin"
    file_pins = [pins.get(str(p.resolve())) for p in paths]
    if not pins or any(pin is None for pin in file_pins):
        return "not pinned"
    same = all(pin == arts.md5[str(p.resolve())] for p, pin in zip(paths, file_pins, strict=True))
    return "pinned" if same else "differs from pin"


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
    cells: pd.DataFrame
    report: pd.DataFrame

    @property
    def mismatches(self) -> list[str]:
        bad = self.cells[self.cells["verdict"] == "mismatch"]["id"].tolist()
        return bad + self.report[self.report["verdict"] == "mismatch"]["id"].tolist()

    def counts(self) -> dict[str, int]:
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
) -> AuditResult:
    """Recompute every cell of ``expectations`` (and the report's rates) from ``results``.

    ``pairs`` are the report's Reasoning Tax pairs; ``audit_pairs`` those that published
    cells with ``pairs: config`` refer to (the models standing for the paper's).
    """
    root = Path(results)
    cells = load_cells(expectations, audit_pairs)
    known = [c for c in cells if not c.unresolved]
    all_pairs = list(dict.fromkeys([*pairs, *(p for c in known for p in c.sides() if p[1])]))
    models = {m for c in known for m in c.models()} | {m for p in pairs for m in p}
    rates_csv = Path(report_rates) if report_rates else None
    reported = read_report_rates(rates_csv)
    models |= set(reported["model"].astype(str))
    look = RateLookup(recompute_rates(load_judgments(root, all_pairs, models), all_pairs, threshold, missing))
    pins = dvc_pins(dvc_lock, Path(dvc_lock).resolve().parent if dvc_lock else Path.cwd())
    table = audit_cells(cells, look, Artifacts(root), pins)
    return AuditResult(table, _cross_check(reported, look, rates_csv))
