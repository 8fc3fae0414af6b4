"""InternVL (``internvl``: the transformers-format InternVL3 / InternVL3.5 ``-hf`` checkpoints):
InternViT vision tower, pixel-shuffle MLP projector, Qwen2 (or Qwen3) decoder.

* Processor: the stock one needs a video processor (torchvision);
  :class:`ImageOnlyInternVLProcessor` keeps the PIL image processor (GOT-OCR2's, which tiles
  an image into up to ``max_patches`` crops plus a thumbnail) and the tokenizer.
* Chat template: Qwen's ``<|im_start|>role … <|im_end|>`` turns with a system role (the
  ``-hf`` template adds no default system turn); the image is ``<IMG_CONTEXT>`` plus a newline
  where the content list puts it, which the processor expands to
  ``<img>`` + ``image_seq_length`` x crops ``<IMG_CONTEXT>`` + ``</img>``.
* Reasoning: ``<think>…</think>`` in InternVL3.5's thinking mode (switched on by its system
  prompt); otherwise the whole response is the answer.
"""

from __future__ import annotations

from typing import Any

from transformers import InternVLConfig, InternVLForConditionalGeneration
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil
from transformers.models.internvl.processing_internvl import InternVLProcessor

from safervlm.models.families.base import THINK, Family
from safervlm.models.families.tiny import TinyDims, TinyTokens, decoder_config, rope, tiny_builder, vit_config

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<video>",
]
PATCH = 14  # InternViT's patch size
DOWNSAMPLE = 0.5  # the projector's pixel shuffle: 2 x 2 patches per token
MAX_CROPS = 2  # the tiny model's tiling (the real one: up to 12 crops of 448 pixels)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif content['type'] == 'video' %}<video>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ImageOnlyInternVLProcessor(InternVLProcessor):
    """InternVL processor without the video processor (no torchvision needed).

    transformers reads a processor's parts and saved settings from its ``__init__``
    signature: the stock one's without ``video_processor`` (the stock ``__init__`` gets None).
    """

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        image_seq_length: int = 256,
        chat_template: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_processor, tokenizer, None, image_seq_length, chat_template, **kwargs)


TOKENS = TinyTokens(
    SPECIAL_TOKENS,
    CHAT_TEMPLATE,
    eos="<|im_end|>",
    pad="<|endoftext|>",
    named={
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    },
)


def _parts(tok: Any, ids: dict[str, int], dims: TinyDims) -> tuple[Any, InternVLConfig]:
    side = dims.image_size
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": side, "width": side}, crop_to_patches=True, max_patches=MAX_CROPS
    )
    processor = ImageOnlyInternVLProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_length=int((side // PATCH) ** 2 * DOWNSAMPLE**2),
        chat_template=CHAT_TEMPLATE,
    )
    config = InternVLConfig(
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
        vision_config=vit_config(dims, image_size=side, patch_size=PATCH),
        image_token_id=ids["<IMG_CONTEXT>"],
        image_seq_length=processor.image_seq_length,
        downsample_ratio=DOWNSAMPLE,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=True,
    )
    return processor, config


build_tiny = tiny_builder("InternVL", TOKENS, InternVLForConditionalGeneration, _parts)


FAMILY = Family(
    name="internvl",
    model_types=("internvl",),
    image_only=ImageOnlyInternVLProcessor,
    reasoning=THINK,
    system_role=True,
    image_position="where the content list puts it, then a newline (our prompts: before the text)",
    preload=(
        "transformers.models.internvl.modeling_internvl",
        "transformers.models.internvl.processing_internvl",
        "transformers.models.got_ocr2.image_processing_pil_got_ocr2",
    ),
    build_tiny=build_tiny,
)
