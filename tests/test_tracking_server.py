"""MLflow over HTTP: a real ``mlflow server`` on 127.0.0.1 (SQLite backend, artifacts proxied
to ``--artifacts-destination``), real stages run by the Snakefile against it, every run read
back with ``MlflowClient``; and a server that is not listening fails fast, naming the URI."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import BIN, ROOT, snakemake

STARTUP_DEADLINE_S = 240  # a cold `mlflow server` takes ~35 s on a busy 2-core box
EXPERIMENT = "server-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path | str]]:
    """A real tracking server; yields its URL and the folder it stores artifacts in."""
    tmp = tmp_path_factory.mktemp("mlflow_server")
    artifacts = tmp / "artifacts"
    url = f"http://127.0.0.1:{_free_port()}"
    cmd = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        url.rsplit(":", 1)[1],
        "--backend-store-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
        "--artifacts-destination",
        str(artifacts),
        "--workers",
        "1",
    ]
    # No GenAI job runner (a pool of huey consumers): not needed to track runs.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = tmp / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:]
                pytest.fail(f"mlflow server not healthy after {STARTUP_DEADLINE_S} s:\n{tail}")
            time.sleep(0.5)
        yield {"url": url, "artifacts": artifacts, "log": log}
    finally:
        # The server forks uvicorn workers: end the whole process group it leads.
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


def _config(tracking_uri: str) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["fixtures"].update(n_per_benchmark=4, n_train_per_source=8)
    cfg["mlflow"].update(tracking_uri=tracking_uri, experiment=EXPERIMENT)
    return cfg


def _config_hash(cfg: dict) -> str:
    """The hash the Snakefile exports: the config as the workflow resolves it (validated with
    defaults set, then the benchmark lists that follow the registry filled in)."""
    from snakemake.utils import validate

    from safervlm.workflow_support import fill_benchmarks, tracking_env

    cfg = json.loads(json.dumps(cfg))
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    fill_benchmarks(cfg)
    return tracking_env(cfg, environ={})["SAFERVLM_CONFIG_HASH"]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def tracked(server: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """`fixtures` and `prepare` (vlguard) run by Snakemake, logging to the server."""
    workdir = tmp_path_factory.mktemp("tracked")
    cfg = _config(str(server["url"]))
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake(
        "-d",
        str(workdir),
        "--cores",
        "1",
        "results/data/bench/vlguard.parquet",
        "--configfile",
        str(workdir / "config.yaml"),
        tracking=True,
    )
    logs = "".join(p.read_text() for p in (workdir / "results" / "logs").rglob("*.log"))
    assert r.returncode == 0, (r.stdout + r.stderr + logs)[-6000:]
    return workdir, cfg


def _runs(url: str) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None, f"no experiment {EXPERIMENT!r} on {url}"
    runs = client.search_runs([exp.experiment_id])
    return {"client": client, "experiment": exp, "runs": {run.data.tags["stage"]: run for run in runs}}


def test_stages_logged_to_the_server_read_back(
    server: dict, tracked: tuple[Path, dict], tmp_path: Path
) -> None:
    workdir, cfg = tracked
    got = _runs(str(server["url"]))
    client, exp, runs = got["client"], got["experiment"], got["runs"]
    assert sorted(runs) == ["fixtures", "prepare"]
    fixtures = workdir / "results" / "fixtures"

    # params and metrics: exactly what the stages computed
    fx = runs["fixtures"]
    assert fx.info.status == "FINISHED"
    assert fx.data.params == {"fixture": "vlguard", "seed": "0", "n": "4"}
    truth = json.loads((fixtures / "vlguard" / "safervlm_truth.json").read_text())
    assert fx.data.metrics["samples"] == len(truth) > 0
    prep = runs["prepare"]
    assert prep.data.params["benchmark"] == "vlguard"
    assert prep.data.params["root"].endswith("results/fixtures/vlguard")
    n = len(pd.read_parquet(workdir / "results" / "data" / "bench" / "vlguard.parquet"))
    assert n > 0 and prep.data.metrics == {"n": float(n), "n_image_only": 0.0}

    # artifacts: listed, downloaded over HTTP byte for byte, stored by the server
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location
    # Only the (emptied) folder of run records the batch logged: no client-side artifact root.
    mlflow_dir = workdir / "results" / "mlflow"
    client_side = [p for p in mlflow_dir.rglob("*") if p.is_file() and p.name != ".lock"]
    assert client_side == [], f"a client-side artifact root was used: {client_side}"
    for run, name, local in (
        (fx, "safervlm_truth.json", fixtures / "vlguard" / "safervlm_truth.json"),
        (prep, "vlguard.summary.json", workdir / "results" / "data" / "bench" / "vlguard.summary.json"),
    ):
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [name]
        dst = tmp_path / run.info.run_id
        dst.mkdir()
        downloaded = Path(client.download_artifacts(run.info.run_id, name, str(dst)))
        assert downloaded.read_bytes() == local.read_bytes()
        stored = Path(server["artifacts"]) / exp.experiment_id / run.info.run_id / "artifacts" / name
        assert stored.read_bytes() == local.read_bytes()

    # tags: the code, config and data state each run started from
    head = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    lock = ROOT / "dvc.lock"
    dvc_md5 = hashlib.md5(lock.read_bytes()).hexdigest() if lock.is_file() else "none"
    config_hash = _config_hash(cfg)
    for stage, run in runs.items():
        tags = run.data.tags
        assert tags["stage"] == stage
        assert tags["git_commit"] == head + ("-dirty" if dirty else "")
        assert tags["config_hash"] == config_hash
        assert tags["dvc_lock_md5"] == dvc_md5


def _not_listening() -> socket.socket:
    """A bound socket that never listens: connections to its port are refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def test_workflow_refuses_to_start_when_the_server_is_down(tmp_path: Path) -> None:
    with _not_listening() as s:
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(_config(url)))
        start = time.monotonic()
        config = str(tmp_path / "config.yaml")
        target = "results/fixtures/vlguard"
        r = snakemake("-d", str(tmp_path), "--cores", "1", target, "--configfile", config, tracking=True)
        took = time.monotonic() - start
        # A dry run computes nothing and asks nothing of the server.
        dry = snakemake("-d", str(tmp_path), "-n", target, "--configfile", config, tracking=True)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    assert r.returncode != 0
    assert f"MLflow tracking server at {url} does not answer" in r.stdout + r.stderr
    assert not (tmp_path / "results" / "fixtures").exists(), "a job ran although tracking could not work"
    assert took < 120, f"took {took:.0f} s"


def test_stage_fails_naming_the_uri_when_the_server_is_down(tmp_path: Path) -> None:
    """Run directly (no Snakefile check), a stage writes its outputs, then fails on tracking
    within the bounded retries, exit 2 and the URI in the message."""
    out = tmp_path / "fixtures"
    with _not_listening() as s:
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        env = {
            **os.environ,
            "SAFERVLM_MLFLOW": "1",
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        }
        cmd = [sys.executable, "-m", "safervlm.cli", "fixtures", "--out", str(out)]
        cmd += ["--n-per-benchmark", "4", "--n-train-per-source", "4"]
        start = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        took = time.monotonic() - start
    assert r.returncode == 2, r.stderr[-3000:]
    assert f"safervlm fixtures: error: MLflow tracking at {url} failed for stage 'fixtures'" in r.stderr
    assert (out / "MANIFEST.json").is_file(), "the stage's outputs were lost"
    assert took < 90, f"took {took:.0f} s"
