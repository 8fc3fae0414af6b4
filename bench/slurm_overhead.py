"""Wall time of the embedded-default demo through Slurm versus the local executor.

Runs the whole DAG from scratch twice in fresh working directories: with the local profile
(``--cores 2``) and with the slurm profile against a running cluster (``make slurm-up``),
limited to the same number of concurrent jobs. Then splits the extra time per Slurm job
into queue wait (sacct Submit -> Start), in-job overhead (sacct Elapsed minus the rule's own
``benchmark:`` time: srun plus the job's Snakemake start-up) and detection latency (sacct
End -> Snakemake's "Finished", the executor plugin's status polling). Usage::

    SAFERVLM_SLURM_ACCOUNT=safervlm .venv/bin/python bench/slurm_overhead.py [--jobs 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(workdir: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "all", *args]
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{(r.stdout + r.stderr)[-3000:]}")
    return wall, r.stdout + r.stderr


def job_seconds(results: Path) -> float:
    """Summed job time from every rule's Snakemake ``benchmark:`` file."""
    total = 0.0
    for tsv in (results / "benchmarks").rglob("*.tsv"):
        with tsv.open() as fh:
            total += float(next(csv.DictReader(fh, delimiter="\t"))["s"])
    return total


def sacct(workdir: Path, since: str) -> dict[str, dict[str, str]]:
    fields = ["JobID", "Submit", "Start", "End", "ElapsedRaw", "WorkDir"]
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--starttime", since, "-o", ",".join(fields)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]
    return {r["JobID"]: r for r in rows if r["WorkDir"] == str(workdir)}


def detection_latencies(log: str, jobs: dict[str, dict[str, str]]) -> list[float]:
    """Seconds from a job's end (sacct) to Snakemake reporting it finished."""
    slurm_id = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))
    finished = re.findall(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]\nFinished jobid: (\d+)", log)
    out = []
    for stamp, jobid in finished:
        row = jobs.get(slurm_id.get(jobid, ""))
        if row:
            seen = datetime.strptime(stamp, "%a %b %d %H:%M:%S %Y")
            out.append((seen - datetime.fromisoformat(row["End"])).total_seconds())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2, help="concurrent jobs (local: cores)")
    parser.add_argument("--keep", type=Path, default=None, help="run under DIR instead of a temp dir")
    parser.add_argument("--configfile", type=Path, default=None, help="a reduced config, not the demo")
    args = parser.parse_args()
    extra = ["--configfile", str(args.configfile.resolve())] if args.configfile else []
    base = args.keep or Path(tempfile.mkdtemp(prefix="safervlm-slurm-bench-"))
    local_dir, slurm_dir = base / "local", base / "slurm"
    since = time.strftime("%Y-%m-%dT%H:%M:%S")

    local_wall, _ = run(local_dir, "--profile", str(ROOT / "workflow/profiles/local"),
                        "--cores", str(args.jobs), *extra)  # fmt: skip
    # The profile by path: the name `slurm` resolves to whichever checkout `make profiles` linked.
    slurm_wall, log = run(
        slurm_dir, "--profile", str(ROOT / "workflow/profiles/slurm"), "--jobs", str(args.jobs), *extra
    )
    same = (local_dir / "results/report/table.md").read_bytes() == (
        slurm_dir / "results/report/table.md"
    ).read_bytes()
    jobs = sacct(slurm_dir, since)
    n = len(jobs)
    queue = [
        (datetime.fromisoformat(j["Start"]) - datetime.fromisoformat(j["Submit"])).total_seconds()
        for j in jobs.values()
    ]
    in_job = (sum(int(j["ElapsedRaw"]) for j in jobs.values()) - job_seconds(slurm_dir / "results")) / n
    detect = detection_latencies(log, jobs)

    print(f"| executor | wall (s) |\n|---|---:|\n| local (--cores {args.jobs}) | {local_wall:.1f} |")
    print(f"| slurm (--jobs {args.jobs}) | {slurm_wall:.1f} |")
    n_rules = len(re.findall(r"^Finished jobid: ", log, re.M))
    print(f"\nratio slurm/local: {slurm_wall / local_wall:.2f}x; {n_rules} jobs in {n} Slurm submissions")
    print(f"extra wall per job x concurrency: {(slurm_wall - local_wall) * args.jobs / n:.1f} s")
    print(f"queue wait (submit->start): mean {statistics.mean(queue):.1f} s, max {max(queue):.0f} s")
    print(f"in-job overhead (sacct elapsed - rule time): mean {in_job:.1f} s")
    print(
        f"detection latency (end->'Finished'): mean {statistics.mean(detect):.1f} s, "
        f"median {statistics.median(detect):.0f} s, max {max(detect):.0f} s (n={len(detect)})"
    )
    print(f"report table identical to the local run: {same}")
    print(f"(runs kept under {base})")


if __name__ == "__main__":
    main()
