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

Usage::

    .venv/bin/python bench/noop_audit.py --workdir /path/to/run [--repeat 3] [--old PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=ROOT, help="a finished run of the DAG")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-audit", action="store_true", help="only the start-up and the no-op")
    parser.add_argument("--old", type=Path, help="another checkout: its no-op too (A/B)")
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
    times: dict[str, list[float]] = {k: [] for k in cases}
    print("load average before:", " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    for _ in range(a.repeat):  # interleaved, so load changes hit every case alike
        for name, (cmd, expect, case_env) in cases.items():
            times[name].append(timed(cmd, a.workdir, case_env, expect))
    base = statistics.median(times["snakemake --version (baseline)"])
    print("| step | median wall (s) | runs | ratio to snakemake start-up |\n|---|---:|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.2f} | {len(ts)} | {med / base:.2f}x |")
    print("load average after:", " ".join(Path("/proc/loadavg").read_text().split()[:3]))


if __name__ == "__main__":
    main()
