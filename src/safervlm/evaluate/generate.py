"""Evaluation generation: one response per benchmark sample, split into reasoning and answer.

The split (:mod:`safervlm.text`): a served reply's reasoning field wins (``reasoning_source``
``field``); else ``<think>`` markers in the text (``markers``; last ``</think>``, ``<answer>``
tags); else the whole text is the answer with empty reasoning (``none``, flagged by
``text.split_status``). ``response`` is the whole output as one text: a reasoning field is
put back between ``<think>`` markers ahead of the content, so re-splitting ``response``
gives the same parts.

Truncation is never scored as a complete answer. A generation that ran out of tokens has
``finish_reason`` ``length`` and ``truncated`` True, and is split honestly: cut off while
reasoning (an unclosed ``<think>``, or a reasoning field with no content), everything is
reasoning and the answer is *empty* (SafeMLRM counts the missing answer per
``eval.safemlrm.missing``); cut off while answering, the answer is the part produced. The
judge judges exactly what was produced (a cut-off harmful text is still harmful), with the
same prompt as any row; the row keeps ``truncated``, and the score stage counts it
(``n_truncated``). The backends are in :mod:`safervlm.models.generation`.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from safervlm.config import GenerateParams
from safervlm.config.evaluate import REASONING_MAX_NEW_TOKENS
from safervlm.models.families import family_of
from safervlm.models.generation import build_generator
from safervlm.schema import RESPONSE_COLUMNS, Generation
from safervlm.text import THINK_CLOSE, THINK_OPEN, join_reply, split_reply

logger = logging.getLogger(__name__)


def format_question(question: str, template: str) -> str:
    """The user turn: ``template`` with ``{question}`` replaced (other braces kept as is)."""
    if "{question}" not in template:
        raise ValueError(f"generate.prompt_template must contain '{{question}}', got {template!r}")
    return template.replace("{question}", question)


def reasoning_markers(model_path: str, params: GenerateParams) -> tuple[str, str]:
    """The reasoning markers to split on: a local checkpoint's family's (HF backend), else
    ``<think>``/``</think>``. A family without markers of its own (an instruct model that does
    not reason) still gets ``<think>``: that is the format SFT on QI-Safe teaches it."""
    if params.backend == "hf":
        markers = family_of(model_path).reasoning
        if markers:
            return markers
    return THINK_OPEN, THINK_CLOSE


def generation_columns(
    generations: list[Generation], markers: tuple[str, str] = (THINK_OPEN, THINK_CLOSE)
) -> dict[str, list[Any]]:
    """The response columns of generations, from ``response`` to ``completion_tokens``."""
    cols: dict[str, list[Any]] = {c: [] for c in RESPONSE_COLUMNS[RESPONSE_COLUMNS.index("response") :]}
    for g in generations:
        reasoning, answer, source = split_reply(g.content, g.reasoning, *markers, truncated=g.truncated)
        cols["response"].append(
            join_reply(
                g.content, g.reasoning, truncated=g.truncated, open_tag=markers[0], close_tag=markers[1]
            )
        )
        cols["reasoning"].append(reasoning)
        cols["answer"].append(answer)
        cols["reasoning_source"].append(source)
        cols["finish_reason"].append(g.finish_reason)
        cols["truncated"].append(g.truncated)
        cols["prompt_tokens"].append(g.prompt_tokens)
        cols["completion_tokens"].append(g.completion_tokens)
    return cols


def generate_responses(
    samples: pd.DataFrame, model_path: str, model_name: str, params: GenerateParams, seed: int = 0
) -> pd.DataFrame:
    """Generate one response per sample and split it into reasoning and answer.

    Rows keep their ``attack`` column when the input has one (attacked benchmarks).
    """
    budget = params.effective_max_new_tokens
    if params.reasoning and budget < REASONING_MAX_NEW_TOKENS:
        logger.warning(
            "%s is declared a reasoning model but max_new_tokens is %d (< %d): expect truncated responses",
            model_name, budget, REASONING_MAX_NEW_TOKENS,
        )  # fmt: skip
    gen = build_generator(model_path, params)
    images: list[bytes | None] = [
        bytes(b) if isinstance(b, bytes | bytearray) else None for b in samples["image"]
    ]
    records = gen.generate_records(
        [format_question(q, params.prompt_template) for q in samples["question"]],
        images,
        max_new_tokens=budget,
        do_sample=params.do_sample,
        temperature=params.temperature or 1.0,
        batch_size=params.batch_size,
        seed=seed,
    )
    df = samples.drop(columns=["image"]).copy()
    df["model"] = model_name
    markers = reasoning_markers(model_path, params)
    for col, values in generation_columns([r[0] for r in records], markers).items():
        df[col] = values
    df["truncated"] = df["truncated"].astype(bool)
    df[["prompt_tokens", "completion_tokens"]] = df[["prompt_tokens", "completion_tokens"]].astype("int64")
    n_cut = int(df["truncated"].sum())
    if n_cut:
        logger.warning(
            "%s: %d of %d responses hit max_new_tokens=%d (truncated)", model_name, n_cut, len(df), budget
        )
    return df[RESPONSE_COLUMNS + (["attack"] if "attack" in df.columns else [])]
