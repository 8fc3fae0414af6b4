"""Audit: recompute every reported number from the per-sample artifacts and compare it with
the numbers we expect — published ones (the papers' abstracts) and pinned ones (the embedded
default's own run) — kept as YAML under ``config/audit/``.

A *cell* is one number. Its spec names what it is computed from and how:

``kind``
    ``rate`` (the model's rate, averaged unweighted over ``benchmarks``), ``difference``
    (model's rate minus ``versus``'s), ``ratio`` (model's rate over ``versus``'s). With
    ``pairs`` ([model, versus] lists, or ``config`` for the config's ``audit.pairs``) instead
    of ``model``/``versus``, the cell is the unweighted mean over the pairs (for ``rate``:
    over their reasoning models).
``metric``
    A SafeMLRM rate metric: ``safety``, ``helpfulness``, ``official``, ``asr_reasoning``,
    ``asr_answer``, ``asr_full``, ``self_correction``.
``benchmarks`` (a list), ``attack`` (default
``none``), ``category`` (default ``(mean)``, the unweighted mean of the benchmark's
scenarios), ``scale`` (100 for percentages), ``expected``, ``tolerance``.

Recomputation uses the same outcome and rate definitions as the report
(``evaluate.outcomes``, ``evaluate.safemlrm``) read straight from
``eval/{model}/{benchmark}/judgments.parquet``, never from the report's own files. A cell
whose judgments are not all present is ``absent`` (never a pass); one whose rate is
undefined (e.g. no should-refuse samples) is ``undefined``. The report's ``rates.csv`` is
cross-checked too: every value in it is recomputed.

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
from safervlm.io import atomic_path, md5_file, write_json, write_text

log = logging.getLogger(__name__)

KINDS = ("rate", "difference", "ratio")
METRICS = ("safety", "helpfulness", "official", "asr_reasoning", "asr_answer", "asr_full", "self_correction")
MEAN = "(mean)"
VERDICTS = ("match", "mismatch", "absent", "undefined")
REPORT_TOLERANCE = 1e-9


class AuditFailed(SafervlmError):
    """``--strict`` and at least one cell does not match."""

    exit_code = 1


@dataclass
class Cell:
    """One expected number and how to recompute it."""

    id: str
    source: str
    description: str
    kind: str
    metric: str
    expected: float
    tolerance: float
    benchmarks: list[str]
    model: str = ""
    versus: str = ""
    pairs: list[tuple[str, str]] = field(default_factory=list)
    attack: str = "none"
    category: str = MEAN
    scale: float = 1.0
    pinned_md5: str = ""
    unresolved: str = ""  # why the cell cannot be computed at all (it reads as absent)

    def sides(self) -> list[tuple[str, str]]:
        """(model, versus) per pair, or the one (model, versus); versus is "" for a rate."""
        if self.pairs:
            return [(a, "" if self.kind == "rate" else b) for a, b in self.pairs]
        return [(self.model, self.versus)]

    def models(self) -> list[str]:
        return list(dict.fromkeys(m for side in self.sides() for m in side if m))


def _cell_from(
    raw: Mapping[str, Any], path: Path, index: int, source: str, config_pairs: Sequence[tuple[str, str]] = ()
) -> Cell:
    where = f"cell {raw.get('id', index)!r}"

    def need(key: str) -> Any:
        if key not in raw:
            raise InputError(f"{where} has no {key!r}", path=path, record=index)
        return raw[key]

    kind = need("kind")
    if kind not in KINDS:
        raise InputError(f"{where}: kind {kind!r} is not one of {KINDS}", path=path, record=index)
    metric = need("metric")
    if metric not in METRICS:
        raise InputError(f"{where}: metric {metric!r} is not one of {METRICS}", path=path, record=index)
    benchmarks = need("benchmarks")
    if not isinstance(benchmarks, list) or not benchmarks:
        raise InputError(f"{where}: benchmarks must be a non-empty list", path=path, record=index)
    try:
        expected = float(need("expected"))
        tolerance = float(raw.get("tolerance", 0.0))
        scale = float(raw.get("scale", 1.0))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}", path=path, record=index) from exc
    raw_pairs = raw.get("pairs", [])
    unresolved = ""
    if raw_pairs == "config":
        raw_pairs = [list(p) for p in config_pairs]
        if not raw_pairs:
            unresolved = "pairs: config, and audit.pairs names no (reasoning, base) models"
            raw_pairs = [["?", "?"]]
    if not isinstance(raw_pairs, list) or any(
        not isinstance(p, list | tuple) or len(p) != 2 for p in raw_pairs
    ):
        raise InputError(f"{where}: pairs must be [model, versus] lists or 'config'", path=path, record=index)
    pairs = [tuple(p) for p in raw_pairs]
    if not pairs and not raw.get("model"):
        raise InputError(f"{where}: needs a model or pairs", path=path, record=index)
    if not pairs and kind in ("difference", "ratio") and not raw.get("versus"):
        raise InputError(f"{where}: kind {kind} needs versus", path=path, record=index)
    return Cell(
        id=str(need("id")),
        source=str(raw.get("source", source)),
        description=str(raw.get("description", "")),
        kind=kind,
        metric=metric,
        expected=expected,
        tolerance=tolerance,
        benchmarks=[str(b) for b in benchmarks],
        model=str(raw.get("model", "")),
        versus=str(raw.get("versus", "")),
        pairs=[(str(a), str(b)) for a, b in pairs],
        attack=str(raw.get("attack", "none")),
        category=str(raw.get("category", MEAN)),
        scale=scale,
        pinned_md5=str(raw.get("pinned_md5", "")),
        unresolved=unresolved,
    )


def load_cells(
    paths: Iterable[str | os.PathLike[str]], config_pairs: Sequence[tuple[str, str]] = ()
) -> list[Cell]:
    """Cells of every expectations file, in order; ids must be unique across files."""
    cells: list[Cell] = []
    seen: dict[str, Path] = {}
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise InputError("expectations file not found", path=path)
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"not valid YAML: {exc}", path=path) from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
            raise InputError("expected a mapping with a 'cells' list", path=path)
        for i, raw in enumerate(doc["cells"]):
            if not isinstance(raw, dict):
                raise InputError("a cell must be a mapping", path=path, record=i)
            cell = _cell_from(raw, path, i, str(doc.get("source", path.name)), config_pairs)
            if cell.id in seen:
                raise InputError(f"cell id {cell.id!r} also in {seen[cell.id]}", path=path, record=i)
            seen[cell.id] = path
            cells.append(cell)
    return cells


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
    from safervlm.io import read_parquet
    from safervlm.schema import JUDGMENT_COLUMNS

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
    from safervlm.evaluate.outcomes import outcomes_from_judgments
    from safervlm.evaluate.safemlrm import RATE_COLUMNS, Settings, analyse

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
    threshold: float = 4.0,
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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def to_markdown(result: AuditResult, expectations: Sequence[str | os.PathLike[str]]) -> str:
    counts = result.counts()
    lines = [
        "# Audit",
        "",
        "Every number recomputed from the per-sample judgments "
        "(`eval/{model}/{benchmark}/judgments.parquet`) and compared with the expected value.",
        f"Expectations: {', '.join(f'`{p}`' for p in expectations)}.",
        "",
        "Cells: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".",
        "",
        "| cell | source | expected | recomputed | tolerance | verdict | artifact md5 | pin | detail |",
        "|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for r in result.cells.to_dict("records"):
        md5 = str(r["artifact_md5"])[:12] or "–"
        lines.append(
            f"| `{r['id']}` | {r['source']} | {_fmt(r['expected'])} | {_fmt(r['recomputed'])} "
            f"| {_fmt(r['tolerance'])} | **{r['verdict']}** | `{md5}` | {r['pin'] or '–'} | {r['detail']} |"
        )
    rep = result.report
    lines += ["", "## The report's rates, recomputed", ""]
    if rep.empty:
        lines.append("No `rates.csv` to cross-check.")
    else:
        bad = rep[rep["verdict"] != "match"]
        lines.append(f"{len(rep)} values in `rates.csv`: {len(rep) - len(bad)} match, {len(bad)} mismatch.")
        for r in bad.to_dict("records"):
            lines.append(f"- `{r['id']}`: reported {_fmt(r['expected'])}, recomputed {_fmt(r['recomputed'])}")
    return "\n".join(lines) + "\n"


def write_audit(
    result: AuditResult, out_dir: str | os.PathLike[str], expectations: Sequence[str | os.PathLike[str]]
) -> dict[str, Path]:
    out = Path(out_dir)
    paths = {"md": out / "audit.md", "csv": out / "audit.csv", "json": out / "audit.json"}
    write_text(to_markdown(result, expectations), paths["md"])
    with atomic_path(paths["csv"]) as tmp:
        pd.concat([result.cells, result.report], ignore_index=True).to_csv(tmp, index=False)
    write_json(
        {"counts": result.counts(), "mismatches": result.mismatches, "report_values": len(result.report)},
        paths["json"],
    )
    return paths


# --- pinning the embedded default's numbers -------------------------------------------


def demo_cells(
    results: Path,
    models: Sequence[str],
    benchmarks: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    threshold: float = 4.0,
    missing: str = "count",
) -> list[dict[str, Any]]:
    """The numbers a run reports, as cells with today's values (for ``--pin``)."""
    look = RateLookup(recompute_rates(load_judgments(results, pairs, models), pairs, threshold, missing))
    arts = Artifacts(results)
    specs: list[dict[str, Any]] = []
    for m in models:
        for b in benchmarks:
            for metric in ("safety", "helpfulness"):
                specs.append(
                    {
                        "id": f"demo.{m}.{b}.{metric}",
                        "kind": "rate",
                        "metric": metric,
                        "model": m,
                        "benchmarks": [b],
                    }
                )
        for metric in ("safety", "helpfulness", "asr_reasoning", "asr_answer", "asr_full", "self_correction"):
            specs.append(
                {
                    "id": f"demo.{m}.avg.{metric}",
                    "kind": "rate",
                    "metric": metric,
                    "model": m,
                    "benchmarks": list(benchmarks),
                }
            )
    for a, b in pairs:
        specs.append(
            {
                "id": f"demo.tax.{a}-{b}.asr_full",
                "kind": "difference",
                "metric": "asr_full",
                "model": a,
                "versus": b,
                "benchmarks": list(benchmarks),
            }
        )
    if "grpo" in models and "grpo_plain" in models:  # SaFeR-VLM's claim: the rollout beats plain GRPO
        for metric in ("safety", "helpfulness"):
            specs.append(
                {
                    "id": f"demo.safety_aware_gain.{metric}",
                    "kind": "difference",
                    "metric": metric,
                    "model": "grpo",
                    "versus": "grpo_plain",
                    "benchmarks": list(benchmarks),
                }
            )
    out = []
    for spec in specs:
        spec["scale"] = 1.0 if spec["kind"] == "ratio" else 100.0
        cell = _cell_from({**spec, "expected": 0.0}, Path("<pin>"), 0, "demo")
        value = cell_value(look, cell)
        paths = [judgments_path(results, m, b) for m in cell.models() for b in cell.benchmarks]
        if math.isnan(value) or not all(p.is_file() for p in paths):
            continue  # undefined on the demo (e.g. no should-refuse samples): nothing to pin
        out.append({**spec, "expected": float(value), "tolerance": 1e-9, "pinned_md5": arts.digest(paths)})
    return out


def write_pins(path: str | os.PathLike[str], cells: list[dict[str, Any]], note: str) -> None:
    doc = {"source": "embedded default (pinned run)", "note": note, "cells": cells}
    write_text(yaml.safe_dump(doc, sort_keys=False, width=100), path)
