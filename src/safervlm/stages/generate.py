"""``safervlm generate``: one response per benchmark sample with one model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm import tracking
from safervlm.config import GenerateParams
from safervlm.evaluate.generate import generate_responses
from safervlm.io import read_parquet, write_parquet
from safervlm.schema import SAMPLE_COLUMNS, generation_counts
from safervlm.stages.args import params_arg


def generation_summary(df: pd.DataFrame) -> dict[str, Any]:
    """How the generations ended: the score stage's counts (``n_truncated``,
    ``n_reasoning_<source>``) and the mean completion tokens where known (-1 if none)."""
    known = df["completion_tokens"][df["completion_tokens"] >= 0]
    return {
        **generation_counts(df),
        "mean_completion_tokens": float(known.mean()) if len(known) else -1.0,
    }


def generate_stage(
    model_path: str, model_name: str, data_path: str, out: str, params: GenerateParams, seed: int
) -> dict[str, Any]:
    """Generate one response per benchmark sample."""

    samples = read_parquet(data_path, required=SAMPLE_COLUMNS)
    df = generate_responses(samples, model_path, model_name, params, seed=seed)
    write_parquet(df, out)
    bench = Path(data_path).stem
    summary = {
        "n": len(df),
        "mean_chars": float(df["response"].str.len().mean()) if len(df) else 0.0,
        "with_reasoning": float((df["reasoning"] != "").mean()) if len(df) else 0.0,
        **generation_summary(df),
    }
    tracking.log_stage(
        "generate",
        params={
            **params.model_dump(),
            "max_new_tokens": params.effective_max_new_tokens,
            "model": model_name,
            "model_path": model_path,
            "benchmark": bench,
            "seed": seed,
        },
        metrics=summary,
        run_name=f"generate:{model_name}:{bench}",
    )
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm generate`` (collected by :func:`safervlm.cli.build_parser`)."""
    for flag in ("--model", "--model-name", "--data", "--out"):
        p.add_argument(flag, required=True)
    p.add_argument("--params", default="{}", help="generate section as JSON")
    p.add_argument("--seed", type=int, default=0)


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    params = params_arg(GenerateParams, a.params)
    return generate_stage(a.model, a.model_name, a.data, a.out, params, a.seed)
