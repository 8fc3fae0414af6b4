"""The audit's expectations: cells of expected numbers, read from ``config/audit/*.yaml``.

A *cell* is one number. Its spec names what it is computed from and how:

``kind``
    ``rate`` (the model's rate, averaged unweighted over ``benchmarks``), ``difference``
    (model's rate minus ``versus``'s), ``ratio`` (model's rate over ``versus``'s). With
    ``pairs`` ([model, versus] lists, or ``config`` for the config's ``audit.pairs``) instead
    of ``model``/``versus``, the cell is the unweighted mean over the pairs (for ``rate``:
    over their reasoning models).
``metric``
    A SafeMLRM rate metric (``metrics.asr.RATE_METRICS``).
``benchmarks`` (a list), ``attack`` (default ``none``), ``category`` (default ``(mean)``,
the unweighted mean of the benchmark's scenarios), ``scale`` (100 for percentages),
``expected``, ``tolerance``, ``pinned_md5`` (the artifact hash the number was pinned from),
``protocol`` (the judge protocol the published number was measured under, in words) and
``judge`` (that protocol's judge: a name, or ``{name, model, version}``; judgments by
another judge make the cell *not comparable*, ``report.audit.protocol``).

A cell with ``artifact`` instead names an imported third-party release and the definition
variants to recompute it under (``report.audit.definitions``, ``report.audit.sources``).

:func:`inputs_from_config` reads what an audit needs from a workflow config, resolving
paths as ``rules/common.smk`` does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from safervlm.benchmarks.catalog import BENCHMARKS
from safervlm.errors import InputError, SafervlmError
from safervlm.layout import judged_name, run_judges, run_seeds, seed_dir
from safervlm.metrics import ASR_THRESHOLD, MEAN, RATE_METRICS
from safervlm.report.audit.definitions import SourceCell, source_cell_from
from safervlm.report.audit.protocol import JudgeSpec, judge_model_of, judge_spec_from

JUDGMENTS = "judgments.parquet"

KINDS = ("rate", "difference", "ratio")


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
    protocol: str = ""  # the judge protocol the published number was measured under
    judge: JudgeSpec | None = None  # that protocol's judge (report.audit.protocol)
    unresolved: str = ""  # why the cell cannot be computed at all (it reads as absent)

    def sides(self) -> list[tuple[str, str]]:
        """(model, versus) per pair, or the one (model, versus); versus is "" for a rate."""
        if self.pairs:
            return [(a, "" if self.kind == "rate" else b) for a, b in self.pairs]
        return [(self.model, self.versus)]

    def models(self) -> list[str]:
        """Every model the cell reads, in order, once each."""
        return list(dict.fromkeys(m for side in self.sides() for m in side if m))


def cell_from(
    raw: Mapping[str, Any], path: Path, index: int, source: str, config_pairs: Sequence[tuple[str, str]] = ()
) -> Cell:
    """A validated :class:`Cell` from one YAML mapping (``index`` and ``path`` name it in errors)."""
    where = f"cell {raw.get('id', index)!r}"

    def need(key: str) -> Any:
        if key not in raw:
            raise InputError(f"{where} has no {key!r}", path=path, record=index)
        return raw[key]

    kind = need("kind")
    if kind not in KINDS:
        raise InputError(f"{where}: kind {kind!r} is not one of {KINDS}", path=path, record=index)
    metric = need("metric")
    if metric not in RATE_METRICS:
        raise InputError(f"{where}: metric {metric!r} is not one of {RATE_METRICS}", path=path, record=index)
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
        protocol=str(raw.get("protocol", "")),
        judge=judge_spec_from(raw.get("judge"), where, path, index),
        unresolved=unresolved,
    )


def load_cells(
    paths: Iterable[str | os.PathLike[str]], config_pairs: Sequence[tuple[str, str]] = ()
) -> list[Cell]:
    """Cells of every expectations file that name models, in order (see :func:`load_expectations`)."""
    return load_expectations(paths, config_pairs)[0]


def load_expectations(
    paths: Iterable[str | os.PathLike[str]], config_pairs: Sequence[tuple[str, str]] = ()
) -> tuple[list[Cell], list[SourceCell]]:
    """Cells of every expectations file, in order: those naming models, and those naming an
    imported artifact (``artifact:``, ``report.audit.sources``); ids unique across files."""
    cells: list[Cell] = []
    source_cells: list[SourceCell] = []
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
            source = str(doc.get("source", path.name))
            if "artifact" in raw:
                one: Cell | SourceCell = source_cell_from(raw, path, i, source)
            else:
                one = cell_from(raw, path, i, source, config_pairs)
            if one.id in seen:
                raise InputError(f"cell id {one.id!r} also in {seen[one.id]}", path=path, record=i)
            seen[one.id] = path
            (source_cells if isinstance(one, SourceCell) else cells).append(one)  # type: ignore[arg-type]
    return cells, source_cells


@dataclass
class AuditInputs:
    """What an audit or a pin reads: where, which models and pairs, analysis settings."""

    results: str = "results"
    expected: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    benchmarks: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    audit_pairs: list[tuple[str, str]] = field(default_factory=list)
    threshold: float = ASR_THRESHOLD
    missing: str = "count"
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> imported release folder
    judgments: str = JUDGMENTS  # judgments.<judge>.parquet: the audited judge's
    judge_model: str = ""  # the model of the judge that produced them ("" when not known)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SafervlmError(f"{path}: cannot read the config: {exc}") from exc
    if not isinstance(cfg, dict):
        raise SafervlmError(f"{path}: cannot read the config: expected a mapping")
    return cfg


def inputs_from_config(config: str | os.PathLike[str], given: AuditInputs) -> AuditInputs:
    """``given`` completed from a workflow config, as ``rules/audit.smk`` passes it.

    The config's ``results``, ``eval.safemlrm.threshold`` and ``eval.safemlrm.missing`` win
    (they are what the run used); models, benchmarks, pairs and expectation files come from
    it only where ``given`` names none. As in ``rules/common.smk``, ``results`` is relative
    to the working directory, expectation files and imported releases (``audit.artifacts``)
    to the workflow folder (the config's folder's parent, as for ``config/config.yaml``).
    A run with several seeds or judges is audited on its main tables' run, the first seed
    and (unless ``given`` names another judgments file) the first judge, in the layout of
    :mod:`safervlm.layout`; that judge's ``params.model`` is the judgments' judge model
    (unless ``given`` names one).
    """
    path = Path(config)
    cfg = _read_config(path)
    ev = cfg.get("eval") or {}
    analysis = ev.get("safemlrm") or {}
    audit = cfg.get("audit") or {}
    basedir = path.resolve().parent.parent
    seeds, judges = run_seeds(cfg), run_judges(cfg)
    label = next(iter(judges))
    main_judge = judged_name(JUDGMENTS, judges, label)
    if given.judgments != JUDGMENTS:  # judgments.<label>.parquet: that judge's
        label = given.judgments.split(".")[1] if given.judgments.count(".") == 2 else label
    return AuditInputs(
        results=seed_dir(str(cfg.get("results", given.results)), seeds, seeds[0]),
        judgments=main_judge if given.judgments == JUDGMENTS else given.judgments,
        judge_model=given.judge_model or judge_model_of(judges, label),
        expected=given.expected or [str(basedir / p) for p in audit.get("expected", [])],
        models=given.models or [str(m) for m in ev.get("models", [])],
        benchmarks=given.benchmarks or _benchmarks(cfg),
        pairs=given.pairs or [(str(r), str(b)) for r, b in ev.get("pairs", [])],
        audit_pairs=given.audit_pairs or [(str(r), str(b)) for r, b in audit.get("pairs", [])],
        threshold=float(analysis.get("threshold", given.threshold)),
        missing=str(analysis.get("missing", given.missing)),
        artifacts=given.artifacts
        or {str(k): str(basedir / v) for k, v in (audit.get("artifacts") or {}).items()},
    )


def _benchmarks(cfg: dict[str, Any]) -> list[str]:
    """The config's evaluated benchmarks; left out (null / empty), as the workflow fills them:
    the ``benchmarks`` section's, else every registered benchmark (catalog order)."""
    listed = (cfg.get("eval") or {}).get("benchmarks") or list(cfg.get("benchmarks") or {})
    return [str(b) for b in listed] or list(BENCHMARKS)

