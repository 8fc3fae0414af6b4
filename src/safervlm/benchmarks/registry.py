"""The benchmark record: what one benchmark module declares, and the registry built from them.

Every benchmark module ends with one ``BENCHMARK = Benchmark(...)``: the adapter class
(which carries ``name``, ``version`` and ``card``), the judge rubric of the benchmark's
official protocol (declared in the module itself, or the name of a shared one) and its
official metric. :mod:`safervlm.benchmarks` lists the modules
once; the adapter registry, the rubric table and the official-metric table all derive
from that list (in the style of lm-evaluation-harness: config names a benchmark by
string, an unknown name fails with the known ones).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from safervlm.benchmarks.rubric import RubricSpec
from safervlm.data.adapter import CARD_KEYS, BenchmarkAdapter
from safervlm.errors import ConfigError

logger = logging.getLogger(__name__)

Indicator = Callable[[pd.Series], float]


class UnknownBenchmarkError(ConfigError, KeyError):
    """An unknown benchmark name; catchable as ConfigError or KeyError."""

    __str__ = Exception.__str__  # KeyError would repr() the message


@dataclass(frozen=True)
class Benchmark:
    """Everything the pipeline knows about one benchmark, declared in its module.

    Attributes:
        adapter: Adapter class from the official on-disk format (``name``, ``version``, ``card``).
        rubric: Judge rubric of the benchmark's official protocol: its own
            :class:`~safervlm.benchmarks.rubric.RubricSpec` (prompt text, verdict schema,
            parser), or the name of a shared protocol of :mod:`safervlm.judge.protocols`
            (``saferv``, the unified rubric, where the protocol has no rubric of its own).
        metric: Name of the official metric, e.g. ``asr``.
        official: Per-sample indicator of the official metric over one judgment row
            (NaN where the sample does not count).
    """

    adapter: type[BenchmarkAdapter]
    rubric: RubricSpec | str
    metric: str
    official: Indicator

    @property
    def name(self) -> str:
        """The registry name (the adapter's ``name``)."""
        return self.adapter.name

    @property
    def rubric_name(self) -> str:
        """The name of the official protocol's rubric (``judge.params.rubrics: official``)."""
        return self.rubric if isinstance(self.rubric, str) else self.rubric.name


def build_registry(benchmarks: Iterable[Benchmark]) -> dict[str, Benchmark]:
    """Index ``benchmarks`` by name, checking each is complete.

    Raises:
        ValueError: A name is empty or taken twice, or an adapter's card lacks keys.
    """
    out: dict[str, Benchmark] = {}
    for b in benchmarks:
        if not b.name:
            raise ValueError(f"adapter {b.adapter.__qualname__} has no name")
        if b.name in out:
            raise ValueError(f"benchmark {b.name!r} declared twice")
        missing = [k for k in CARD_KEYS if k not in b.adapter.card]
        if missing:
            raise ValueError(f"adapter {b.adapter.__qualname__} card lacks keys {missing}")
        out[b.name] = b
        logger.debug("registered benchmark %s -> %s", b.name, b.adapter.__qualname__)
    return out


def lookup(registry: dict[str, Benchmark], name: str) -> Benchmark:
    """The benchmark registered as ``name``.

    Raises:
        UnknownBenchmarkError: (a ConfigError and KeyError) listing the known names.
    """
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry)) or "(none registered)"
        raise UnknownBenchmarkError(f"unknown benchmark {name!r}; known benchmarks: {known}") from None
