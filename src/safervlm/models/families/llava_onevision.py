"""LLaVA-OneVision (``llava_onevision``): SigLIP vision tower, Qwen2 decoder, AnyRes tiling.

* Processor: the stock one needs a video processor (torchvision);
  :class:`ImageOnlyLlavaOnevisionProcessor` keeps the PIL image processor and the tokenizer.
* Chat template: Qwen's ``<|im_start|>role … <|im_end|>`` turns with a system role (no default
  system turn); the image is ``<image>`` (followed by a newline) where the content list puts
  it; the processor expands it to the base view's tokens plus the tiles' tokens.
* Reasoning: none of its own; the tiny model knows ``<think>``/``</think>``.
"""

from __future__ import annotations

from typing import Any

from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
    LlavaOnevisionImageProcessorPil,
)
from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor

from safervlm.models.families.base import Family
from safervlm.models.families.tiny import TinyDims, TinyTokens, decoder_config, rope, tiny_builder, vit_config

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<image>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ImageOnlyLlavaOnevisionProcessor(LlavaOnevisionProcessor):
    """LLaVA-OneVision processor without the video processor (no torchvision needed).

    transformers reads a processor's parts and saved settings from its ``__init__``
    signature: the stock one's without ``video_processor`` (the stock ``__init__`` gets None).
    """

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        num_image_tokens: int | None = None,
        vision_feature_select_strategy: str | None = None,
        chat_template: Any = None,
        image_token: str = "<image>",
        video_token: str = "<video>",
        vision_aspect_ratio: str = "anyres_max_9",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            image_processor,
            tokenizer,
            None,
            num_image_tokens=num_image_tokens,
            vision_feature_select_strategy=vision_feature_select_strategy,
            chat_template=chat_template,
            image_token=image_token,
            video_token=video_token,
            vision_aspect_ratio=vision_aspect_ratio,
            **kwargs,
        )


TOKENS = TinyTokens(
    SPECIAL_TOKENS,
    CHAT_TEMPLATE,
    eos="<|im_end|>",
    pad="<|endoftext|>",
    named={"image_token": "<image>", "video_token": "<video>"},
)


def _parts(tok: Any, ids: dict[str, int], dims: TinyDims) -> tuple[Any, LlavaOnevisionConfig]:
    side = dims.image_size
    patch = side // 4  # 4 x 4 patches: 16 tokens per view
    grid = [[side, side]]  # one tile: the base view plus one tile per image
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": side, "width": side}, image_grid_pinpoints=grid, do_pad=True
    )
    processor = ImageOnlyLlavaOnevisionProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
        num_image_tokens=(side // patch) ** 2,
        vision_feature_select_strategy="full",
    )
    config = LlavaOnevisionConfig(
        text_config=decoder_config(
            dims,
            len(tok),
            ids["<|im_end|>"],
            ids["<|endoftext|>"],
            model_type="qwen2",
            rope_parameters=rope(dims),
            bos_token_id=None,
            tie_word_embeddings=True,
        ),
        vision_config=vit_config(dims, model_type="siglip_vision_model", image_size=side, patch_size=patch),
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=grid,
        tie_word_embeddings=True,
    )
    return processor, config


build_tiny = tiny_builder("LLaVA-OneVision", TOKENS, LlavaOnevisionForConditionalGeneration, _parts)


FAMILY = Family(
    name="llava_onevision",
    model_types=("llava_onevision",),
    image_only=ImageOnlyLlavaOnevisionProcessor,
    reasoning=None,
    system_role=True,
    image_position="where the content list puts it, then a newline (our prompts: before the text)",
    preload=(
        "transformers.models.llava_onevision.modeling_llava_onevision",
        "transformers.models.llava_onevision.processing_llava_onevision",
        "transformers.models.llava_onevision.image_processing_pil_llava_onevision",
    ),
    build_tiny=build_tiny,
)
