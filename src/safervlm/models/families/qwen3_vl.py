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

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

from safervlm.models.families.base import THINK, Family
from safervlm.models.families.tiny import TinyDims, save_tiny, token_ids, train_tokenizer

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
PATCH = 16

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
    """Qwen3-VL processor without the video processor (no torchvision needed).

    transformers reads a processor's parts from its ``__init__`` signature: this one has no
    ``video_processor``, and the stock ``__init__`` gets None for it (and drops it).
    """

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


def build_tiny(
    out: str | Path,
    texts: Iterable[str],
    seed: int,
    dims: TinyDims,
    device: str = "cpu",
    dtype: str = "float32",
) -> int:
    """Build and save a tiny Qwen3-VL; return its parameter count."""
    tok = train_tokenizer(
        texts,
        dims.vocab_size,
        SPECIAL_TOKENS,
        CHAT_TEMPLATE,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        named_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )
    ids = token_ids(tok, SPECIAL_TOKENS)
    side = max(2 * PATCH, dims.image_size // (2 * PATCH) * 2 * PATCH)  # a multiple of patch x merge
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=side * side, max_pixels=side * side, patch_size=PATCH, merge_size=2, temporal_patch_size=2
    )
    processor = ImageOnlyQwen3VLProcessor(
        image_processor=image_processor, tokenizer=tok, chat_template=CHAT_TEMPLATE
    )
    half = dims.hidden_size // dims.num_heads // 2
    common: dict[str, Any] = {"eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]}
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": dims.model_vocab_size or len(tok),
            "hidden_size": dims.hidden_size,
            "intermediate_size": dims.intermediate_size,
            "num_hidden_layers": dims.num_layers,
            "num_attention_heads": dims.num_heads,
            "num_key_value_heads": dims.num_kv_heads,
            "head_dim": dims.hidden_size // dims.num_heads,
            "max_position_embeddings": dims.max_position_embeddings,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": dims.rope_theta,
                "mrope_section": [half - 2 * (half // 3), half // 3, half // 3],
                "mrope_interleaved": True,
            },
            "tie_word_embeddings": True,
            **common,
        },
        vision_config={
            "depth": dims.vision_depth,
            "hidden_size": dims.vision_hidden,
            "intermediate_size": dims.vision_intermediate or dims.vision_hidden * 2,
            "num_heads": dims.vision_heads,
            "out_hidden_size": dims.hidden_size,
            "patch_size": PATCH,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": (side // PATCH) ** 2,
            "deepstack_visual_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    return save_tiny(out, lambda: Qwen3VLForConditionalGeneration(config), processor, seed, device, dtype)


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
