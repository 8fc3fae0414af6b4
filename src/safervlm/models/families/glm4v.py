"""GLM-4.1V (``glm4v``: GLM-4.1V-9B-Base / -Thinking): Qwen2-VL-style vision tower (14-pixel
patches, 2 x 2 merge), GLM-4 decoder with 3D rotary positions (M-RoPE) on half of each head.

* Processor: the stock one needs a video processor (torchvision);
  :class:`ImageOnlyGlm4vProcessor` keeps the PIL image processor and the tokenizer.
* Chat template: ``[gMASK]<sop>`` once, then ``<|system|>\\n…``, ``<|user|>\\n…`` and
  ``<|assistant|>\\n…`` turns with no end-of-turn token: a turn ends where the next role
  token starts (the real generation config stops at ``<|user|>``, ``<|observation|>`` and
  ``<|endoftext|>``). The image is ``<|begin_of_image|><|image|><|end_of_image|>`` where the
  content list puts it; the processor expands ``<|image|>`` to one token per merged patch.
  Without an end-of-turn token, SFT completions teach no stop token and
  ``critique_and_correction: one_continuation`` refuses the template (use ``two_passes``).
* Reasoning: GLM-4.1V-Thinking writes ``<think>…</think><answer>…</answer>``
  (:data:`REASONING`, :data:`ANSWER`).
* LoRA: the decoder's MLP is fused (``gate_up_proj``, ``down_proj``).
"""

from __future__ import annotations

from typing import Any

from transformers import Glm4vConfig, Glm4vForConditionalGeneration
from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil
from transformers.models.glm4v.processing_glm4v import Glm4vProcessor

from safervlm.models.families.base import THINK, Family, NoVideoProcessor
from safervlm.models.families.tiny import (
    TinyDims,
    TinyTokens,
    decoder_config,
    merged_side,
    merger_vit_config,
    mrope_section,
    rope,
    tiny_builder,
)

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "[gMASK]",
    "<sop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
    "<|image|>",
    "<|video|>",
]
PATCH = 14
REASONING = THINK
ANSWER = ("<answer>", "</answer>")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj")

# GLM-4.1V's format (its chat_template.jinja, whitespace resolved): no end-of-turn token.
CHAT_TEMPLATE = (
    "[gMASK]<sop>"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}<|assistant|>\n"
    "{% elif message['role'] == 'system' %}<|system|>\n"
    "{% else %}<|user|>\n{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|begin_of_image|><|image|><|end_of_image|>"
    "{% elif content['type'] == 'video' %}<|begin_of_video|><|video|><|end_of_video|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


class ImageOnlyGlm4vProcessor(NoVideoProcessor, Glm4vProcessor):
    """GLM-4.1V processor without the video processor (no torchvision needed)."""


TOKENS = TinyTokens(
    SPECIAL_TOKENS,
    CHAT_TEMPLATE,
    eos="<|endoftext|>",
    pad="<|endoftext|>",
    named={"image_token": "<|image|>", "video_token": "<|video|>"},
    # As the real generation config: a reply ends at EOS or where the next turn would start.
    stops=("<|endoftext|>", "<|user|>", "<|observation|>"),
)


def _parts(tok: Any, ids: dict[str, int], dims: TinyDims) -> tuple[Any, Glm4vConfig]:
    side = merged_side(dims.image_size, PATCH)
    # Its defaults: 14-pixel patches, 2 x 2 merge, 2 temporal copies (counted in the pixel bounds).
    image_processor = Glm4vImageProcessorPil(
        size={"shortest_edge": 2 * side * side, "longest_edge": 2 * side * side}
    )
    processor = ImageOnlyGlm4vProcessor(
        image_processor=image_processor, tokenizer=tok, chat_template=CHAT_TEMPLATE
    )
    quarter = dims.hidden_size // dims.num_heads // 4  # rotary on half the head: (t, h, w) split
    config = Glm4vConfig(
        text_config=decoder_config(
            dims,
            len(tok),
            ids["<|endoftext|>"],
            ids["<|endoftext|>"],
            rope_parameters=rope(dims, partial_rotary_factor=0.5, mrope_section=mrope_section(quarter)),
        ),
        vision_config=merger_vit_config(dims, PATCH, image_size=side),
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"],
        image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"],
        video_end_token_id=ids["<|end_of_video|>"],
        tie_word_embeddings=True,
    )
    return processor, config


build_tiny = tiny_builder("GLM-4.1V", TOKENS, Glm4vForConditionalGeneration, _parts)


FAMILY = Family(
    name="glm4v",
    model_types=("glm4v",),
    image_only=ImageOnlyGlm4vProcessor,
    reasoning=REASONING,
    system_role=True,
    image_position="where the content list puts it (our prompts: before the text)",
    preload=(
        "transformers.models.glm4v.modeling_glm4v",
        "transformers.models.glm4v.processing_glm4v",
        "transformers.models.glm4v.image_processing_pil_glm4v",
    ),
    build_tiny=build_tiny,
    lora_targets=LORA_TARGETS,
    answer=ANSWER,
)
