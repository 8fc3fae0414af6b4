"""Wall time of the embedded-default demo, per stage and in total.

Runs the whole DAG from scratch in a fresh working directory (``snakemake -d``), then
reads every rule's Snakemake ``benchmark:`` file. Reports per-stage job time, its share of
the summed job time, and the parallel speed-up (summed job time / wall time), plus the
no-op rerun time. ``--ab`` runs the DAG twice, one after the other in fresh folders: first
with every job in its own process (``SAFERVLM_PREFORK=0``), then forked from the run's
pre-forked interpreter (the default), and prints both with their ratio. Usage::

    .venv/bin/python bench/demo_wall_time.py [--cores 2] [--keep DIR] [--ab]
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


def run(workdir: Path, cores: int, extra_env: dict[str, str] | None = None) -> float:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **(extra_env or {})}
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


def measure(workdir: Path, cores: int, extra_env: dict[str, str] | None = None) -> dict:
    """One run from scratch and its no-op rerun: wall, load, per-stage job times."""
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    wall = run(workdir, cores, extra_env)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    noop = run(workdir, cores, extra_env)
    return {
        "wall": wall,
        "noop": noop,
        "load": (load_before, load_after),
        "times": stage_times(workdir / "results"),
    }


ORDER = [
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


def report(m: dict, cores: int, label: str) -> None:
    times = m["times"]
    total_job = sum(sum(v) for v in times.values())
    print(f"\n{label}\n\n| stage | jobs | job time (s) | share of job time |\n|---|---:|---:|---:|")
    for stage in ORDER + sorted(set(times) - set(ORDER)):
        if stage in times:
            t = sum(times[stage])
            print(f"| {stage} | {len(times[stage])} | {t:.1f} | {t / total_job:.1%} |")
    n_jobs = sum(len(v) for v in times.values())
    tracking = os.environ.get("SAFERVLM_MLFLOW", "1") != "0"
    print(
        f"\nwall time, whole DAG from scratch ({cores} cores, {n_jobs} jobs, "
        f"tracking {'on' if tracking else 'off'}): {m['wall']:.1f} s"
    )
    before, after = m["load"]
    print(f"load average (1/5/15 min) before: {' '.join(before)}; after: {' '.join(after)}")
    wall, noop = m["wall"], m["noop"]
    print(f"summed job time: {total_job:.1f} s; parallel speed-up (job time / wall): {total_job / wall:.2f}x")
    print(f"no-op rerun ('Nothing to be done'): {noop:.1f} s ({noop / wall:.3f} of the full run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="run here instead of a temp dir")
    parser.add_argument("--ab", action="store_true", help="each job its own process, then forked")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="safervlm-bench-"))
    if not args.ab:
        report(measure(workdir, args.cores), args.cores, "this checkout's default")
        return
    off = measure(Path(tempfile.mkdtemp(prefix="safervlm-bench-off-")), args.cores, {"SAFERVLM_PREFORK": "0"})
    on = measure(workdir, args.cores, {"SAFERVLM_PREFORK": "1"})
    report(off, args.cores, "every job its own process (SAFERVLM_PREFORK=0)")
    report(on, args.cores, "jobs forked from the run's pre-forked interpreter (SAFERVLM_PREFORK=1)")
    print(f"\nratio forked / own process, wall: {on['wall'] / off['wall']:.2f}x")
    for stage in ("generate", "judge", "score"):
        a, b = sum(off["times"].get(stage, [0.0])), sum(on["times"].get(stage, [0.0]))
        print(f"ratio forked / own process, {stage} job time: {b / a:.2f}x" if a else "")


if __name__ == "__main__":
    main()
