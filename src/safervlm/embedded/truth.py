"""The embedded world's ground-truth sidecar ``safervlm_truth.json``.

The synthetic fixtures (:mod:`safervlm.embedded.fixtures`) write it into each benchmark
root: sample id -> ``{"should_refuse", "image_objects", "category"}``. Official copies do
not have it. :func:`with_truth` merges it, when present, into the samples an adapter read
(``safervlm prepare`` and the training-source reader do); without it samples pass unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from safervlm.data.readers import read_json_file
from safervlm.errors import InputError
from safervlm.schema import Sample

TRUTH_FILE = "safervlm_truth.json"


def load_truth(root: Path) -> dict[str, dict[str, Any]]:
    """Read the fixture ground-truth sidecar if present, else return an empty dict."""
    path = root / TRUTH_FILE
    if not path.exists():
        return {}
    truth = read_json_file(path)
    if not isinstance(truth, dict):
        raise InputError("truth sidecar must map sample id -> object", path=path)
    return truth


def apply_truth(sample: Sample, truth: Mapping[str, Mapping[str, Any]]) -> Sample:
    """Merge sidecar ground truth into ``sample`` (image_objects, should_refuse; empty category)."""
    t = truth.get(sample.id)
    if not t:
        return sample
    if t.get("should_refuse") is not None:
        sample.should_refuse = bool(t["should_refuse"])
    if "image_objects" in t:
        sample.image_objects = [str(o) for o in t["image_objects"]]
    if t.get("category") and not sample.category:
        sample.category = str(t["category"])
    return sample


def with_truth(samples: Iterable[Sample], root: Path | str) -> Iterator[Sample]:
    """``samples`` (read from ``root``) with the sidecar's ground truth merged, if any.

    Raises:
        InputError: The sidecar is not a JSON object (naming the file).
    """
    truth = load_truth(Path(root))
    for sample in samples:
        yield apply_truth(sample, truth)
