"""Wall time of the embedded-default demo, per stage and in total.

Runs the whole DAG from scratch in a fresh working directory (``snakemake -d``), then
reads every rule's Snakemake ``benchmark:`` file. Reports per-stage job time, its share of
the summed job time, and the parallel speed-up (summed job time / wall time), plus the
no-op rerun time. Usage::

    .venv/bin/python bench/demo_wall_time.py [--cores 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(workdir: Path, cores: int) -> float:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    cmd = [
        str(BIN / "snakemake"),
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        "--cores",
        str(cores),
        "all",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def stage_times(results: Path) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(results / "benchmarks")
        stage = rel.parts[0].removesuffix(".tsv")
        with tsv.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        times[stage].append(float(row["s"]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="run here instead of a temp dir")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="safervlm-bench-"))
    tracking = os.environ.get("SAFERVLM_MLFLOW", "1") != "0"
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    wall = run(workdir, args.cores)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    noop = run(workdir, args.cores)
    times = stage_times(workdir / "results")
    total_job = sum(sum(v) for v in times.values())
    order = [
        "fixtures",
        "prepare",
        "pool",
        "decontaminate",
        "tiny_model",
        "qi_score",
        "qi_select",
        "sft",
        "grpo",
        "generate",
        "judge",
        "score",
        "report",
    ]
    print("| stage | jobs | job time (s) | share of job time |\n|---|---:|---:|---:|")
    for stage in order + sorted(set(times) - set(order)):
        if stage in times:
            t = sum(times[stage])
            print(f"| {stage} | {len(times[stage])} | {t:.1f} | {t / total_job:.1%} |")
    n_jobs = sum(len(v) for v in times.values())
    print(
        f"\nwall time, whole DAG from scratch ({args.cores} cores, {n_jobs} jobs, "
        f"tracking {'on' if tracking else 'off'}): {wall:.1f} s"
    )
    print(f"load average (1/5/15 min) before: {' '.join(load_before)}; after: {' '.join(load_after)}")
    print(f"summed job time: {total_job:.1f} s; parallel speed-up (job time / wall): {total_job / wall:.2f}x")
    print(f"no-op rerun ('Nothing to be done'): {noop:.1f} s ({noop / wall:.3f} of the full run)")


if __name__ == "__main__":
    main()
