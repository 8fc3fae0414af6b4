"""Report: result tables (md/csv/tex) and figures, the SafeMLRM analysis tables, plain vs
safety-aware GRPO, and the audit. Import the submodule you need (``report.tables``,
``report.figures``, ``report.analysis``, ``report.compare``, ``report.audit``): a stage then
loads (and its rule tracks) only that, and the audit starts without matplotlib."""
