"""Audit: recompute every reported number from the per-sample artifacts and compare it with
the numbers we expect — published ones (the papers' abstracts) and pinned ones (the embedded
default's own run) — kept as YAML under ``config/audit/``.

``spec`` reads and validates the expectations (``definitions``: the cells that name a
release and their definition variants), ``sources`` recomputes the cells that name
an imported third-party release under every distinct definition variant (``variants``;
the arithmetic in ``quantities``),
``protocol`` tells whether a cell's judge protocol is the judgments' judge, ``artifacts``
finds and hashes the judgments and pins releases with ``dvc import``,
``recompute`` recomputes every cell from them through ``metrics``, ``render``
writes ``audit.md``/``.csv``/``.json``, ``pin`` writes a run's numbers as expectations.
"""

from safervlm.errors import InputError
from safervlm.report.audit.artifacts import dvc_import, dvc_provenance, judgments_path
from safervlm.report.audit.definitions import SOURCE_VERDICTS, SourceCell, source_cell_from
from safervlm.report.audit.pin import demo_cells, write_pins
from safervlm.report.audit.protocol import NOT_COMPARABLE, JudgeSpec, incomparable
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
    load_judgments,
    recompute_rates,
    run_audit,
)
from safervlm.report.audit.render import to_markdown, write_audit
from safervlm.report.audit.sources import audit_source_cells
from safervlm.report.audit.spec import (
    KINDS,
    AuditInputs,
    Cell,
    cell_from,
    inputs_from_config,
    load_cells,
    load_expectations,
)
from safervlm.report.audit.variants import Variant, distinct_variants

__all__ = [
    "KINDS",
    "NOT_COMPARABLE",
    "SOURCE_VERDICTS",
    "VERDICTS",
    "Artifacts",
    "AuditFailed",
    "AuditInputs",
    "AuditResult",
    "Cell",
    "InputError",
    "JudgeSpec",
    "SourceCell",
    "Variant",
    "RateLookup",
    "audit_cells",
    "audit_source_cells",
    "cell_from",
    "cell_value",
    "cross_check_report",
    "demo_cells",
    "distinct_variants",
    "dvc_import",
    "dvc_pins",
    "dvc_provenance",
    "incomparable",
    "inputs_from_config",
    "judgments_path",
    "load_cells",
    "load_expectations",
    "load_judgments",
    "recompute_rates",
    "run_audit",
    "source_cell_from",
    "to_markdown",
    "write_audit",
    "write_pins",
]
