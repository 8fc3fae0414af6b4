"""Training sources of the QI-Safe pool (BeaverTails-V, SPA-VL, VLGuard train).

Each source is read by its benchmark's adapter (:mod:`safervlm.benchmarks`) configured for
the training split; see :mod:`safervlm.sources.readers`::

    from safervlm.sources import load_source
    rows = load_source("spa_vl", "/data/SPA-VL", cap=10_000, seed=0)
"""

from safervlm.sources.readers import list_sources, load_source, source_adapter

__all__ = ["list_sources", "load_source", "source_adapter"]
