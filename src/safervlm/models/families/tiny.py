"""Pieces every family's tiny offline builder shares: sizes, a locally trained tokenizer,
the decoder and vision config dicts, seeded random weights, atomic saving.

A family declares its tokens (:class:`TinyTokens`) and a ``parts(tok, ids, dims)`` function
returning its processor and config; :func:`tiny_builder` makes its ``build_tiny`` from them.

A tiny model has its family's real architecture at a few hundred thousand parameters; its
tokenizer is a byte-level BPE trained on the given texts with the family's special tokens,
plus ``<think>``/``</think>`` as ordinary tokens (decoding with ``skip_special_tokens=True``,
as TRL does for rollouts, keeps them). The same seed and texts give byte-identical files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PretrainedConfig, PreTrainedTokenizerFast

from safervlm.io import atomic_path

log = logging.getLogger(__name__)

# Added as ordinary (non-special) tokens: decoding with skip_special_tokens=True, as TRL
# does for rollouts, must keep the reasoning tags.
REASONING_TOKENS = ["<think>", "</think>"]


@dataclass(frozen=True)
class TinyDims:
    """Sizes of a tiny model (defaults: the embedded default's ~0.5M parameters).

    ``vocab_size`` is the tokenizer's BPE vocabulary; ``model_vocab_size`` (None: the
    tokenizer's length) sizes the embedding, so a real model's shape can be built on the
    small local tokenizer (ids past the tokenizer decode to nothing). The fields after
    ``image_size`` are Qwen2.5-VL's; other families read the common ones only.
    """

    vocab_size: int = 2048
    hidden_size: int = 96
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    vision_depth: int = 2
    vision_hidden: int = 64
    image_size: int = 112
    model_vocab_size: int | None = None
    vision_intermediate: int | None = None  # None: 2 x vision_hidden
    vision_heads: int = 4
    window_size: int = 56
    fullatt_block_indexes: tuple[int, ...] | None = None  # None: the last vision block
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    mrope_section: tuple[int, int, int] | None = None  # None: half the head dim split ~evenly


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    special_tokens: list[str],
    chat_template: str,
    *,
    eos_token: str,
    pad_token: str,
    bos_token: str | None = None,
    named_tokens: dict[str, str] | None = None,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer with ``special_tokens`` on ``texts``.

    Args:
        texts: the corpus (order does not matter: it is sorted and deduplicated).
        vocab_size: BPE vocabulary size (special tokens included).
        special_tokens: the family's control tokens, ids 0, 1, … in this order.
        chat_template: the family's chat template (Jinja).
        eos_token, pad_token, bos_token: which special tokens play these roles.
        named_tokens: extra named special tokens (``image_token`` …) the processor reads.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sorted(set(texts)), trainer)  # sorted: order-independent merges
    tok.add_tokens(REASONING_TOKENS)
    kwargs: dict[str, Any] = {"bos_token": bos_token} if bos_token else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=eos_token,
        pad_token=pad_token,
        chat_template=chat_template,
        extra_special_tokens=named_tokens or {},
        **kwargs,
    )


def token_ids(tokenizer: PreTrainedTokenizerFast, tokens: Iterable[str]) -> dict[str, int]:
    """Each token's id in ``tokenizer``."""
    return {t: int(tokenizer.convert_tokens_to_ids(t)) for t in tokens}  # type: ignore[arg-type]


def save_tiny(
    out: str | Path,
    make_model: Callable[[], Any],
    processor: Any,
    seed: int,
    device: str = "cpu",
    dtype: str = "float32",
    eos_token_ids: list[int] | None = None,
) -> int:
    """Make the model with seeded random weights on ``device``, save it and ``processor`` to
    ``out`` (replaced atomically); return the parameter count.

    ``eos_token_ids`` (None: the tokenizer's EOS) are the ids generation stops at, for a
    family whose real generation config lists several.
    """
    torch.manual_seed(seed)
    with torch.device(device):
        model = make_model()
    if dtype != "float32":
        model = model.to(getattr(torch, dtype))
    tokenizer = processor.tokenizer
    model.generation_config.eos_token_id = eos_token_ids or tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    n_params = sum(p.numel() for p in model.parameters())
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    log.info("tiny %s: %d parameters, vocab %d -> %s", model.config.model_type, n_params, len(tokenizer), out)
    return int(n_params)


@dataclass(frozen=True)
class TinyTokens:
    """A family's tokenizer recipe.

    Attributes:
        special: the family's control tokens, ids 0, 1, … in this order.
        chat_template: the family's chat template (Jinja).
        eos, pad, bos: which special tokens play these roles (``bos`` None: none).
        named: extra named special tokens (``image_token`` …) the processor reads.
        stops: the tokens generation stops at, for a family whose real generation config lists
            several (empty: the tokenizer's EOS).
    """

    special: list[str]
    chat_template: str
    eos: str
    pad: str
    bos: str | None = None
    named: dict[str, str] = field(default_factory=dict)
    stops: tuple[str, ...] = ()

    def train(self, texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
        """The tokenizer trained on ``texts`` (see :func:`train_tokenizer`)."""
        return train_tokenizer(
            texts,
            vocab_size,
            self.special,
            self.chat_template,
            eos_token=self.eos,
            pad_token=self.pad,
            bos_token=self.bos,
            named_tokens=self.named,
        )


# ``parts(tok, ids, dims) -> (processor, config)``: ids are the special tokens' ids in ``tok``.
Parts = Callable[[PreTrainedTokenizerFast, dict[str, int], TinyDims], tuple[Any, PretrainedConfig]]


def tiny_builder(
    title: str, tokens: TinyTokens, model_class: Callable[[Any], Any], parts: Parts
) -> Callable[..., int]:
    """A family's ``build_tiny``: train the tokenizer, make the processor and config with
    ``parts``, then save ``model_class(config)`` with seeded random weights (:func:`save_tiny`)."""

    def build_tiny(
        out: str | Path,
        texts: Iterable[str],
        seed: int,
        dims: TinyDims,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> int:
        tok = tokens.train(texts, dims.vocab_size)
        ids = token_ids(tok, tokens.special)
        processor, config = parts(tok, ids, dims)
        stops = [ids[t] for t in tokens.stops] or None
        return save_tiny(
            out, lambda: model_class(config), processor, seed, device, dtype, eos_token_ids=stops
        )

    build_tiny.__doc__ = f"Build and save a tiny {title}; return its parameter count."
    return build_tiny


def decoder_config(
    dims: TinyDims, vocab: int, eos_token_id: int, pad_token_id: int, **extra: Any
) -> dict[str, Any]:
    """A decoder's ``text_config``: the sizes in ``dims`` (embedding: ``dims.model_vocab_size``,
    else ``vocab``), its EOS and pad ids, and the family's ``extra`` keys.

    Only the keys a family passes are set: an absent key keeps the config class's default, so
    each family's saved config is exactly what it declares.
    """
    return {
        "vocab_size": dims.model_vocab_size or vocab,
        "hidden_size": dims.hidden_size,
        "intermediate_size": dims.intermediate_size,
        "num_hidden_layers": dims.num_layers,
        "num_attention_heads": dims.num_heads,
        "num_key_value_heads": dims.num_kv_heads,
        "max_position_embeddings": dims.max_position_embeddings,
        "eos_token_id": eos_token_id,
        "pad_token_id": pad_token_id,
        **extra,
    }


def rope(dims: TinyDims, **extra: Any) -> dict[str, Any]:
    """Default rotary parameters at ``dims.rope_theta``, plus ``extra`` (``mrope_section`` …)."""
    return {"rope_type": "default", "rope_theta": dims.rope_theta, **extra}


def mrope_section(n: int) -> list[int]:
    """``n`` rotary frequencies split over (temporal, height, width) as Qwen-VL does."""
    return [n - 2 * (n // 3), n // 3, n // 3]


def vit_config(dims: TinyDims, **extra: Any) -> dict[str, Any]:
    """A ViT-style (SigLIP, InternViT …) ``vision_config`` sized by ``dims``, plus ``extra``."""
    return {
        "hidden_size": dims.vision_hidden,
        "intermediate_size": dims.vision_intermediate or dims.vision_hidden * 2,
        "num_hidden_layers": dims.vision_depth,
        "num_attention_heads": dims.vision_heads,
        **extra,
    }


def merger_vit_config(dims: TinyDims, patch: int, **extra: Any) -> dict[str, Any]:
    """A Qwen2-VL-style ``vision_config`` (2 x 2 patch merger, 2 temporal copies, output sized
    to the decoder) sized by ``dims``, plus ``extra``."""
    return {
        "depth": dims.vision_depth,
        "hidden_size": dims.vision_hidden,
        "intermediate_size": dims.vision_intermediate or dims.vision_hidden * 2,
        "num_heads": dims.vision_heads,
        "out_hidden_size": dims.hidden_size,
        "patch_size": patch,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        **extra,
    }


def merged_side(image_size: int, patch: int) -> int:
    """``image_size`` rounded down to a multiple of patch x 2 (the merger), at least one."""
    return max(2 * patch, image_size // (2 * patch) * 2 * patch)
