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

from collections.abc import Iterable
from pathlib import Path

from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

from safervlm.models.families.base import Family
from safervlm.models.families.tiny import TinyDims, save_tiny, token_ids, train_tokenizer

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


def build_tiny(
    out: str | Path,
    texts: Iterable[str],
    seed: int,
    dims: TinyDims,
    device: str = "cpu",
    dtype: str = "float32",
) -> int:
    """Build and save a tiny Idefics3; return its parameter count."""
    tok = train_tokenizer(
        texts,
        dims.vocab_size,
        SPECIAL_TOKENS,
        CHAT_TEMPLATE,
        eos_token="<end_of_utterance>",
        pad_token="<|end_of_text|>",
        bos_token="<|begin_of_text|>",
    )
    ids = token_ids(tok, SPECIAL_TOKENS)
    side = dims.image_size
    patch = side // 4  # 4 x 4 patches, pixel-shuffled to 2 x 2 image tokens
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": side}, max_image_size={"longest_edge": side}, do_image_splitting=False
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_len=(side // patch) ** 2 // SCALE**2,
        chat_template=CHAT_TEMPLATE,
    )
    config = Idefics3Config(
        text_config={
            "model_type": "llama",
            "vocab_size": dims.model_vocab_size or len(tok),
            "hidden_size": dims.hidden_size,
            "intermediate_size": dims.intermediate_size,
            "num_hidden_layers": dims.num_layers,
            "num_attention_heads": dims.num_heads,
            "num_key_value_heads": dims.num_kv_heads,
            "max_position_embeddings": dims.max_position_embeddings,
            "rope_parameters": {"rope_type": "default", "rope_theta": dims.rope_theta},
            "bos_token_id": ids["<|begin_of_text|>"],
            "eos_token_id": ids["<end_of_utterance>"],
            "pad_token_id": ids["<|end_of_text|>"],
            "tie_word_embeddings": True,
        },
        vision_config={
            "hidden_size": dims.vision_hidden,
            "intermediate_size": dims.vision_intermediate or dims.vision_hidden * 2,
            "num_hidden_layers": dims.vision_depth,
            "num_attention_heads": dims.vision_heads,
            "image_size": side,
            "patch_size": patch,
        },
        scale_factor=SCALE,
        image_token_id=ids["<image>"],
        tie_word_embeddings=True,
    )
    stops = [ids["<end_of_utterance>"], ids["<|end_of_text|>"]]
    return save_tiny(
        out,
        lambda: Idefics3ForConditionalGeneration(config),
        processor,
        seed,
        device,
        dtype,
        eos_token_ids=stops,
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
