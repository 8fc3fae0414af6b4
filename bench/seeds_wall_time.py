"""Wall time of the multi-seed demo (``config/seeds.yaml``) against the one-seed demo.

Runs both DAGs from scratch, one after the other, each in a fresh working directory
(``snakemake -d``), and reports their wall times, job counts, the ratio and the load
average during each run (the 2-core machine is shared). Keeps the multi-seed run's folder
(``--keep``) so its report can be read; the multi-seed demo runs first. Usage::

    .venv/bin/python bench/seeds_wall_time.py [--cores 2] [--keep DIR] [--skip-one-seed]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(workdir: Path, cores: int, configfile: Path | None) -> tuple[float, float, int]:
    """(wall seconds, mean 1-minute load average, jobs run) of ``snakemake all``."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", str(cores)]
    cmd += ["all", *(["--configfile", str(configfile)] if configfile else [])]
    loads: list[float] = []
    start = time.perf_counter()
    with (workdir / "snakemake.out").open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            loads.append(os.getloadavg()[0])
            time.sleep(5)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"snakemake failed in {workdir}: see {workdir / 'snakemake.out'}")
    text = (workdir / "snakemake.out").read_text()
    done = re.findall(r"(\d+) of \d+ steps \(100%\) done", text)
    jobs = int(done[-1]) if done else 0
    return wall, sum(loads) / max(1, len(loads)), jobs


def job_cpu(workdir: Path) -> dict[str, float]:
    """Summed job CPU time (Snakemake ``benchmark:`` files): shared jobs and each seed's."""
    out: dict[str, float] = {}
    for tsv in workdir.rglob("benchmarks/**/*.tsv"):
        parts = tsv.relative_to(workdir).parts
        key = f"seed {parts[parts.index('seeds') + 1]}" if "seeds" in parts[:-2] else "shared"
        with tsv.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        out[key] = out.get(key, 0.0) + float(row["cpu_time"])
    return out


def print_cpu(workdir: Path) -> None:
    log = workdir / ".snakemake" / "safervlm-prefork.log"
    if log.exists() and "runs safervlm" in log.read_text():
        # benchmark: measures the job's process tree; a forked job's work is the server's child.
        print("\n(no CPU split: the jobs were forked from the run's pre-forked interpreter, so their")
        print(" benchmark: cpu_time is the waiting client's; run with SAFERVLM_PREFORK=0 for it)")
        return
    cpu = job_cpu(workdir)
    seeds = sorted(k for k in cpu if k.startswith("seed "))
    print("\n| jobs | CPU time (s) |\n|---|---:|")
    for key in ["shared", *seeds]:
        print(f"| {key} | {cpu.get(key, 0.0):.1f} |")
    if seeds:
        one = cpu.get("shared", 0.0) + cpu[seeds[0]]
        print(
            f"\nCPU time, {len(seeds)} seeds / the same config with one seed: {sum(cpu.values()) / one:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="run the multi-seed demo here")
    parser.add_argument("--skip-one-seed", action="store_true")
    parser.add_argument("--skip-multi-seed", action="store_true")
    parser.add_argument("--summarise", type=Path, default=None, help="only the CPU split of a finished run")
    args = parser.parse_args()
    if args.summarise:
        print_cpu(args.summarise)
        return
    rows = []
    multi = args.keep or Path(tempfile.mkdtemp(prefix="safervlm-seeds-"))
    if not args.skip_multi_seed:
        multi.mkdir(parents=True, exist_ok=True)
        seeds = ROOT / "config" / "seeds.yaml"
        rows.append(("multi-seed demo (config/seeds.yaml)", *run(multi, args.cores, seeds)))
    if not args.skip_one_seed:
        one = Path(tempfile.mkdtemp(prefix="safervlm-one-seed-"))
        rows.insert(0, ("one-seed demo (config/config.yaml)", *run(one, args.cores, None)))
    print("| run | jobs | wall (s) | mean load (1 min) |\n|---|---:|---:|---:|")
    for name, wall, load, jobs in rows:
        print(f"| {name} | {jobs} | {wall:.1f} | {load:.1f} |")
    if len(rows) == 2:  # both, one after the other
        print(f"\nratio multi-seed / one-seed wall: {rows[1][1] / rows[0][1]:.2f}")
    if not args.skip_multi_seed:
        print_cpu(multi)
        print(f"multi-seed run kept in {multi}")


if __name__ == "__main__":
    main()
