"""``safervlm tiny-model``: the offline tiny policy of the embedded default (any model family)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from safervlm import tracking
from safervlm.config import TinyConfig, from_dict, parse_json_arg
from safervlm.embedded import world
from safervlm.embedded.tiny import TinyDims, build_tiny_model
from safervlm.io import read_parquet
from safervlm.stages.args import many


def corpus_texts(paths: list[str]) -> list[str]:
    """Text for the tiny tokenizer: questions and responses of the given parquet files,
    plus the synthetic world's reference responses and the system prompt."""
    texts: list[str] = ["You are a helpful assistant.", "system user assistant"]
    for p in paths:
        df = read_parquet(p, required=["question"])
        texts += df["question"].dropna().astype(str).tolist()
        for col in ("response", "reference"):
            if col in df.columns:
                texts += df[col].dropna().astype(str).tolist()
    texts += [world.response_for(t) for t in world.all_tasks()]
    return texts


def tiny_model(text_paths: list[str], out: str, seed: int, dims: dict[str, Any]) -> int:
    """Build the offline tiny policy at ``out`` in the family and sizes of ``dims``
    (``base_model.tiny``)."""
    sizes = from_dict(TinyConfig, dims, section="base_model.tiny").model_dump()
    family = sizes.pop("family")
    n = build_tiny_model(out, corpus_texts(text_paths), seed=seed, dims=TinyDims(**sizes), family=family)
    tracking.log_stage(
        "tiny_model",
        params={**dims, "seed": seed},
        metrics={"n_parameters": n},
        artifacts=[Path(out) / "config.json"],
    )
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm tiny-model`` (collected by :func:`safervlm.cli.build_parser`)."""
    many(p, "--texts", nargs="+", required=True, help="parquet files whose text trains the tokenizer")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dims", default="{}", help="TinyDims as JSON")


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return tiny_model(a.texts, a.out, a.seed, parse_json_arg(a.dims, what="--dims"))
