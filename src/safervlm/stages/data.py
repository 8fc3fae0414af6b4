"""Data stages: synthetic fixtures, tiny model, benchmark preparation (the pool is stages.pool)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm import tracking
from safervlm.data import get_adapter, load_benchmark, world
from safervlm.data.base import DEFAULT_MAX_IMAGE_PIXELS
from safervlm.data.fixtures import build_fixtures
from safervlm.io import atomic_path, read_parquet, write_json, write_parquet
from safervlm.schema import SAMPLE_COLUMNS

log = logging.getLogger(__name__)


def fixtures(out: str, seed: int, n_per_benchmark: int, n_train_per_source: int) -> dict[str, Any]:
    """Write every benchmark and training source in its official format under ``out``."""
    with atomic_path(out) as tmp:
        manifest = build_fixtures(
            tmp, seed=seed, n_per_benchmark=n_per_benchmark, n_train_per_source=n_train_per_source
        )
    tracking.log_stage(
        "fixtures",
        params={"seed": seed, "n_per_benchmark": n_per_benchmark, "n_train_per_source": n_train_per_source},
        metrics=manifest,
        artifacts=[Path(out) / "MANIFEST.json"],
    )
    return manifest


def prepare(
    benchmark: str,
    root: str,
    out: str,
    limit: int | None = None,
    max_image_pixels: int | None = None,
) -> dict[str, Any]:
    """Normalise one benchmark's local copy into ``out`` (parquet) plus a summary JSON.

    Nothing is written unless every record loads. Samples with an empty question and an
    image (image-only prompts) are kept and counted as ``n_image_only``.

    Args:
        benchmark: Registry name.
        root: The benchmark's local copy in its official format.
        out: The parquet path (the summary goes to ``<out>.summary.json``).
        limit: Read at most this many samples (all when None).
        max_image_pixels: Pixel limit for decoding images (``data.max_image_pixels``;
            :data:`~safervlm.data.base.DEFAULT_MAX_IMAGE_PIXELS` when None).
    """
    max_image_pixels = DEFAULT_MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels
    samples = load_benchmark(benchmark, Path(root), limit=limit, max_image_pixels=max_image_pixels)
    n_image_only = sum(1 for s in samples if not s.question.strip())
    if n_image_only:
        log.info("%s: %d image-only prompts (empty question, image kept)", benchmark, n_image_only)
    df = pd.DataFrame([s.to_row() for s in samples], columns=SAMPLE_COLUMNS)
    adapter = get_adapter(benchmark)
    summary = {
        "benchmark": benchmark,
        "version": adapter.version,  # bumped whenever prompts or scoring inputs change
        "card": adapter.card,
        "root": str(root),
        "n": len(df),
        "n_image_only": n_image_only,
        "subsets": df["subset"].value_counts().to_dict(),
        "categories": df["category"].value_counts().to_dict(),
        "should_refuse": df["should_refuse"].astype("string").fillna("unknown").value_counts().to_dict(),
    }
    summary_path = Path(out).with_suffix(".summary.json")
    write_parquet(df, out)
    write_json(summary, summary_path)
    tracking.log_stage(
        "prepare",
        params={"benchmark": benchmark, "root": root, "limit": limit, "max_image_pixels": max_image_pixels},
        metrics={"n": len(df), "n_image_only": n_image_only},
        artifacts=[summary_path],
        run_name=f"prepare:{benchmark}",
    )
    return summary


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
    """Build the offline tiny Qwen2.5-VL policy at ``out``."""
    from safervlm.config import TinyConfig, from_dict
    from safervlm.models.tiny import TinyDims, build_tiny_model

    tiny_dims = TinyDims(**from_dict(TinyConfig, dims, section="base_model.tiny").model_dump())
    n = build_tiny_model(out, corpus_texts(text_paths), seed=seed, dims=tiny_dims)
    tracking.log_stage(
        "tiny_model",
        params={**dims, "seed": seed},
        metrics={"n_parameters": n},
        artifacts=[Path(out) / "config.json"],
    )
    return n
