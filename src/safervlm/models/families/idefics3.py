"""Idefics3 (``idefics3``: Idefics3-8B-Llama3): SigLIP vision tower, pixel-shuffle connector,
Llama 3 decoder; SmolVLM's parent architecture (:mod:`~safervlm.models.families.smolvlm`).

* Processor: the stock :class:`~transformers.Idefics3Processor` has no video processor, so it
  loads without torchvision (``AutoProcessor`` picks the PIL image processor).
* Chat template: ``<|begin_of_text|>`` once, then ``Role: text<end_of_utterance>`` lines with
  capitalised roles (SmolVLM's format); a system turn renders as ``System:``; the image is
  ``<image>`` where the content list puts it, expanded by the processor to
  ``<fake_token_around_image><global-img>`` + the image's tokens (tiling off in the tiny
  model; the real one adds ``<row_i_col_j>`` tiles). The generation prompt is ``Assistant:``.
* Reasoning: none of its own; the tiny model knows ``<think>``/``</think>``.
"""

from __future__ import annotations

from typing import Any

from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

from safervlm.models.families.base import Family
from safervlm.models.families.tiny import (
    Parts,
    TinyDims,
    TinyTokens,
    decoder_config,
    rope,
    tiny_builder,
    vit_config,
)

SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<global-img>",
    "<image>",
]
SCALE = 2  # pixel-shuffle factor of the connector

CHAT_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}: {{ message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<image>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


TOKENS = TinyTokens(
    SPECIAL_TOKENS,
    CHAT_TEMPLATE,
    eos="<end_of_utterance>",
    pad="<|end_of_text|>",
    bos="<|begin_of_text|>",
    stops=("<end_of_utterance>", "<|end_of_text|>"),
)


def idefics_parts(
    tokens: TinyTokens, image_processor_class: type, processor_class: type, config_class: type
) -> Parts:
    """The tiny model's ``parts`` for Idefics3 and its descendants (SmolVLM): 4 x 4 patches,
    pixel-shuffled to 2 x 2 image tokens, no tiling, a Llama decoder."""

    def parts(tok: Any, ids: dict[str, int], dims: TinyDims) -> tuple[Any, Any]:
        side = dims.image_size
        patch = side // 4
        image_processor = image_processor_class(
            size={"longest_edge": side}, max_image_size={"longest_edge": side}, do_image_splitting=False
        )
        processor = processor_class(
            image_processor=image_processor,
            tokenizer=tok,
            image_seq_len=(side // patch) ** 2 // SCALE**2,
            chat_template=tokens.chat_template,
        )
        config = config_class(
            text_config=decoder_config(
                dims,
                len(tok),
                ids[tokens.eos],
                ids[tokens.pad],
                model_type="llama",
                rope_parameters=rope(dims),
                bos_token_id=ids[tokens.bos] if tokens.bos else None,
                tie_word_embeddings=True,
            ),
            vision_config=vit_config(dims, image_size=side, patch_size=patch),
            scale_factor=SCALE,
            image_token_id=ids["<image>"],
            tie_word_embeddings=True,
        )
        return processor, config

    return parts


build_tiny = tiny_builder(
    "Idefics3",
    TOKENS,
    Idefics3ForConditionalGeneration,
    idefics_parts(TOKENS, Idefics3ImageProcessorPil, Idefics3Processor, Idefics3Config),
)


FAMILY = Family(
    name="idefics3",
    model_types=("idefics3",),
    image_only=None,
    reasoning=None,
    system_role=True,
    image_position="where the content list puts it (our prompts: before the text)",
    preload=(
        "transformers.models.idefics3.modeling_idefics3",
        "transformers.models.idefics3.processing_idefics3",
        "transformers.models.idefics3.image_processing_pil_idefics3",
    ),
    build_tiny=build_tiny,
)
