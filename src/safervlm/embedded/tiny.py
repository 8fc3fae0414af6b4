"""Build the embedded default's tiny policy offline, in any supported model family.

The builders live with their families (:mod:`safervlm.models.families`); this module is the
embedded default's entry point: :func:`build_tiny_model` (default family Qwen2.5-VL, the
demo's policy) and the Qwen2.5-VL pieces benchmarks use (:data:`SHAPES`, :func:`train_tokenizer`).
The same family, seed, sizes and text give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from safervlm.models.families import get_family
from safervlm.models.families.qwen2_5_vl import (
    CHAT_TEMPLATE,
    DEFAULT_SYSTEM,
    QWEN25_VL_3B,
    SHAPES,
    SPECIAL_TOKENS,
    tiny_config,
)
from safervlm.models.families.qwen2_5_vl import tokenizer as _qwen_tokenizer
from safervlm.models.families.tiny import REASONING_TOKENS, TinyDims

__all__ = [
    "CHAT_TEMPLATE",
    "DEFAULT_SYSTEM",
    "QWEN25_VL_3B",
    "REASONING_TOKENS",
    "SHAPES",
    "SPECIAL_TOKENS",
    "TinyDims",
    "build_tiny_model",
    "tiny_config",
    "train_tokenizer",
]


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer with Qwen's special tokens on ``texts``."""
    return _qwen_tokenizer(texts, vocab_size)


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
