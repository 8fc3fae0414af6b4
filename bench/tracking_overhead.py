"""Per-stage MLflow overhead: one light stage (``safervlm score``) run as a subprocess with
tracking off (baseline), on with the SQLite backend logged live by the stage, and on with a
run record (``mlflow.records``: the stage writes a record, no ``import mlflow``), alternating,
in one script; then the batch that logs the records (``tracking.flush_records``, as the
``mlflow_runs`` job does) over ``--batch`` records in a fresh process, per record.

With ``--server``: the cost of logging one stage's run (a fresh process calling
``tracking.log_stage`` with params, metrics, 20 training steps and one artifact, as a job
does) against a SQLite file vs an ``mlflow server`` on 127.0.0.1 (SQLite backend,
artifacts proxied), tracking off as baseline, alternating, in one script.

Usage::

    .venv/bin/python bench/tracking_overhead.py [--judgments results/eval/sft/vlguard/judgments.parquet]
    .venv/bin/python bench/tracking_overhead.py --server
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
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


LOG_ONE_RUN = """
import sys
from safervlm import tracking
tracking.log_stage(
    "bench",
    params={f"p{i}": i for i in range(10)},
    metrics={f"m{i}": i / 10 for i in range(10)},
    step_metrics=[{"step": s, "loss": 1 / (s + 1), "reward": s / 20} for s in range(20)],
    artifacts=[sys.argv[1]],
)
"""


def timed_log(artifact: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", LOG_ONE_RUN, str(artifact)], check=True, env=env)
    return time.perf_counter() - start


def start_server(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", f"sqlite:///{tmp}/server.db", "--artifacts-destination", f"{tmp}/art"]
    cmd += ["--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5):
                return proc, url
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(f"mlflow server at {url} not healthy after 300 s")


def compare_server(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "summary.json"
        artifact.write_text('{"n": 1}' * 100)
        proc, url = start_server(tmp)
        try:
            base = {**os.environ, "MLFLOW_EXPERIMENT_NAME": "bench", "SAFERVLM_CONFIG_HASH": "bench"}
            envs = {
                "off": {**base, "SAFERVLM_MLFLOW": "0"},
                "sqlite": {
                    **base,
                    "SAFERVLM_MLFLOW": "1",
                    "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
                    "SAFERVLM_MLFLOW_ARTIFACTS": f"{tmp}/artifacts",
                },
                "server": {**base, "SAFERVLM_MLFLOW": "1", "MLFLOW_TRACKING_URI": url},
            }
            for name in ("sqlite", "server"):  # create DB and experiment once (migrations)
                timed_log(artifact, envs[name])
            times: dict[str, list[float]] = {name: [] for name in envs}
            for _ in range(repeats):
                for name, env in envs.items():
                    times[name].append(timed_log(artifact, env))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"one stage's run logged from a fresh process, median of {repeats}:")
    for name, m in med.items():
        print(f"  {name:7s} {m:.2f} s")
    add_sqlite, add_server = med["sqlite"] - med["off"], med["server"] - med["off"]
    print(f"MLflow adds: SQLite {add_sqlite:.2f} s, server {add_server:.2f} s per stage")
    total = med["server"] / med["sqlite"]
    print(f"ratio server/SQLite: total {total:.2f}x, added {add_server / add_sqlite:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--judgments", default="results/eval/sft/vlguard/judgments.parquet")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32, help="records the batch logs (default 32)")
    parser.add_argument("--server", action="store_true", help="SQLite vs tracking server (see above)")
    args = parser.parse_args()
    if args.server:
        compare_server(args.repeats)
        return
    compare_stage(args.judgments, args.repeats, args.batch)


FLUSH = """
import sys, time
from safervlm import tracking
start = time.perf_counter()
n = len(tracking.flush_records(sys.argv[1]))
print(n, time.perf_counter() - start)
"""


def compare_stage(judgments: str, repeats: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = {**os.environ, "MLFLOW_EXPERIMENT_NAME": "bench", "SAFERVLM_MLFLOW_ARTIFACTS": f"{tmp}/art"}
        base.pop("SAFERVLM_MLFLOW_RECORDS", None)
        on = {**base, "SAFERVLM_MLFLOW": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        envs = {
            "off": {**base, "SAFERVLM_MLFLOW": "0"},
            "sqlite": on,
            "records": {**on, "SAFERVLM_MLFLOW_RECORDS": f"{tmp}/records"},
        }
        timed(judgments, Path(tmp) / "m.json", on)  # create the DB once (migrations)
        times: dict[str, list[float]] = {name: [] for name in envs}
        for _ in range(repeats):
            for name, env in envs.items():
                times[name].append(timed(judgments, Path(tmp) / "m.json", env))
        # The batch: `batch` records of the same stage, logged by one fresh process.
        spool = Path(tmp) / "batch"
        env = {**envs["records"], "SAFERVLM_MLFLOW_RECORDS": str(spool)}
        for _ in range(batch):
            timed(judgments, Path(tmp) / "m.json", env)
        start = time.perf_counter()
        cmd = [sys.executable, "-c", FLUSH, str(spool)]
        out = subprocess.run(cmd, env=on, check=True, capture_output=True, text=True)
        flush_wall = time.perf_counter() - start
        n, flush_in = out.stdout.split()
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"safervlm score on one judgments file, median of {repeats} alternating runs:")
    for name, m in med.items():
        print(f"  {name:8s} {m:.2f} s  ({m / med['off']:.2f}x off; tracking adds {m - med['off']:+.2f} s)")
    print(
        f"batch: {n} records logged by one process in {flush_wall:.2f} s wall "
        f"({float(flush_in):.2f} s after start-up): {flush_wall / int(n):.3f} s per record"
    )


if __name__ == "__main__":
    main()
