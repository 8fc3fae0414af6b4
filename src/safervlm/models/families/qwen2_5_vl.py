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
from safervlm.models.families.tiny import TinyDims, save_tiny, token_ids, train_tokenizer

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


def tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer with Qwen's special tokens, trained on ``texts``."""
    return train_tokenizer(
        texts,
        vocab_size,
        SPECIAL_TOKENS,
        CHAT_TEMPLATE,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        named_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )


def tiny_config(tok: Any, dims: TinyDims) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config sized by ``dims`` whose special ids match ``tok``."""
    ids = token_ids(tok, SPECIAL_TOKENS)
    head_dim = dims.hidden_size // dims.num_heads
    half = head_dim // 2  # M-RoPE splits half the head dim into (temporal, height, width)
    mrope = list(dims.mrope_section or (half - 2 * (half // 3), half // 3, half // 3))
    common: dict[str, Any] = {
        "bos_token_id": None,
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    text = {
        "vocab_size": dims.model_vocab_size or len(tok),
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


def build_tiny(
    out: str | Path,
    texts: Iterable[str],
    seed: int,
    dims: TinyDims,
    device: str = "cpu",
    dtype: str = "float32",
) -> int:
    """Build and save the tiny Qwen2.5-VL; return its parameter count."""
    tok = tokenizer(texts, dims.vocab_size)
    pixels = dims.image_size * dims.image_size
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=pixels, max_pixels=pixels, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    processor = ImageOnlyQwenVLProcessor(
        image_processor=image_processor, tokenizer=tok, chat_template=CHAT_TEMPLATE
    )
    config = tiny_config(tok, dims)
    return save_tiny(out, lambda: Qwen2_5_VLForConditionalGeneration(config), processor, seed, device, dtype)


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
