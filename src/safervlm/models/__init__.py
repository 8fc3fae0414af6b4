"""Policies and processors: loading, and the offline tiny-model builder."""

from safervlm.models.processor import ImageOnlyQwenVLProcessor, load_policy, load_processor

__all__ = ["ImageOnlyQwenVLProcessor", "load_policy", "load_processor"]
