"""Loading a policy and its processor from a local folder, by model family.

The family comes from the folder's ``config.json`` (``model_type``;
:func:`safervlm.models.families.family_of`): an unsupported one is a ``ConfigError`` naming
the supported families. Each family loads its processor with or without torchvision (an
image-only processor where the stock one needs a video processor). ``AutoProcessor`` on a
folder saved with an image-only processor silently returns just the tokenizer, so callers
use :func:`load_processor` and pass the result to TRL as ``processing_class``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safervlm.models.families import family_of
from safervlm.models.families.qwen2_5_vl import ImageOnlyQwenVLProcessor

__all__ = ["ImageOnlyQwenVLProcessor", "load_policy", "load_processor"]


def load_processor(path: str | Path) -> Any:
    """Load the processor of the policy folder ``path`` (its family's way).

    Raises:
        ConfigError: no folder or ``config.json``, or an unsupported ``model_type``.
    """
    return family_of(path).processor(Path(path))


def load_policy(path: str | Path, dtype: str = "float32") -> tuple[Any, Any]:
    """Load a policy and its processor from a local folder (any supported family).

    Raises:
        ConfigError: no folder or ``config.json``, or an unsupported ``model_type``.
    """
    family = family_of(path)
    processor = family.processor(Path(path))
    return family.model(Path(path), dtype), processor
