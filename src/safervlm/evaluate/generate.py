"""Evaluation generation: one response per benchmark sample, split into reasoning and answer.

The response is split by ``text.split_response`` (last ``</think>``, ``<answer>`` tags); an
untagged response is all answer, with empty reasoning, and is flagged by
``text.split_status``. The backends are in :mod:`safervlm.models.generation`.
"""

from __future__ import annotations

import pandas as pd

from safervlm.config import GenerateParams
from safervlm.models.generation import build_generator
from safervlm.schema import RESPONSE_COLUMNS
from safervlm.text import split_response


def format_question(question: str, template: str) -> str:
    """The user turn: ``template`` with ``{question}`` replaced (other braces kept as is)."""
    if "{question}" not in template:
        raise ValueError(f"generate.prompt_template must contain '{{question}}', got {template!r}")
    return template.replace("{question}", question)


def generate_responses(
    samples: pd.DataFrame, model_path: str, model_name: str, params: GenerateParams, seed: int = 0
) -> pd.DataFrame:
    """Generate one response per sample and split it into reasoning and answer.

    Rows keep their ``attack`` column when the input has one (attacked benchmarks).
    """
    gen = build_generator(model_path, params)
    images: list[bytes | None] = [
        bytes(b) if isinstance(b, bytes | bytearray) else None for b in samples["image"]
    ]
    responses = gen.generate(
        [format_question(q, params.prompt_template) for q in samples["question"]],
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
    return df[RESPONSE_COLUMNS + (["attack"] if "attack" in df.columns else [])]
