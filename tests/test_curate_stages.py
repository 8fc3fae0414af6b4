"""The curation stages on the tiny model: one batched generate per batch, every answer kept,
byte-identical QI-Safe for a seed (hash in MLflow), clear errors through the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from safervlm.benchmarks import list_benchmarks
from safervlm.config import DecontaminateParams, PoolParams, QIScoreParams
from safervlm.curate.scoring import sample_answers
from safervlm.embedded.fixtures import build_fixtures
from safervlm.schema import SCORE_COLUMNS
from safervlm.stages.decontaminate import decontaminate_stage
from safervlm.stages.pool import pool_stage
from safervlm.stages.prepare import prepare
from safervlm.stages.qi_score import qi_score_stage

TAXONOMY = ["benign", "cybercrime", "fraud", "privacy", "property_crime", "theft", "violence"]
K = 3
BOX = {"quality_range": [-1.0, 1.0], "min_instability": 0.0, "target_size": 12, "allocation": "proportional"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """fixtures -> prepare (every benchmark) -> pool -> decontaminate -> qi_score, in-process."""
    d = tmp_path_factory.mktemp("curate")
    fx = d / "fixtures"
    build_fixtures(fx, seed=0, n_per_benchmark=4, n_train_per_source=10)
    for b in list_benchmarks():
        prepare(b, str(fx / b), str(d / "bench" / f"{b}.parquet"))
    dirs = {"beavertails_v": "beavertails_v", "spa_vl": "spa_vl", "vlguard_train": "vlguard"}
    sources = {n: {"root": str(fx / "train" / p)} for n, p in dirs.items()}
    pool_stage(sources, str(d / "pool.parquet"), PoolParams(taxonomy=TAXONOMY), seed=0)
    evals = sorted(str(p) for p in (d / "bench").glob("*.parquet"))
    decontaminate_stage(
        str(d / "pool.parquet"), evals, str(d / "clean.parquet"), str(d / "decon.json"), DecontaminateParams()
    )
    for name in ("scores", "scores2"):
        qi_score_stage(
            str(tiny_model_dir),
            str(d / "clean.parquet"),
            str(d / f"{name}.parquet"),
            str(d / f"{name}.samples.parquet"),
            QIScoreParams(k_samples=K, max_new_tokens=12, batch_size=8),
            judge_name="reference",
            judge_params={},
            reward="structured",
            reward_params={},
            seed=7,
        )
    return d


def test_one_batched_generate_per_batch(tiny_model_dir: Path, data: Path):
    from safervlm.models.generation import HFGenerator

    gen = HFGenerator(str(tiny_model_dir))
    calls: list[dict[str, Any]] = []
    real = gen.model.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append({"n_prompts": kwargs["input_ids"].shape[0], **kwargs})
        return real(*args, **kwargs)

    gen.model.generate = spy  # type: ignore[method-assign]
    pool = pd.read_parquet(data / "clean.parquet").head(10)
    answers = sample_answers(gen, pool, QIScoreParams(k_samples=K, max_new_tokens=6, batch_size=4), seed=0)
    assert [len(a) for a in answers] == [K] * 10
    assert [c["n_prompts"] for c in calls] == [4, 4, 2]  # ceil(10 / 4) calls, not K per prompt
    assert all(c["num_return_sequences"] == K and c["do_sample"] for c in calls)


def test_qi_score_keeps_every_answer_and_is_deterministic(data: Path):
    clean = pd.read_parquet(data / "clean.parquet")
    samples = pd.read_parquet(data / "scores.samples.parquet")
    scores = pd.read_parquet(data / "scores.parquet")
    assert len(samples) == K * len(clean) and len(scores) == len(clean)
    assert all(sorted(g) == list(range(K)) for _, g in samples.groupby("id")["sample_idx"])
    assert set(SCORE_COLUMNS) <= set(samples.columns)
    assert {"response", "reasoning", "answer", "judge_prompt", "judge_raw", "score"} <= set(samples.columns)
    assert samples["score"].notna().all() and samples["response"].str.len().gt(0).any()
    by_id = samples.groupby("id")["score"]
    check = scores.set_index("id")
    pd.testing.assert_series_equal(check["quality"], by_id.mean().reindex(check.index), check_names=False)
    pd.testing.assert_series_equal(
        check["instability"], by_id.std(ddof=0).reindex(check.index), check_names=False
    )
    assert sha256(data / "scores.samples.parquet") == sha256(data / "scores2.samples.parquet")
    assert sha256(data / "scores.parquet") == sha256(data / "scores2.parquet")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safervlm.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SAFERVLM_MLFLOW": "0", **(env or {})},
    )


def qi_select(
    data: Path, out: Path, box: dict[str, Any], seed: int = 0, **env: str
) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    return run_cli(
        "qi-select",
        "--scores",
        str(data / "scores.parquet"),
        "--pool",
        str(data / "clean.parquet"),
        "--pool-summary",
        str(data / "pool.summary.json"),
        "--decontamination",
        str(data / "decon.json"),
        "--out",
        str(out / "qi_safe.parquet"),
        "--datasheet",
        str(out / "sheet.md"),
        "--datasheet-json",
        str(out / "sheet.json"),
        "--figure",
        str(out / "sheet.png"),
        "--params",
        json.dumps(box),
        "--seed",
        str(seed),
        env=env,
    )


def test_qi_select_is_byte_identical_and_logs_its_hash(data: Path, tmp_path: Path):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {
        "SAFERVLM_MLFLOW": "1",
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_EXPERIMENT_NAME": "qi",
        "SAFERVLM_MLFLOW_ARTIFACTS": str(tmp_path / "artifacts"),
    }
    hashes = []
    for run in ("a", "b"):
        r = qi_select(data, tmp_path / run, BOX, **env)
        assert r.returncode == 0, r.stderr
        hashes.append(sha256(tmp_path / run / "qi_safe.parquet"))
    assert hashes[0] == hashes[1]
    sel = pd.read_parquet(tmp_path / "a" / "qi_safe.parquet")
    assert len(sel) == BOX["target_size"] and sel["id"].is_monotonic_increasing
    sheet = json.loads((tmp_path / "a" / "sheet.json").read_text())
    assert sheet["qi_safe_sha256"] == hashes[0] and sheet["qi"]["n_selected"] == len(sel)
    assert f"sha256: `{hashes[0]}`" in (tmp_path / "a" / "sheet.md").read_text()
    assert (tmp_path / "a" / "sheet.png").read_bytes()[:4] == b"\x89PNG"
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name("qi")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], filter_string="tags.stage = 'qi_select'")
    assert len(runs) == 2
    assert {r.data.params["qi_safe_sha256"] for r in runs} == {hashes[0]}
    assert {r.data.metrics["n_selected"] for r in runs} == {float(len(sel))}


def test_qi_select_empty_box_fails_naming_the_cause(data: Path, tmp_path: Path):
    r = qi_select(data, tmp_path, {**BOX, "quality_range": [5.0, 6.0]})
    assert r.returncode == 2
    assert str(data / "scores.parquet") in r.stderr and "selects none of" in r.stderr
    assert "widen curate.quality_range" in r.stderr
    assert not list(tmp_path.iterdir())  # nothing written, not even temporaries


def test_decontaminate_cli_errors(data: Path, tmp_path: Path):
    bench = data / "bench" / "vlguard.parquet"
    evals = pd.read_parquet(bench)
    # A pool that is nothing but evaluation items: every row goes, and that is an error.
    only_dups = tmp_path / "dups.parquet"
    evals.assign(source="x").to_parquet(only_dups)
    out = tmp_path / "out" / "clean.parquet"
    args = ["--eval", str(bench), "--out", str(out), "--report", str(tmp_path / "out" / "r.json")]
    r = run_cli("decontaminate", "--pool", str(only_dups), *args)
    assert r.returncode == 2 and "removed all" in r.stderr and str(only_dups) in r.stderr
    # Undecodable image bytes in the pool: the file and the record are named.
    pool = pd.read_parquet(data / "clean.parquet")
    pool.loc[2, "image"] = b"\x00\x01 not an image"
    broken = tmp_path / "broken.parquet"
    pool.to_parquet(broken)
    r = run_cli("decontaminate", "--pool", str(broken), *args)
    assert r.returncode == 2
    assert f"{broken} [record {pool.loc[2, 'id']}]: cannot decode image bytes" in r.stderr
    # A pool without the question column.
    nocol = tmp_path / "nocol.parquet"
    pool.drop(columns=["question"]).head(3).to_parquet(nocol)
    r = run_cli("decontaminate", "--pool", str(nocol), *args)
    assert r.returncode == 2 and "missing required columns ['question']" in r.stderr
    assert not out.parent.exists() or not list(out.parent.iterdir())
