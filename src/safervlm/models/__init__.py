"""Policies and processors: loading by model family (:mod:`safervlm.models.families`)."""

from safervlm.models.families import FAMILIES, Family, family_of, get_family
from safervlm.models.processor import ImageOnlyQwenVLProcessor, load_policy, load_processor

__all__ = [
    "FAMILIES",
    "Family",
    "ImageOnlyQwenVLProcessor",
    "family_of",
    "get_family",
    "load_policy",
    "load_processor",
]
