"""Audit: recompute every reported number from the per-sample artifacts and compare it with
the numbers we expect — published ones (the papers' abstracts) and pinned ones (the embedded
default's own run) — kept as YAML under ``config/audit/``.

``spec`` reads and validates the expectations, ``artifacts`` finds and hashes the
judgments, ``recompute`` recomputes every cell from them through ``metrics``, ``render``
writes ``audit.md``/``.csv``/``.json``, ``pin`` writes a run's numbers as expectations.
"""

from safervlm.report.audit.pin import demo_cells, write_pins
from safervlm.report.audit.recompute import (
    VERDICTS,
    Artifacts,
    AuditFailed,
    AuditResult,
    RateLookup,
    audit_cells,
    cell_value,
    cross_check_report,
    dvc_pins,
    judgments_path,
    load_judgments,
    recompute_rates,
    run_audit,
)
from safervlm.report.audit.render import to_markdown, write_audit
from safervlm.report.audit.spec import KINDS, AuditInputs, Cell, cell_from, inputs_from_config, load_cells

__all__ = [
    "KINDS",
    "VERDICTS",
    "Artifacts",
    "AuditFailed",
    "AuditInputs",
    "AuditResult",
    "Cell",
    "RateLookup",
    "audit_cells",
    "cell_from",
    "cell_value",
    "cross_check_report",
    "demo_cells",
    "dvc_pins",
    "inputs_from_config",
    "judgments_path",
    "load_cells",
    "load_judgments",
    "recompute_rates",
    "run_audit",
    "to_markdown",
    "write_audit",
    "write_pins",
]
