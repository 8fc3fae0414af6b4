"""Evaluation: generation, scoring and SafeMLRM's analyses."""
