"""Build the embedded default's tiny Qwen2.5-VL policy offline.

The model has the real Qwen2.5-VL architecture (vision tower with window attention,
patch merger, M-RoPE decoder) at a few hundred thousand parameters; the tokenizer is a
byte-level BPE trained locally on the fixtures' text, with Qwen's chat special tokens
and ``<think>``/``</think>``. The saved folder loads with ``from_pretrained``, and the
same seed and text give byte-identical files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from safervlm.io import atomic_path
from safervlm.models.processor import ImageOnlyQwenVLProcessor

log = logging.getLogger(__name__)

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Added as ordinary (non-special) tokens: decoding with skip_special_tokens=True, as TRL
# does for rollouts, must keep the reasoning tags.
REASONING_TOKENS = ["<think>", "</think>"]
DEFAULT_SYSTEM = "You are a helpful assistant."

# Qwen2-VL's chat format: a default system turn, images as vision_start/pad/end.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinyDims:
    """Sizes of the model (defaults: the embedded default's ~0.5M parameters).

    ``vocab_size`` is the tokenizer's BPE vocabulary; ``model_vocab_size`` (None: the
    tokenizer's length) sizes the embedding, so a real model's shape can be built on the
    small local tokenizer (ids past the tokenizer decode to nothing).
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


# Qwen2.5-VL-3B-Instruct's published config (3.75B parameters), for random-weight benchmarks.
QWEN25_VL_3B = TinyDims(
    hidden_size=2048,
    intermediate_size=11008,
    num_layers=36,
    num_heads=16,
    num_kv_heads=2,
    vision_depth=32,
    vision_hidden=1280,
    image_size=448,
    model_vocab_size=151936,
    vision_intermediate=3420,
    vision_heads=16,
    window_size=112,
    fullatt_block_indexes=(7, 15, 23, 31),
    rope_theta=1000000.0,
    mrope_section=(16, 24, 24),
    max_position_embeddings=128000,
)
SHAPES = {"tiny": TinyDims(), "qwen2.5-vl-3b": QWEN25_VL_3B}


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer with Qwen's special tokens on ``texts``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sorted(set(texts)), trainer)  # sorted: order-independent merges
    tok.add_tokens(REASONING_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )


def tiny_config(tokenizer: PreTrainedTokenizerFast, dims: TinyDims) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config sized by ``dims`` whose special ids match ``tokenizer``."""
    ids: dict[str, int] = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}  # type: ignore[misc]
    head_dim = dims.hidden_size // dims.num_heads
    half = head_dim // 2  # M-RoPE splits half the head dim into (temporal, height, width)
    mrope = list(dims.mrope_section or (half - 2 * (half // 3), half // 3, half // 3))
    common: dict[str, Any] = {
        "bos_token_id": None,
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    text = {
        "vocab_size": dims.model_vocab_size or len(tokenizer),
        "hidden_size": dims.hidden_size,
        "intermediate_size": dims.intermediate_size,
        "num_hidden_layers": dims.num_layers,
        "num_attention_heads": dims.num_heads,
        "num_key_value_heads": dims.num_kv_heads,
        "max_position_embeddings": dims.max_position_embeddings,
        "rope_parameters": {"rope_type": "default", "rope_theta": dims.rope_theta, "mrope_section": mrope},
        "tie_word_embeddings": True,
        **common,
    }
    vision = {
        "depth": dims.vision_depth,
        "hidden_size": dims.vision_hidden,
        "intermediate_size": dims.vision_intermediate or dims.vision_hidden * 2,
        "num_heads": dims.vision_heads,
        "out_hidden_size": dims.hidden_size,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": dims.window_size,
        "fullatt_block_indexes": list(dims.fullatt_block_indexes or [dims.vision_depth - 1]),
    }
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        **common,
    )


def build_tiny_model(
    out: str | Path,
    texts: Iterable[str],
    seed: int = 0,
    dims: TinyDims | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> int:
    """Build, save and return the parameter count of the tiny policy at ``out``.

    Args:
        out: folder to write (replaced atomically).
        texts: corpus for the tokenizer (the fixtures' questions and responses).
        seed: weight-init seed; the same seed and texts give identical files.
        dims: model sizes.
        device, dtype: where and in which dtype the random weights are made and saved (a
            GPU makes a billion-parameter shape in seconds; the embedded default: CPU, fp32).
    """
    dims = dims or TinyDims()
    tokenizer = train_tokenizer(texts, dims.vocab_size)
    pixels = dims.image_size * dims.image_size
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=pixels, max_pixels=pixels, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    processor = ImageOnlyQwenVLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(tiny_config(tokenizer, dims))
    if dtype != "float32":
        model = model.to(getattr(torch, dtype))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    n_params = sum(p.numel() for p in model.parameters())
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    log.info("tiny policy: %d parameters, vocab %d -> %s", n_params, len(tokenizer), out)
    return n_params
