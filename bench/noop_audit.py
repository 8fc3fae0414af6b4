"""Time of a no-op ``snakemake all`` and of the audit on a finished demo run.

Against a working directory where the embedded-default DAG has run (``make demo``, or
``--workdir`` of a ``snakemake -d`` run), medians of ``--repeat`` runs of:

* ``snakemake --version``: interpreter + Snakemake start-up, the baseline of the ratios;
* ``snakemake all`` with nothing to do (parses the Snakefile, builds the DAG, checks every
  output's mtime and metadata);
* ``snakemake --forcerun audit audit``: the audit job as a user runs it (one job);
* ``safervlm audit`` called directly (load judgments, recompute, compare, write).

``--old PATH`` adds the no-op of another checkout of the workflow (e.g. ``git archive`` of
the commit before a change) on the same run directory, interleaved with the others, its
package first on ``PYTHONPATH``: an A/B of the no-op in one script.

``--floor`` adds Snakemake's own floor for the same DAG: a skeleton Snakefile with one rule
per job of the run (``--detailed-summary``: the same output, input and log files), each a
``touch`` with no params, no input functions and no code of ours, run once with
``--forceall`` in a copy of the run's ``results/`` so that its metadata is its own; then its
no-op is timed with the others. What the real no-op costs over the skeleton's is what our
Snakefile adds (parse-time code, wildcard rules, input and param functions). A one-file
Snakefile's no-op (``rule all`` on one existing file) is Snakemake's fixed cost of a run.

Usage::

    .venv/bin/python bench/noop_audit.py --workdir /path/to/run [--repeat 3] [--old PATH]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(cmd: list[str], cwd: Path, env: dict[str, str], expect: str = "") -> float:
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    out = r.stdout + r.stderr
    if r.returncode != 0 or expect not in out:
        sys.exit(f"{' '.join(cmd)} failed (rc {r.returncode}; wanted {expect!r}):\n{out[-3000:]}")
    return wall


def skeleton(workdir: Path, smk: list[str], env: dict[str, str], into: Path) -> Path:
    """A Snakefile whose rules are the run's jobs, each a ``touch``; run once in ``into``."""
    summary = subprocess.run(
        [*smk, "all", "--detailed-summary"], cwd=workdir, env=env, capture_output=True, text=True
    )
    if summary.returncode != 0:
        sys.exit(f"--detailed-summary failed:\n{summary.stderr[-3000:]}")
    jobs: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for row in csv.DictReader(summary.stdout.splitlines(), delimiter="\t"):
        inputs = ",".join(sorted(set(filter(None, row["input-file(s)"].split(",")))))
        jobs[(row["rule"], inputs, row["log-file(s)"])].append(row["output_file"])
    outputs = {o for outs in jobs.values() for o in outs}
    lines = ["rule all:", f"    input: {sorted(outputs)!r}", ""]
    for n, ((rule, inputs, log), outs) in enumerate(sorted(jobs.items())):
        dirs = [o for o in sorted(outs) if (workdir / o).is_dir()]
        plain = [o for o in sorted(outs) if o not in dirs]
        files = plain + (log.split(",") if log else [])
        outs_expr = ", ".join([*(f"directory({d!r})" for d in dirs), *map(repr, plain)])
        lines += [f"rule j{n:03d}_{rule}:", f"    output: {outs_expr}"]
        if inputs:
            lines.append(f"    input: {inputs.split(',')!r}")
        if log:
            lines.append(f"    log: {log.split(',')!r}")
        make = [f"mkdir -p {' '.join(dirs)}"] if dirs else []
        make += [f"mkdir -p {' '.join(sorted({str(Path(f).parent) for f in files}))}"] if files else []
        make += [f"touch {' '.join(files)}"] if files else []
        lines += [f"    shell: {' && '.join(make)!r}", ""]
    shutil.copytree(workdir / "results", into / "results", symlinks=True)
    snakefile = into / "Snakefile"
    snakefile.write_text("\n".join(lines))
    cmd = [smk[0], "-s", str(snakefile), "-d", str(into), "--cores", "2", "--forceall", "all"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"the skeleton's run failed:\n{run.stderr[-3000:]}")
    print(f"skeleton: {len(jobs)} rules, one per job of {workdir}")
    return snakefile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=ROOT, help="a finished run of the DAG")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-audit", action="store_true", help="only the start-up and the no-op")
    parser.add_argument("--old", type=Path, help="another checkout: its no-op too (A/B)")
    parser.add_argument("--floor", action="store_true", help="Snakemake's floor: a skeleton's no-op")
    a = parser.parse_args()
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "SAFERVLM_MLFLOW": "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    smk = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(a.workdir), "--cores", "2"]
    cfg = ROOT / "config" / "config.yaml"
    audit = [str(BIN / "safervlm"), "audit", "--config", str(cfg), "--out-dir", "results/audit"]
    audit += ["--report-rates", "results/report/rates.csv"]
    cases: dict[str, tuple[list[str], str, dict[str, str]]] = {
        "snakemake --version (baseline)": ([str(BIN / "snakemake"), "--version"], "", env),
        "no-op snakemake all": ([*smk, "all"], "Nothing to be done", env),
        "snakemake audit (forced, 1 job)": ([*smk, "--forcerun", "audit", "audit"], "", env),
        "safervlm audit (direct)": (audit, "match", env),
    }
    if a.no_audit:
        cases = dict(list(cases.items())[:2])
    if a.old:
        old_env = {**env, "PYTHONPATH": str(a.old.resolve() / "src")}
        old_smk = [smk[0], "-s", str(a.old.resolve() / "Snakefile"), *smk[3:]]
        cases[f"no-op snakemake all, {a.old}"] = ([*old_smk, "all"], "Nothing to be done", old_env)
    with tempfile.TemporaryDirectory(prefix="noop-floor-") as tmp:
        if a.floor:
            skel = skeleton(a.workdir, smk, env, Path(tmp))
            skel_cmd = [smk[0], "-s", str(skel), "-d", tmp, "--cores", "2", "all"]
            cases["no-op of the skeleton (Snakemake's floor)"] = (skel_cmd, "Nothing to be done", env)
            one = Path(tmp) / "one"
            one.mkdir()
            (one / "done").touch()
            (one / "Snakefile").write_text("rule all:\n    input: 'done'\n")
            one_cmd = [smk[0], "-s", str(one / "Snakefile"), "-d", str(one), "--cores", "2", "all"]
            cases["no-op of a one-file Snakefile (fixed cost)"] = (one_cmd, "Nothing to be done", env)
        measure(cases, a.workdir, a.repeat)


def measure(cases: dict[str, tuple[list[str], str, dict[str, str]]], workdir: Path, repeat: int) -> None:
    times: dict[str, list[float]] = {k: [] for k in cases}
    print("load average before:", " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    for _ in range(repeat):  # interleaved, so load changes hit every case alike
        for name, (cmd, expect, case_env) in cases.items():
            times[name].append(timed(cmd, workdir, case_env, expect))
    base = statistics.median(times["snakemake --version (baseline)"])
    print("| step | median wall (s) | runs | ratio to snakemake start-up |\n|---|---:|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.2f} | {len(ts)} | {med / base:.2f}x |")
    print("load average after:", " ".join(Path("/proc/loadavg").read_text().split()[:3]))


if __name__ == "__main__":
    main()
