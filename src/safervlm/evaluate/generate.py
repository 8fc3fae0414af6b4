"""Batched generation with the HF backend: left padding, length-sorted batches.

Used for evaluation (greedy by default) and for QI scoring (K sampled answers per
prompt). Output order always matches input order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from safervlm.config import GenerateParams
from safervlm.models import load_policy
from safervlm.prompts import build_prompt
from safervlm.schema import RESPONSE_COLUMNS, decode_image
from safervlm.text import split_response

log = logging.getLogger(__name__)


class HFGenerator:
    """Generates responses from a local Qwen2.5-VL-family policy."""

    def __init__(self, model_path: str, system_prompt: str | None = None) -> None:
        self.model, self.processor = load_policy(model_path)
        self.model.eval()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device)
        self.processor.tokenizer.padding_side = "left"
        self.system_prompt = system_prompt

    def _encode(self, questions: Sequence[str], images: Sequence[bytes | None]) -> Any:
        texts = [
            self.processor.apply_chat_template(
                build_prompt(q, has_image=img is not None, system_prompt=self.system_prompt),
                add_generation_prompt=True,
                tokenize=False,
            )
            for q, img in zip(questions, images, strict=True)
        ]
        pil = [[decode_image(img)] if img is not None else [] for img in images]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if any(pil):
            kwargs["images"] = pil
        return self.processor(**kwargs).to(self.device)

    @torch.inference_mode()
    def generate(
        self,
        questions: Sequence[str],
        images: Sequence[bytes | None],
        *,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 1.0,
        num_samples: int = 1,
        batch_size: int = 32,
        seed: int = 0,
    ) -> list[list[str]]:
        """Return ``num_samples`` responses per question, in input order."""
        torch.manual_seed(seed)
        order = sorted(
            range(len(questions)), key=lambda i: len(questions[i])
        )  # similar lengths batch together
        out: list[list[str]] = [[] for _ in questions]
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "num_return_sequences": num_samples,
        }
        if do_sample:
            gen_kwargs["temperature"] = temperature
        for start in tqdm(range(0, len(order), batch_size), desc="generate", leave=False):
            idx = order[start : start + batch_size]
            inputs = self._encode([questions[i] for i in idx], [images[i] for i in idx])
            ids = self.model.generate(**inputs, **gen_kwargs)
            texts = self.processor.batch_decode(
                ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
            )
            for j, i in enumerate(idx):
                out[i] = [t.strip() for t in texts[j * num_samples : (j + 1) * num_samples]]
        return out


def generate_responses(
    samples: pd.DataFrame, model_path: str, model_name: str, params: GenerateParams, seed: int = 0
) -> pd.DataFrame:
    """Generate one response per sample and split it into reasoning and answer."""
    gen = HFGenerator(model_path, system_prompt=params.system_prompt)
    images: list[bytes | None] = [
        bytes(b) if isinstance(b, bytes | bytearray) else None for b in samples["image"]
    ]
    responses = gen.generate(
        samples["question"].tolist(),
        images,
        max_new_tokens=params.max_new_tokens,
        do_sample=params.do_sample,
        temperature=params.temperature or 1.0,
        batch_size=params.batch_size,
        seed=seed,
    )
    df = samples.drop(columns=["image"]).copy()
    df["model"] = model_name
    df["response"] = [r[0] for r in responses]
    split = [split_response(r) for r in df["response"]]
    df["reasoning"] = [s[0] for s in split]
    df["answer"] = [s[1] for s in split]
    return df[RESPONSE_COLUMNS]
