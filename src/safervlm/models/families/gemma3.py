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

from collections.abc import Iterable
from pathlib import Path

from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

from safervlm.models.families.base import Family
from safervlm.models.families.tiny import TinyDims, save_tiny, token_ids, train_tokenizer

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


def build_tiny(
    out: str | Path,
    texts: Iterable[str],
    seed: int,
    dims: TinyDims,
    device: str = "cpu",
    dtype: str = "float32",
) -> int:
    """Build and save a tiny Gemma 3; return its parameter count."""
    tok = train_tokenizer(
        texts,
        dims.vocab_size,
        SPECIAL_TOKENS,
        CHAT_TEMPLATE,
        eos_token="<end_of_turn>",
        pad_token="<pad>",
        bos_token="<bos>",
        named_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )
    ids = token_ids(tok, SPECIAL_TOKENS)
    side = dims.image_size
    patch = side // 4  # 4 x 4 patches, pooled to 2 x 2 soft tokens
    image_processor = Gemma3ImageProcessorPil(size={"height": side, "width": side})
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
        image_seq_length=MM_TOKENS,
    )
    head_dim = dims.hidden_size // dims.num_heads
    config = Gemma3Config(
        text_config={
            "vocab_size": dims.model_vocab_size or len(tok),
            "hidden_size": dims.hidden_size,
            "intermediate_size": dims.intermediate_size,
            "num_hidden_layers": dims.num_layers,
            "num_attention_heads": dims.num_heads,
            "num_key_value_heads": dims.num_kv_heads,
            "head_dim": head_dim,
            "query_pre_attn_scalar": head_dim,
            "sliding_window": 256,
            "max_position_embeddings": dims.max_position_embeddings,
            "bos_token_id": ids["<bos>"],
            "eos_token_id": ids["<end_of_turn>"],
            "pad_token_id": ids["<pad>"],
        },
        vision_config={
            "hidden_size": dims.vision_hidden,
            "intermediate_size": dims.vision_intermediate or dims.vision_hidden * 2,
            "num_hidden_layers": dims.vision_depth,
            "num_attention_heads": dims.vision_heads,
            "image_size": side,
            "patch_size": patch,
        },
        mm_tokens_per_image=MM_TOKENS,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
        tie_word_embeddings=True,
    )
    return save_tiny(out, lambda: Gemma3ForConditionalGeneration(config), processor, seed, device, dtype)


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
