"""The one metrics path: per-sample outcomes, ASR on reasoning / answer / full response,
Reasoning Tax, blind spots, self-correction, and the bootstrap behind every interval.

``asr`` holds the metric names, the attack-success threshold and both ASR definitions;
``bootstrap`` the resampling; ``outcomes`` turns judgments into per-sample outcomes;
``safemlrm`` aggregates outcomes into rates, the Reasoning Tax and blind spots;
``summary`` gives the per-group means, over-refusal and CIs of ``evaluate.score``;
``paired`` compares two models on the same items (paired bootstrap, McNemar's exact test)
and across seeds (t interval, paired t-test); ``agreement`` compares two judges (percent
agreement, Cohen's kappa). ``paired`` and ``agreement`` are imported from their modules,
not re-exported here: ``agreement`` loads scikit-learn, which no other metric needs.
"""

from safervlm.metrics.asr import (
    ASR_METRICS,
    ASR_THRESHOLD,
    PARTS,
    RATE_METRICS,
    attack_success,
    mean_unsafety_samples,
)
from safervlm.metrics.bootstrap import bootstrap_ci, bootstrap_means, percentile_interval

# The official per-benchmark metrics are declared by the benchmark modules
# (``benchmarks.catalog.OFFICIAL``); ``metrics.outcomes`` applies them.
from safervlm.metrics.outcomes import outcomes_from_judgments
from safervlm.metrics.safemlrm import (
    KEYS,
    MEAN,
    MISSING_POLICIES,
    OUTCOME_COLUMNS,
    RATE_COLUMNS,
    TAX_COLUMNS,
    Settings,
    analyse,
    blind_spots,
    count_statuses,
)

__all__ = [
    "ASR_METRICS",
    "ASR_THRESHOLD",
    "KEYS",
    "MEAN",
    "MISSING_POLICIES",
    "OUTCOME_COLUMNS",
    "PARTS",
    "RATE_COLUMNS",
    "RATE_METRICS",
    "TAX_COLUMNS",
    "Settings",
    "analyse",
    "attack_success",
    "blind_spots",
    "bootstrap_ci",
    "bootstrap_means",
    "count_statuses",
    "mean_unsafety_samples",
    "outcomes_from_judgments",
    "percentile_interval",
]
