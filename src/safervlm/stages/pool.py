"""Pool stage: every training source (capped, categories mapped) into one parquet + summary."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from safervlm import tracking
from safervlm.config import PoolParams, parse_json_arg
from safervlm.curate.pool import build_pool, parse_sources
from safervlm.data.readers import DEFAULT_MAX_IMAGE_PIXELS, image_pixel_limit
from safervlm.io import write_json, write_parquet
from safervlm.stages.args import max_pixels_arg, params_arg

log = logging.getLogger(__name__)


def pool_stage(
    sources: dict[str, Any],
    out: str,
    params: PoolParams,
    seed: int = 0,
    max_image_pixels: int | None = None,
) -> dict[str, Any]:
    """Build the training pool at ``out`` and its summary at ``<out>.summary.json``.

    Args:
        sources: The ``sources`` config section (name -> root, cap, configs, category_map,
            category_rules).
        out: The pool parquet path.
        params: The taxonomy the source labels are mapped to.
        seed: Seed of the per-source caps' samples.
        max_image_pixels: Pixel limit for decoding source images (``data.max_image_pixels``;
            :data:`~safervlm.data.readers.DEFAULT_MAX_IMAGE_PIXELS` when None).
    """
    max_image_pixels = DEFAULT_MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels
    specs = parse_sources(sources, params.taxonomy)
    with image_pixel_limit(max_image_pixels):  # every source reader decodes under it
        pool, summary = build_pool(specs, params.taxonomy, seed=seed)
    summary_path = Path(out).with_suffix(".summary.json")
    write_parquet(pool, out)
    write_json(summary, summary_path)
    tracking.log_stage(
        "pool",
        params={
            "seed": seed,
            "taxonomy": params.taxonomy,
            "max_image_pixels": max_image_pixels,
            **{f"{n}.root": s.root for n, s in specs.items()},
            **{f"{n}.cap": s.cap for n, s in specs.items()},
        },
        metrics={"n": summary["n"], "by_source": summary["by_source"], "by_category": summary["by_category"]},
        artifacts=[summary_path],
    )
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm pool`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument("--sources", required=True, help="sources section as JSON: name -> {root, cap, ...}")
    p.add_argument("--params", default="{}", help="curate keys as JSON (taxonomy)")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-source caps")
    p.add_argument("--out", required=True)
    max_pixels_arg(p)


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    sources = parse_json_arg(a.sources, what="--sources")
    params = params_arg(PoolParams, a.params)
    return pool_stage(sources, a.out, params, a.seed, max_image_pixels=a.max_image_pixels)
