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

from typing import Any

from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration
from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil
from transformers.models.smolvlm.processing_smolvlm import SmolVLMProcessor
from transformers.processing_utils import ProcessorMixin

from safervlm.models.families.base import Family
from safervlm.models.families.idefics3 import idefics_parts
from safervlm.models.families.tiny import TinyTokens, tiny_builder

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<global-img>",
    "<image>",
]

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


TOKENS = TinyTokens(
    SPECIAL_TOKENS,
    CHAT_TEMPLATE,
    eos="<end_of_utterance>",
    pad="<|endoftext|>",
    named={
        "image_token": "<image>",
        "fake_image_token": "<fake_token_around_image>",
        "global_image_token": "<global-img>",
        "end_of_utterance_token": "<end_of_utterance>",
    },
)


build_tiny = tiny_builder(
    "SmolVLM",
    TOKENS,
    SmolVLMForConditionalGeneration,
    idefics_parts(TOKENS, SmolVLMImageProcessorPil, ImageOnlySmolVLMProcessor, SmolVLMConfig),
)


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
