"""What a model family declares, and the loading every family shares.

A family module (one per architecture: ``qwen2_5_vl.py``, ``gemma3.py`` …) builds one
:class:`Family`: the ``model_type`` values of ``config.json`` it handles, how its processor
loads with and without torchvision, its reasoning format and chat-template quirks, the
modules the pre-forked server imports, its LoRA targets and its tiny offline builder.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, ProcessorMixin

from safervlm.errors import ConfigError

log = logging.getLogger(__name__)

THINK = ("<think>", "</think>")
# The decoder's attention and MLP projections: the same names in every family's language model.
DECODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def has_torchvision() -> bool:
    """Whether torchvision is importable (stock video processors need it)."""
    return importlib.util.find_spec("torchvision") is not None


def saved_processor_class(path: Path) -> str | None:
    """The ``processor_class`` a folder's ``processor_config.json`` names, if any."""
    cfg = path / "processor_config.json"
    return json.loads(cfg.read_text()).get("processor_class") if cfg.exists() else None


@dataclass(frozen=True)
class Family:
    """One model family: everything the pipeline may not guess about an architecture.

    Attributes:
        name: registry key (the config's ``base_model.tiny.family``).
        model_types: ``config.json`` ``model_type`` values this family loads.
        image_only: the processor used without torchvision (and saved by the tiny builder)
            where the stock one needs a video processor; None: the stock one needs no torchvision.
        reasoning: the reasoning markers the family's thinking models write, or None (no
            separate reasoning: the whole response is the answer).
        answer: the markers around the answer after the reasoning, where the family writes
            them (GLM-4.1V-Thinking's ``<answer>…</answer>``), or None (the answer is the
            text after the reasoning's end marker).
        system_role: the chat template renders a system turn (else: it folds the system text
            into the first user turn, or drops it).
        image_position: where the template puts the image relative to the user's text.
        needs_image: training batches need an image per sample (text-only prompts get a blank).
        preload: modules the pre-forked server imports (see ``safervlm.prefork.PRELOAD``).
        lora_targets: default LoRA target module names (``lora_targets: null``).
        lora_scope: the submodule (``language_model``) LoRA targets are kept to, where other
            towers have modules of the same names that LoRA cannot adapt; None: anywhere.
        build_tiny: ``(out, texts, seed, dims, device, dtype) -> n_parameters``: the tiny
            offline model of this family (random weights, a locally trained tokenizer).
        load_processor: overrides :meth:`processor` (None: the shared loading).
    """

    name: str
    model_types: tuple[str, ...]
    image_only: type[ProcessorMixin] | None
    reasoning: tuple[str, str] | None
    system_role: bool
    image_position: str
    preload: tuple[str, ...]
    build_tiny: Callable[..., int]
    lora_targets: tuple[str, ...] = DECODER_LORA_TARGETS
    needs_image: bool = True
    answer: tuple[str, str] | None = None
    lora_scope: str | None = None
    load_processor: Callable[[Path], Any] | None = None

    def processor(self, path: Path) -> Any:
        """The processor of the policy folder ``path``.

        A folder saved with the family's image-only processor loads with it; otherwise the
        stock processor (``AutoProcessor``) where torchvision is installed or the stock one
        needs none, else the image-only processor on the same files (PIL image processor).
        """
        if self.load_processor is not None:
            return self.load_processor(path)
        image_only = self.image_only
        if image_only is not None and (
            saved_processor_class(path) == image_only.__name__ or not has_torchvision()
        ):
            log.info("%s: loading with the image-only processor %s", path, image_only.__name__)
            return image_only.from_pretrained(path)
        return AutoProcessor.from_pretrained(path)

    def model(self, path: Path, dtype: str = "float32") -> Any:
        """The model of the policy folder ``path`` in ``dtype``."""
        return AutoModelForImageTextToText.from_pretrained(path, dtype=getattr(torch, dtype))

    def describe(self) -> str:
        """One line for error messages and docs: name and model types."""
        return f"{self.name} ({', '.join(self.model_types)})"


class NoVideoProcessor:
    """Mixin (listed before the stock processor) for a stock processor whose parts are
    (image processor, tokenizer, video processor): drops the video processor, so no
    torchvision is needed.

    transformers reads a processor's parts from its ``__init__`` signature: this one has no
    ``video_processor``, and the stock ``__init__`` gets None for it.
    """

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)  # type: ignore[call-arg]


def require_config(path: str | Path) -> Path:
    """``path`` as a Path if it holds ``config.json``.

    Raises:
        ConfigError: the folder is missing or has no ``config.json``.
    """
    p = Path(path)
    if not (p / "config.json").exists():
        raise ConfigError(f"model folder not found or has no config.json: {p}")
    return p
