"""Report: result tables (md/csv/tex) and figures, including the SafeMLRM analysis."""

from safervlm.report.analysis import safety_helpfulness_points, write_analysis
from safervlm.report.figures import plot_blind_spots, plot_safety_helpfulness, plot_safety_vs_helpfulness
from safervlm.report.tables import build_long_table, build_table, to_latex, to_markdown, write_tables

__all__ = [
    "build_long_table",
    "build_table",
    "plot_blind_spots",
    "plot_safety_helpfulness",
    "plot_safety_vs_helpfulness",
    "safety_helpfulness_points",
    "to_latex",
    "to_markdown",
    "write_analysis",
    "write_tables",
]
