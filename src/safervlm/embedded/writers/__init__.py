"""Per-benchmark synthetic fixture writers: ``write(root, rng, n) -> Truth`` in each module.

A writer draws with :mod:`safervlm.embedded.world`, writes its benchmark's official files
under ``root`` and returns the ground truth keyed by the sample ids the benchmark's
adapter produces (it builds them with that module's ``sample_id``). Writers of training
sources take ``train=True``. ``embedded.fixtures.write_fixture`` imports one by name
(``writers/<benchmark>.py``), so a fixture job runs only its own writer.
"""
