"""Build the embedded default's tiny policy offline, in any supported model family.

The builders live with their families (:mod:`safervlm.models.families`); this module is the
embedded default's entry point: :func:`build_tiny_model` (default family Qwen2.5-VL, the
demo's policy) and the Qwen2.5-VL shapes benchmarks build (:data:`SHAPES`).
The same family, seed, sizes and text give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from safervlm.models.families import get_family
from safervlm.models.families.qwen2_5_vl import SHAPES
from safervlm.models.families.tiny import TinyDims

__all__ = ["SHAPES", "TinyDims", "build_tiny_model"]


def build_tiny_model(
    out: str | Path,
    texts: Iterable[str],
    seed: int = 0,
    dims: TinyDims | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    family: str = "qwen2_5_vl",
) -> int:
    """Build, save and return the parameter count of the tiny policy at ``out``.

    Args:
        out: folder to write (replaced atomically).
        texts: corpus for the tokenizer (the fixtures' questions and responses).
        seed: weight-init seed; the same seed and texts give identical files.
        dims: model sizes.
        device, dtype: where and in which dtype the random weights are made and saved (a
            GPU makes a billion-parameter shape in seconds; the embedded default: CPU, fp32).
        family: the model family (``base_model.tiny.family``).

    Raises:
        ConfigError: an unknown family (the message lists the supported ones).
    """
    builder = get_family(family).build_tiny
    return builder(out, texts, seed=seed, dims=dims or TinyDims(), device=device, dtype=dtype)
