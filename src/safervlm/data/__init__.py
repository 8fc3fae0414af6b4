"""Shared format helpers of the benchmark adapters and training-source readers.

:mod:`safervlm.data.readers` (checked record and image reading, path containment),
:mod:`safervlm.data.adapter` (the adapter base class), :mod:`safervlm.data.hf_parquet`
(Hugging Face parquet / ``save_to_disk`` layouts) and :mod:`safervlm.evaluate.attacks`
(jailbreak inputs). The adapters themselves live in :mod:`safervlm.benchmarks`, the
source readers in :mod:`safervlm.sources`, the synthetic fixtures and their ground-truth
sidecar in :mod:`safervlm.embedded`.
"""
