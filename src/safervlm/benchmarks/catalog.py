"""Every benchmark at once: the registry list, and the tables each benchmark contributes to.

The three tables (official rubric per benchmark, the rubrics benchmarks declare, official
metric per benchmark) all derive from ``_MODULES``: adding a benchmark is one line there.

Importing this module imports every benchmark module (statically, so the rules that use
these tables track them all). One line per benchmark in ``_MODULES``; a test checks it
lists exactly the benchmark modules of the package.
"""

from __future__ import annotations

from safervlm.benchmarks import (
    beavertails_v,
    figstep,
    mmsafetybench,
    mssbench,
    siuo,
    spa_vl,
    vlguard,
    vlsbench,
)
from safervlm.benchmarks.registry import Benchmark, Indicator, build_registry
from safervlm.benchmarks.rubric import RubricSpec

# The registry: one line per benchmark, in report order (SaFeR-VLM's six, then MSSBench and
# FigStep). A config without a `benchmarks` section or `eval.benchmarks` evaluates all of them
# in this order (workflow_support.fill_benchmarks reads this tuple without importing them).
_MODULES = (
    beavertails_v,
    mmsafetybench,
    spa_vl,
    vlguard,
    vlsbench,
    siuo,
    mssbench,
    figstep,
)
BENCHMARKS: dict[str, Benchmark] = build_registry(m.BENCHMARK for m in _MODULES)
# Benchmark -> rubric of its official protocol (for judge.params.rubrics: official).
OFFICIAL_RUBRICS: dict[str, str] = {name: b.rubric_name for name, b in BENCHMARKS.items()}
# Rubric name -> the rubric a benchmark declares in its module (the judge registers them all).
BENCHMARK_RUBRICS: dict[str, RubricSpec] = {
    b.rubric.name: b.rubric for b in BENCHMARKS.values() if isinstance(b.rubric, RubricSpec)
}
# Benchmark -> (official metric name, per-sample indicator).
OFFICIAL: dict[str, tuple[str, Indicator]] = {name: (b.metric, b.official) for name, b in BENCHMARKS.items()}

__all__ = ["BENCHMARKS", "BENCHMARK_RUBRICS", "OFFICIAL", "OFFICIAL_RUBRICS"]
