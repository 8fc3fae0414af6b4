"""``safervlm prepare``: one benchmark's local copy, normalised to parquet + summary."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm import tracking
from safervlm.benchmarks import get_adapter, load_benchmark
from safervlm.data.readers import DEFAULT_MAX_IMAGE_PIXELS
from safervlm.embedded.truth import with_truth
from safervlm.io import write_json, write_parquet
from safervlm.schema import SAMPLE_COLUMNS
from safervlm.stages.args import max_pixels_arg

log = logging.getLogger(__name__)


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
            :data:`~safervlm.data.readers.DEFAULT_MAX_IMAGE_PIXELS` when None).
    """
    max_image_pixels = DEFAULT_MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels
    samples = load_benchmark(benchmark, Path(root), limit=limit, max_image_pixels=max_image_pixels)
    samples = list(with_truth(samples, root))  # the embedded fixtures' ground truth, if any
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm prepare`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument("--benchmark", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=None)
    max_pixels_arg(p)


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return prepare(a.benchmark, a.root, a.out, limit=a.limit, max_image_pixels=a.max_image_pixels)
