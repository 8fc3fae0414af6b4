"""Report: result tables (md/csv/tex) and the safety/helpfulness figure."""

from safervlm.report.figures import plot_safety_helpfulness
from safervlm.report.tables import build_long_table, build_table, to_latex, to_markdown, write_tables

__all__ = [
    "build_long_table",
    "build_table",
    "plot_safety_helpfulness",
    "to_latex",
    "to_markdown",
    "write_tables",
]
