"""Qwen2.5-VL (``qwen2_5_vl``; also Qwen2-VL's ``qwen2_vl`` folders): the paper's policy family.

* Processor: the stock one also builds a video processor (torchvision);
  :class:`ImageOnlyQwenVLProcessor` keeps the PIL image processor and the tokenizer.
  ``AutoProcessor`` on a folder saved with it silently returns just the tokenizer, so callers
  use :func:`safervlm.models.load_processor` and pass the result as ``processing_class``.
* Chat template: a default system turn (``You are a helpful assistant.``) when none is
  given; the image is ``<|vision_start|><|image_pad|><|vision_end|>`` where the content list
  puts it (before the text in our prompts).
* Reasoning: ``<think>…</think>`` (the SaFeR-VLM policies' format).
* Tiny model: the real architecture (vision tower with window attention, patch merger,
  M-RoPE decoder) at ~0.5M parameters; :data:`SHAPES` also holds Qwen2.5-VL-3B's published
  shape for random-weight benchmarks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.processing_utils import ProcessorMixin

from safervlm.models.families.base import THINK, Family, has_torchvision, saved_processor_class
from safervlm.models.families.tiny import (
    TinyDims,
    TinyTokens,
    decoder_config,
    merger_vit_config,
    mrope_section,
    rope,
    tiny_builder,
    token_ids,
)

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
DEFAULT_SYSTEM = "You are a helpful assistant."
PATCH = 14

# Qwen's turns: the rest of the template after "{% for message in messages %}" (and any
# preamble there); images as vision_start/pad/end.
TURNS = (
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen2-VL's chat format: a default system turn, then the turns.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n{% endif %}" + TURNS
)

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


class ImageOnlyQwenVLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor without the video processor (no torchvision needed)."""

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any
    ):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        # Skip Qwen2_5_VLProcessor.__init__: it insists on a video processor.
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)


def load_processor(path: Path) -> Any:
    """The image-only processor for folders saved with it and for any Qwen2-VL-family folder
    when torchvision is absent; otherwise ``AutoProcessor``."""
    if saved_processor_class(path) != ImageOnlyQwenVLProcessor.__name__:
        if has_torchvision():
            return AutoProcessor.from_pretrained(path)
        log.info("torchvision absent: loading %s with the image-only processor", path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(path)
    return ImageOnlyQwenVLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )


TOKENS = TinyTokens(
    SPECIAL_TOKENS,
    CHAT_TEMPLATE,
    eos="<|im_end|>",
    pad="<|endoftext|>",
    named={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
)


def tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer with Qwen's special tokens, trained on ``texts``."""
    return TOKENS.train(texts, vocab_size)


def vision_token_ids(ids: dict[str, int]) -> dict[str, Any]:
    """The config's image/video token ids (Qwen2-VL's and Qwen3-VL's names)."""
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def image_processor(side: int, patch: int) -> Qwen2VLImageProcessorPil:
    """Qwen2-VL's PIL image processor resizing every image to ``side`` x ``side`` pixels."""
    pixels = side * side
    return Qwen2VLImageProcessorPil(
        min_pixels=pixels, max_pixels=pixels, patch_size=patch, merge_size=2, temporal_patch_size=2
    )


def tiny_config(tok: Any, dims: TinyDims) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config sized by ``dims`` whose special ids match ``tok``."""
    ids = token_ids(tok, SPECIAL_TOKENS)
    half = dims.hidden_size // dims.num_heads // 2  # M-RoPE splits half the head dim into (t, h, w)
    mrope = list(dims.mrope_section or mrope_section(half))
    common: dict[str, Any] = {
        "bos_token_id": None,
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    text = decoder_config(
        dims, len(tok), **common, rope_parameters=rope(dims, mrope_section=mrope), tie_word_embeddings=True
    )
    vision = merger_vit_config(
        dims,
        PATCH,
        window_size=dims.window_size,
        fullatt_block_indexes=list(dims.fullatt_block_indexes or [dims.vision_depth - 1]),
    )
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, **vision_token_ids(ids), tie_word_embeddings=True, **common
    )


def _parts(tok: Any, ids: dict[str, int], dims: TinyDims) -> tuple[Any, Qwen2_5_VLConfig]:
    processor = ImageOnlyQwenVLProcessor(
        image_processor=image_processor(dims.image_size, PATCH), tokenizer=tok, chat_template=CHAT_TEMPLATE
    )
    return processor, tiny_config(tok, dims)


build_tiny = tiny_builder("Qwen2.5-VL", TOKENS, Qwen2_5_VLForConditionalGeneration, _parts)


FAMILY = Family(
    name="qwen2_5_vl",
    model_types=("qwen2_5_vl", "qwen2_vl"),
    image_only=ImageOnlyQwenVLProcessor,
    reasoning=THINK,
    system_role=True,
    image_position="where the content list puts it (our prompts: before the text)",
    preload=(
        "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl",
        "transformers.models.qwen2_5_vl.processing_qwen2_5_vl",
        "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl",
    ),
    build_tiny=build_tiny,
    load_processor=load_processor,
)
