"""Qwen3-VL (``qwen3_vl``).

* Processor: the stock one needs a video processor (torchvision);
  :class:`ImageOnlyQwen3VLProcessor` keeps the PIL image processor (Qwen2-VL's, 16-pixel
  patches) and the tokenizer.
* Chat template: Qwen's ``<|im_start|>role … <|im_end|>`` turns, no default system turn (a
  given system turn is rendered); the image is ``<|vision_start|><|image_pad|><|vision_end|>``
  where the content list puts it (our prompts: before the text).
* Reasoning: ``<think>…</think>`` (the Thinking models; their real template also opens the
  reply with ``<think>``, which the response split tolerates missing).
* Tiny model: the real architecture (16-pixel patches, DeepStack features, interleaved M-RoPE).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

from safervlm.models.families import qwen2_5_vl
from safervlm.models.families.base import THINK, Family, NoVideoProcessor
from safervlm.models.families.tiny import (
    TinyDims,
    decoder_config,
    merged_side,
    merger_vit_config,
    mrope_section,
    rope,
    tiny_builder,
)

PATCH = 16

# Qwen2.5-VL's format without its default system turn.
CHAT_TEMPLATE = "{% for message in messages %}" + qwen2_5_vl.TURNS
# Qwen2.5-VL's tokens.
TOKENS = replace(qwen2_5_vl.TOKENS, chat_template=CHAT_TEMPLATE)
SPECIAL_TOKENS = TOKENS.special


class ImageOnlyQwen3VLProcessor(NoVideoProcessor, Qwen3VLProcessor):
    """Qwen3-VL processor without the video processor (no torchvision needed)."""


def _parts(tok: Any, ids: dict[str, int], dims: TinyDims) -> tuple[Any, Qwen3VLConfig]:
    side = merged_side(dims.image_size, PATCH)
    processor = ImageOnlyQwen3VLProcessor(
        image_processor=qwen2_5_vl.image_processor(side, PATCH), tokenizer=tok, chat_template=CHAT_TEMPLATE
    )
    head_dim = dims.hidden_size // dims.num_heads
    config = Qwen3VLConfig(
        text_config=decoder_config(
            dims,
            len(tok),
            ids["<|im_end|>"],
            ids["<|endoftext|>"],
            head_dim=head_dim,
            rope_parameters=rope(dims, mrope_section=mrope_section(head_dim // 2), mrope_interleaved=True),
            tie_word_embeddings=True,
        ),
        vision_config=merger_vit_config(
            dims, PATCH, num_position_embeddings=(side // PATCH) ** 2, deepstack_visual_indexes=[0]
        ),
        **qwen2_5_vl.vision_token_ids(ids),
        tie_word_embeddings=True,
    )
    return processor, config


build_tiny = tiny_builder("Qwen3-VL", TOKENS, Qwen3VLForConditionalGeneration, _parts)


FAMILY = Family(
    name="qwen3_vl",
    model_types=("qwen3_vl",),
    image_only=ImageOnlyQwen3VLProcessor,
    reasoning=THINK,
    system_role=True,
    image_position="where the content list puts it (our prompts: before the text)",
    preload=(
        "transformers.models.qwen3_vl.modeling_qwen3_vl",
        "transformers.models.qwen3_vl.processing_qwen3_vl",
        "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl",
    ),
    build_tiny=build_tiny,
)
