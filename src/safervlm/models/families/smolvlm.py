"""SmolVLM (``smolvlm``): SigLIP-style vision tower, pixel-shuffle connector, Llama decoder.

* Processor: the stock one needs a video processor (torchvision) and ``num2words`` (video
  timestamps); :class:`ImageOnlySmolVLMProcessor` keeps the PIL image processor and the
  tokenizer and needs neither.
* Chat template: ``<|im_start|>`` once, then ``Role: text<end_of_utterance>`` lines with
  capitalised roles; a system turn renders as ``System:``; the image is ``<image>`` where the
  content list puts it, expanded by the processor to the global image's tokens (tiling off in
  the tiny model). The generation prompt is ``Assistant:``.
* Reasoning: none of its own; the tiny model knows ``<think>``/``</think>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration
from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil
from transformers.models.smolvlm.processing_smolvlm import SmolVLMProcessor
from transformers.processing_utils import ProcessorMixin

from safervlm.models.families.base import Family
from safervlm.models.families.tiny import TinyDims, save_tiny, token_ids, train_tokenizer

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<global-img>",
    "<image>",
]
SCALE = 2  # pixel-shuffle factor of the connector

CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}: {{ message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<image>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


class ImageOnlySmolVLMProcessor(SmolVLMProcessor):
    """SmolVLM processor without the video processor (needs neither torchvision nor num2words)."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        image_seq_len: int = 169,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.fake_image_token = getattr(tokenizer, "fake_image_token", "<fake_token_around_image>")
        self.image_token = getattr(tokenizer, "image_token", "<image>")
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.end_of_utterance_token = getattr(tokenizer, "end_of_utterance_token", "<end_of_utterance>")
        self.global_image_token = getattr(tokenizer, "global_image_token", "<global-img>")
        self.image_seq_len = image_seq_len
        self.video_token = getattr(tokenizer, "video_token", "<video>")
        # Skip SmolVLMProcessor.__init__: it insists on num2words (for video timestamps).
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def apply_chat_template(  # type: ignore[override]
        self, conversation: Any, chat_template: str | None = None, **kwargs: Any
    ) -> Any:
        """The chat template without the stock method's video defaults (frames, fps)."""
        return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)


def build_tiny(
    out: str | Path,
    texts: Iterable[str],
    seed: int,
    dims: TinyDims,
    device: str = "cpu",
    dtype: str = "float32",
) -> int:
    """Build and save a tiny SmolVLM; return its parameter count."""
    tok = train_tokenizer(
        texts,
        dims.vocab_size,
        SPECIAL_TOKENS,
        CHAT_TEMPLATE,
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        named_tokens={
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
    )
    ids = token_ids(tok, SPECIAL_TOKENS)
    side = dims.image_size
    patch = side // 4  # 4 x 4 patches, pixel-shuffled to 2 x 2 image tokens
    image_processor = SmolVLMImageProcessorPil(
        size={"longest_edge": side}, max_image_size={"longest_edge": side}, do_image_splitting=False
    )
    processor = ImageOnlySmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_len=(side // patch) ** 2 // SCALE**2,
        chat_template=CHAT_TEMPLATE,
    )
    config = SmolVLMConfig(
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
            "bos_token_id": None,
            "eos_token_id": ids["<end_of_utterance>"],
            "pad_token_id": ids["<|endoftext|>"],
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
    return save_tiny(out, lambda: SmolVLMForConditionalGeneration(config), processor, seed, device, dtype)


FAMILY = Family(
    name="smolvlm",
    model_types=("smolvlm",),
    image_only=ImageOnlySmolVLMProcessor,
    reasoning=None,
    system_role=True,
    image_position="where the content list puts it (our prompts: before the text)",
    preload=(
        "transformers.models.smolvlm.modeling_smolvlm",
        "transformers.models.smolvlm.processing_smolvlm",
        "transformers.models.smolvlm.image_processing_pil_smolvlm",
    ),
    build_tiny=build_tiny,
)
