"""The pre-forked interpreter of local runs (safervlm.prefork): a real server, real clients.

Each test starts the server the way ``rules/common.smk``'s ``onstart`` does
(:func:`safervlm.prefork.start`, this process as its parent) and runs the ``safervlm``
console script as a job would, with Snakemake's thread variables set.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safervlm import prefork

BIN = Path(sys.executable).parent
SAFERVLM = str(BIN / "safervlm")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """A running server: (the jobs' environment, its log)."""
    log = tmp_path_factory.mktemp("prefork") / "prefork.log"
    saved = os.environ.get(prefork.ENV_SOCKET)
    proc = prefork.start(log, {**os.environ, prefork.ENV_SWITCH: "1"})
    assert proc is not None
    socket_path = os.environ[prefork.ENV_SOCKET]
    for _ in range(1200):  # the imports take seconds (more on a loaded box)
        if os.path.exists(socket_path) or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert os.path.exists(socket_path), log.read_text()
    env = {**os.environ, **{k: "1" for k in prefork.THREAD_ENV}}
    yield env, log
    prefork.stop(proc)
    assert proc.poll() is not None and not os.path.exists(os.path.dirname(socket_path))
    if saved is not None:
        os.environ[prefork.ENV_SOCKET] = saved


def forked_pids(log: Path, needle: str) -> list[int]:
    """Children the server started for commands containing ``needle``."""
    return [
        int(m.group(1)) for m in re.finditer(r"pid (\d+) runs (.*)", log.read_text()) if needle in m.group(2)
    ]


def test_a_job_runs_in_a_forked_child_with_its_streams_status_and_folder(server, tmp_path: Path) -> None:
    env, log = server
    missing = tmp_path / "no-such-judgments.parquet"
    r = subprocess.run(
        [SAFERVLM, "score", "--judgments", missing.name, "--out", "m.json"],
        env=env, cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    # The user error of the stage, on the job's own stderr, with the stage's exit status 2;
    # the relative path was resolved in the job's folder.
    assert r.returncode == 2, r.stderr
    assert f"{missing.name}: file not found" in r.stderr
    assert forked_pids(log, missing.name), log.read_text()
    assert not (tmp_path / "m.json").exists()
    # stdout is the job's too.
    h = subprocess.run([SAFERVLM, "judge", "--help"], env=env, capture_output=True, text=True)
    assert h.returncode == 0 and "--judgments" not in h.stdout and "--responses" in h.stdout
    assert forked_pids(log, "judge --help")


def test_a_forked_job_writes_what_a_fresh_process_writes(server, tmp_path: Path) -> None:
    """The same stage (fixtures of one benchmark: images, parquet, JSON) forked and fresh:
    byte-identical outputs."""
    env, log = server
    outs = {}
    for name, job_env in (("forked", env), ("fresh", {**env, prefork.ENV_SOCKET: ""})):
        out = tmp_path / name
        r = subprocess.run(
            [SAFERVLM, "fixtures", "--out", str(out), "--only", "vlguard", "--n-per-benchmark", "6"],
            env=job_env, capture_output=True, text=True,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        outs[name] = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert forked_pids(log, str(tmp_path / "forked")) and not forked_pids(log, str(tmp_path / "fresh"))
    assert outs["forked"] and outs["forked"] == outs["fresh"]


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"HF_HOME": "/elsewhere"}, "environment read at import time differs: HF_HOME"),
        ({"PYTHONHASHSEED": "123"}, "environment read at import time differs: PYTHONHASHSEED"),
        ({"OMP_NUM_THREADS": None}, "no OMP_NUM_THREADS"),
        ({"LOCAL_RANK": "0", "WORLD_SIZE": "2"}, "a distributed worker (LOCAL_RANK, WORLD_SIZE)"),
    ],
)
def test_a_job_the_server_would_run_differently_runs_in_its_own_process(
    server, tmp_path: Path, change: dict[str, str | None], reason: str
) -> None:
    env, log = server
    job_env = {k: v for k, v in {**env, **change}.items() if v is not None}
    marker = f"refused-{len(log.read_text())}.parquet"
    r = subprocess.run(
        [SAFERVLM, "score", "--judgments", marker, "--out", "m.json"],
        env=job_env, cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2 and f"{marker}: file not found" in r.stderr
    assert reason in log.read_text()
    assert not forked_pids(log, marker)


def test_a_cancelled_job_stops_its_child(server, tmp_path: Path) -> None:
    """Snakemake cancels a job by killing its process: the forked child must not run on.
    (The audit reads ``--config`` from a named pipe nobody writes: the child blocks.)"""
    env, log = server
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    job = subprocess.Popen(
        [SAFERVLM, "audit", "--config", str(fifo), "--out-dir", str(tmp_path / "out")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        pids = forked_pids(log, str(fifo))
        if pids:
            break
        time.sleep(0.05)
    assert pids, log.read_text()
    child = pids[0]
    time.sleep(0.5)
    assert job.poll() is None and _alive(child)  # blocked in the child, job waiting on it
    job.send_signal(signal.SIGTERM)
    job.wait(timeout=10)
    for _ in range(100):
        if not _alive(child):
            break
        time.sleep(0.05)
    assert not _alive(child)


def test_silent_and_malformed_clients_block_no_job(server, tmp_path: Path) -> None:
    """A client that connects and sends nothing, and one that sends garbage without the
    streams: the server drops both (after at most REQUEST_TIMEOUT) and the next job runs."""
    env, log = server
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(env[prefork.ENV_SOCKET])
    garbage = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    garbage.connect(env[prefork.ENV_SOCKET])
    garbage.sendall(b"\xff" * 64)
    try:
        r = subprocess.run(
            [SAFERVLM, "score", "--judgments", "after-silent.parquet", "--out", "m.json"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        silent.close()
        garbage.close()
    assert r.returncode == 2 and "after-silent.parquet: file not found" in r.stderr
    assert forked_pids(log, "after-silent.parquet")
    assert log.read_text().count("prefork: bad request") >= 2


def test_no_server_when_switched_off_and_jobs_run_in_process(tmp_path: Path) -> None:
    saved = os.environ.pop(prefork.ENV_SOCKET, None)
    try:
        assert prefork.start(tmp_path / "log", {**os.environ, prefork.ENV_SWITCH: "0"}) is None
        assert prefork.ENV_SOCKET not in os.environ
        # A socket path that does not exist (the server gone): the job runs in its own process.
        env = {**os.environ, prefork.ENV_SOCKET: str(tmp_path / "gone"), "OMP_NUM_THREADS": "1"}
        r = subprocess.run([SAFERVLM, "score", "--help"], env=env, capture_output=True, text=True)
        assert r.returncode == 0 and "--judgments" in r.stdout
    finally:
        if saved is not None:
            os.environ[prefork.ENV_SOCKET] = saved


def _alive(pid: int) -> bool:
    """Running (not a zombie: the server's children are reaped by the kernel)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
