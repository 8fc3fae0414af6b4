"""An image-only Qwen2.5-VL processor, and loading policies with their processors.

Qwen2.5-VL's stock processor also builds a video processor, which imports
torchvision; CPU machines have no torchvision build. ``ImageOnlyQwenVLProcessor``
keeps the image processor (the PIL backend) and the tokenizer only. Note that
``AutoProcessor`` on such a folder silently returns just the tokenizer, so callers
must use :func:`load_processor` and pass the result as ``processing_class``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.processing_utils import ProcessorMixin

from safervlm.errors import ConfigError

log = logging.getLogger(__name__)


class ImageOnlyQwenVLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor without the video processor (no torchvision needed)."""

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any
    ):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        # Skip Qwen2_5_VLProcessor.__init__: it insists on a video processor.
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)


def load_processor(path: str | Path) -> ImageOnlyQwenVLProcessor | Any:
    """Load the processor saved with a policy folder.

    Uses the image-only processor for folders saved with it (the tiny model) and for any
    Qwen2-VL-family folder when torchvision is absent; otherwise ``AutoProcessor``.
    """
    p = Path(path)
    if not (p / "config.json").exists():
        raise ConfigError(f"model folder not found or has no config.json: {p}")
    proc_cfg = p / "processor_config.json"
    saved_class = json.loads(proc_cfg.read_text()).get("processor_class") if proc_cfg.exists() else None
    if saved_class != ImageOnlyQwenVLProcessor.__name__:
        try:
            import torchvision  # noqa: F401
        except ImportError:
            log.info("torchvision absent: loading %s with the image-only processor", p)
        else:
            from transformers import AutoProcessor

            return AutoProcessor.from_pretrained(p)
    tokenizer = AutoTokenizer.from_pretrained(p)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(p)
    return ImageOnlyQwenVLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )


def load_policy(path: str | Path, dtype: str = "float32") -> tuple[Any, Any]:
    """Load a Qwen2.5-VL-family policy and its processor from a local folder."""
    import torch
    from transformers import AutoModelForImageTextToText

    processor = load_processor(path)
    model = AutoModelForImageTextToText.from_pretrained(Path(path), dtype=getattr(torch, dtype))
    return model, processor
