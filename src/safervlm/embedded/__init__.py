"""The embedded default's synthetic world: nothing real depends on it.

* :mod:`~safervlm.embedded.world` — vocabulary (objects, tasks, phrasings), reference
  responses and drawing: the ground truth the fixtures and the reference judge share;
* :mod:`~safervlm.embedded.fixtures` — :func:`build_fixtures`, every benchmark and training
  source in its official on-disk format, from the per-benchmark writers in
  :mod:`~safervlm.embedded.writers` (helpers in :mod:`~safervlm.embedded.common`);
* :mod:`~safervlm.embedded.tiny` — the offline tiny Qwen2.5-VL-architecture model builder.

The package imports nothing itself: the reference judge needs only ``world``, and neither
it nor the fixtures should load torch for the tiny model.
"""
