"""Gemma 3 (``gemma3``): SigLIP vision tower, Gemma 3 decoder (sliding/global attention).

* Processor: the stock :class:`~transformers.Gemma3Processor` has no video processor, so it
  loads without torchvision (``AutoProcessor`` picks the PIL image processor).
* Chat template: ``<bos><start_of_turn>user … <end_of_turn>`` turns, the assistant is
  ``model``; there is no system role: a system turn's text is put at the start of the first
  user turn. The image is ``<start_of_image>`` where the content list puts it; the processor
  expands it to ``mm_tokens_per_image`` soft tokens between blank lines.
* Reasoning: none of its own (the instruct models answer directly); the tiny model adds
  ``<think>``/``</think>`` to its vocabulary so the embedded world's format works.
"""

from __future__ import annotations

from typing import Any

from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

from safervlm.models.families.base import Family
from safervlm.models.families.tiny import TinyDims, TinyTokens, decoder_config, tiny_builder, vit_config

SPECIAL_TOKENS = [
    "<pad>",
    "<eos>",
    "<bos>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
]
MM_TOKENS = 4  # soft tokens per image (2 x 2 after the projector's pooling)

# Gemma 3's format: no system role (its text opens the first user turn), the assistant is "model".
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set first = (messages[0]['content'] if messages[0]['content'] is string "
    "else messages[0]['content'][0]['text']) + '\n\n' %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ first if loop.first else '' }}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<start_of_image>"
    "{% elif content['type'] == 'text' %}{{ content['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


TOKENS = TinyTokens(
    SPECIAL_TOKENS,
    CHAT_TEMPLATE,
    eos="<end_of_turn>",
    pad="<pad>",
    bos="<bos>",
    named={
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
        "image_token": "<image_soft_token>",
    },
)


def _parts(tok: Any, ids: dict[str, int], dims: TinyDims) -> tuple[Any, Gemma3Config]:
    side = dims.image_size
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": side, "width": side}),
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
        image_seq_length=MM_TOKENS,
    )
    head_dim = dims.hidden_size // dims.num_heads
    config = Gemma3Config(
        text_config=decoder_config(
            dims,
            len(tok),
            ids["<end_of_turn>"],
            ids["<pad>"],
            bos_token_id=ids["<bos>"],
            head_dim=head_dim,
            query_pre_attn_scalar=head_dim,
            sliding_window=256,
        ),
        # 4 x 4 patches, pooled to 2 x 2 soft tokens
        vision_config=vit_config(dims, image_size=side, patch_size=side // 4),
        mm_tokens_per_image=MM_TOKENS,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
        tie_word_embeddings=True,
    )
    return processor, config


build_tiny = tiny_builder("Gemma 3", TOKENS, Gemma3ForConditionalGeneration, _parts)


FAMILY = Family(
    name="gemma3",
    model_types=("gemma3",),
    image_only=None,
    reasoning=None,
    system_role=False,
    image_position="where the content list puts it (our prompts: before the text)",
    preload=(
        "transformers.models.gemma3.modeling_gemma3",
        "transformers.models.gemma3.processing_gemma3",
        "transformers.models.gemma3.image_processing_pil_gemma3",
    ),
    build_tiny=build_tiny,
)
