"""Gemma 4 (``gemma4``): Gemma 4 vision encoder (2D rotary, pooled soft tokens), Gemma 4
decoder (sliding/global attention, proportional rotary on the global layers).

* Processor: the stock one needs a video processor (torchvision) and an audio feature
  extractor; :class:`ImageOnlyGemma4Processor` keeps the PIL image processor and the
  tokenizer (audio and video inputs are refused).
* Chat template: ``<bos>``, then ``<|turn>role\\n … <turn|>\\n`` turns with a system role; the
  assistant is ``model``. The image is ``<|image|>`` where the content list puts it; the
  processor expands it to ``<|image>`` + one ``<|image|>`` per soft token (at most
  ``max_soft_tokens``: 70 … 1120) + ``<image|>``.
* Reasoning: thinking is switched on by ``<|think|>`` at the start of the system turn; the
  model then writes ``<|channel>thought\\n…<channel|>`` (:data:`THOUGHT_CHANNEL`) before the
  answer. Those markers are special tokens, which decoding with ``skip_special_tokens=True``
  (HF generation, TRL rollouts) drops, so the family declares no markers of its own
  (``reasoning=None``: responses are split on ``<think>``, the format SFT on QI-Safe teaches).
* LoRA: the vision encoder's projections carry the decoder's names but wrap their
  ``nn.Linear`` (``Gemma4ClippableLinear``), which LoRA cannot adapt, so the targets are
  scoped to the language model (:data:`LORA_SCOPE`, as peft's own default for Gemma 4).
"""

from __future__ import annotations

from typing import Any

from transformers import Gemma4Config, Gemma4ForConditionalGeneration
from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil
from transformers.models.gemma4.processing_gemma4 import Gemma4Processor
from transformers.processing_utils import ProcessorMixin

from safervlm.models.families.base import Family
from safervlm.models.families.tiny import TinyDims, TinyTokens, decoder_config, tiny_builder, vit_config

SPECIAL_TOKENS = [
    "<pad>",
    "<eos>",
    "<bos>",
    "<|turn>",
    "<turn|>",
    "<|think|>",
    "<|channel>",
    "<channel|>",
    "<|image>",
    "<image|>",
    "<|image|>",
    "<|audio>",
    "<audio|>",
    "<|audio|>",
    "<|video|>",
]
THOUGHT_CHANNEL = ("<|channel>thought\n", "<channel|>")
LORA_SCOPE = "language_model"
SOFT_TOKENS = 70  # the fewest the image processor allows
PATCH = 8  # the tiny model's patches (the real one: 16 pixels) ...
POOL = 3  # ... pooled 3 x 3 into one soft token

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|image|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}<turn|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)


class ImageOnlyGemma4Processor(Gemma4Processor):
    """Gemma 4 processor without the video processor and the audio feature extractor (no
    torchvision needed).

    transformers reads a processor's parts and saved settings from its ``__init__``
    signature: the stock one's without ``feature_extractor`` and ``video_processor`` (the
    stock ``__init__`` gets None for both).
    """

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: Any = None,
        image_seq_length: int = 280,
        **kwargs: Any,
    ) -> None:
        # The stock __init__ passes its parts by name, which the mixin checks against this
        # signature: set up what it sets up (the audio settings stay unset) and skip it.
        self.image_seq_length = image_seq_length
        self.image_token_id = tokenizer.image_token_id
        self.boi_token, self.eoi_token = tokenizer.boi_token, tokenizer.eoi_token
        self.image_token = tokenizer.image_token
        self.video_token = "<|video|>"
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        self.audio_seq_length, self.audio_ms_per_token = 750, 40
        self.audio_token_id = getattr(tokenizer, "audio_token_id", None)
        self.audio_token = getattr(tokenizer, "audio_token", None)
        self.boa_token = getattr(tokenizer, "boa_token", None)
        self.eoa_token = getattr(tokenizer, "eoa_token", None)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)


TOKENS = TinyTokens(
    SPECIAL_TOKENS,
    CHAT_TEMPLATE,
    eos="<turn|>",
    pad="<pad>",
    bos="<bos>",
    named={
        "boi_token": "<|image>",
        "eoi_token": "<image|>",
        "image_token": "<|image|>",
        "boa_token": "<|audio>",
        "eoa_token": "<audio|>",
        "audio_token": "<|audio|>",
        "sot_token": "<|turn>",
        "eot_token": "<turn|>",
        "soc_token": "<|channel>",
        "eoc_token": "<channel|>",
        "think_token": "<|think|>",
    },
    stops=("<turn|>", "<eos>"),
)


def _parts(tok: Any, ids: dict[str, int], dims: TinyDims) -> tuple[Any, Gemma4Config]:
    image_processor = Gemma4ImageProcessorPil(
        patch_size=PATCH, pooling_kernel_size=POOL, max_soft_tokens=SOFT_TOKENS
    )
    processor = ImageOnlyGemma4Processor(
        image_processor=image_processor,
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
        image_seq_length=SOFT_TOKENS,
    )
    head_dim = dims.hidden_size // dims.num_heads
    config = Gemma4Config(
        text_config=decoder_config(
            dims,
            len(tok),
            ids["<turn|>"],
            ids["<pad>"],
            bos_token_id=ids["<bos>"],
            vocab_size_per_layer_input=dims.model_vocab_size or len(tok),
            hidden_size_per_layer_input=0,
            head_dim=head_dim,
            global_head_dim=2 * head_dim,
            sliding_window=256,
            layer_types=["sliding_attention"] * (dims.num_layers - 1) + ["full_attention"],
        ),
        vision_config=vit_config(
            dims,
            num_key_value_heads=dims.vision_heads,
            head_dim=dims.vision_hidden // dims.vision_heads,
            patch_size=PATCH,
            pooling_kernel_size=POOL,
            position_embedding_size=256,
        ),
        audio_config=None,
        boi_token_id=ids["<|image>"],
        eoi_token_id=ids["<image|>"],
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        boa_token_id=ids["<|audio>"],
        eoa_token_index=ids["<audio|>"],
        audio_token_id=ids["<|audio|>"],
        tie_word_embeddings=True,
    )
    return processor, config


build_tiny = tiny_builder("Gemma 4", TOKENS, Gemma4ForConditionalGeneration, _parts)


FAMILY = Family(
    name="gemma4",
    model_types=("gemma4",),
    image_only=ImageOnlyGemma4Processor,
    reasoning=None,  # see THOUGHT_CHANNEL
    system_role=True,
    image_position="where the content list puts it (our prompts: before the text)",
    preload=(
        "transformers.models.gemma4.modeling_gemma4",
        "transformers.models.gemma4.processing_gemma4",
        "transformers.models.gemma4.image_processing_pil_gemma4",
    ),
    build_tiny=build_tiny,
    lora_scope=LORA_SCOPE,
)
