"""``safervlm attack``: a benchmark under each configured jailbreak transform."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from safervlm import tracking
from safervlm.evaluate.attacks import apply_attacks
from safervlm.io import read_parquet, write_parquet
from safervlm.schema import SAMPLE_COLUMNS


def attack_stage(data_path: str, out: str, attacks: list[str], image_size: int) -> dict[str, Any]:
    """The benchmark under each configured attack (``data.transforms``), stacked."""

    samples = read_parquet(data_path, required=SAMPLE_COLUMNS)
    df = apply_attacks(samples, attacks, image_size=image_size)
    write_parquet(df, out)
    counts = {f"n_{a}": int(n) for a, n in df["attack"].value_counts().items()}
    bench = Path(data_path).stem
    tracking.log_stage(
        "attack",
        params={"benchmark": bench, "attacks": ",".join(attacks), "image_size": image_size},
        metrics={"n": len(df), **counts},
        run_name=f"attack:{bench}",
    )
    return {"n": len(df), **counts}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm attack`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument("--data", required=True, help="benchmark parquet")
    p.add_argument("--out", required=True)
    p.add_argument("--attacks", default="none", help="comma-separated attack names")
    p.add_argument("--image-size", type=int, default=336, help="side of rendered attack images (px)")


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return attack_stage(a.data, a.out, [x for x in a.attacks.split(",") if x], a.image_size)
