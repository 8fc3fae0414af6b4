"""Per-stage MLflow overhead: one light stage (``safervlm score``) run as a subprocess with
tracking off (baseline) and on (SQLite backend), alternating, in one script.

Usage::

    .venv/bin/python bench/tracking_overhead.py [--judgments results/eval/sft/vlguard/judgments.parquet]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(judgments: str, out: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "safervlm"), "score", "--judgments", judgments, "--out", str(out)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--judgments", default="results/eval/sft/vlguard/judgments.parquet")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        off = {**os.environ, "SAFERVLM_MLFLOW": "0"}
        on = {**os.environ, "SAFERVLM_MLFLOW": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        timed(args.judgments, Path(tmp) / "m.json", on)  # create the DB once (migrations)
        t_off, t_on = [], []
        for _ in range(args.repeats):
            t_off.append(timed(args.judgments, Path(tmp) / "m.json", off))
            t_on.append(timed(args.judgments, Path(tmp) / "m.json", on))
    m_off, m_on = statistics.median(t_off), statistics.median(t_on)
    print(f"safervlm score, median of {args.repeats}: tracking off {m_off:.2f} s, on {m_on:.2f} s")
    print(f"ratio on/off: {m_on / m_off:.2f}x; MLflow adds {m_on - m_off:.2f} s per stage")


if __name__ == "__main__":
    main()
