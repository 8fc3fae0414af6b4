"""The arithmetic of a definition variant over an imported release's rates.

:class:`ReleaseRates` looks up one setting's rates; :func:`quantity_of` is one reasoning
rate against its base rate (a rate, a difference, a relative change, a ratio);
:func:`combine` aggregates it over pairs (``mean_of_ratios`` / ``ratio_of_means``) and
:func:`per_scenario` takes it per scenario, then the unweighted mean over scenarios.
"""

from __future__ import annotations

import math

import pandas as pd

from safervlm.metrics import MEAN
from safervlm.report.audit.definitions import BENCHMARK, POOLED
from safervlm.report.audit.variants import Variant


class ReleaseRates:
    """A release's rates of one setting by (model, attack, category, metric)."""

    def __init__(self, rates: pd.DataFrame) -> None:
        rows = rates[rates["benchmark"] == BENCHMARK].to_dict("records")
        self._v: dict[tuple[str, ...], float] = {
            (str(r["model"]), str(r["attack"]), str(r["category"]), str(r["metric"])): float(r["value"])
            for r in rows
        }
        self.models = {m for m, *_ in self._v}

    def rate(self, model: str, attack: str, category: str, metric: str) -> float:
        """The rate at that key, NaN when the release has none."""
        return self._v.get((model, attack, category, metric), math.nan)

    def scenarios(self, metric: str) -> list[str]:
        """The release's scenarios (categories other than the means), sorted."""
        return sorted({c for _, _, c, m in self._v if m == metric and c not in (MEAN, POOLED)})


def quantity_of(quantity: str, x: float, y: float) -> float:
    """The quantity of one reasoning rate ``x`` against its base rate ``y``."""
    if quantity in ("rate", "self_correction"):
        return x
    if quantity == "difference":
        return x - y
    if y == 0:
        return math.nan  # a ratio over a base rate of 0 is undefined
    return (x - y) / y if quantity == "relative" else x / y


def combine(quantity: str, aggregate: str, r: list[float], b: list[float]) -> float:
    """The quantity over pairs: per pair then the mean, or of the pairs' mean rates."""
    if aggregate == "ratio_of_means":
        return quantity_of(quantity, sum(r) / len(r), sum(b) / len(b))
    return sum(quantity_of(quantity, x, y) for x, y in zip(r, b, strict=True)) / len(r)


def mean_of(values: list[float]) -> float:
    """The unweighted mean; NaN for no values."""
    return sum(values) / len(values) if values else math.nan


def per_scenario(look: ReleaseRates, v: Variant, metric: str) -> tuple[float, str]:
    """The quantity per scenario, then the unweighted mean over scenarios.

    ``mean_of_ratios``: per pair, the mean over its scenarios, then the mean over pairs;
    ``ratio_of_means``: per scenario, the quantity of the pairs' mean rates, then the mean.
    A scenario where the quotient is undefined (a base rate of 0) is left out and counted.
    """
    (ra, ba), scenarios = v.attack, look.scenarios(metric)
    r = [{s: look.rate(a, ra, s, metric) for s in scenarios} for a, _ in v.pairs]
    b = [{s: look.rate(base, ba, s, metric) for s in scenarios} for _, base in v.pairs]
    left = 0
    if v.aggregate == "ratio_of_means":
        per = [combine(v.quantity, v.aggregate, [x[s] for x in r], [y[s] for y in b]) for s in scenarios]
        left, value = sum(math.isnan(q) for q in per), mean_of([q for q in per if not math.isnan(q)])
    else:
        pair_values = []
        for x, y in zip(r, b, strict=True):
            per = [quantity_of(v.quantity, x[s], y[s]) for s in scenarios]
            left += sum(math.isnan(q) for q in per)
            pair_values.append(mean_of([q for q in per if not math.isnan(q)]))
        value = mean_of(pair_values)
    total = len(scenarios) * (1 if v.aggregate == "ratio_of_means" else len(v.pairs))
    note = f"{left} of {total} (pair, scenario) values left out: a base rate of 0" if left else ""
    return value, note
