"""Bad input through the CLI: a clear message naming file and record, exit 2, no output left."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import RULES

from safervlm.embedded.fixtures import build_fixtures


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safervlm.cli", *args],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "SAFERVLM_MLFLOW": "0"},
    )


@pytest.fixture(scope="module")
def fixtures_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fx") / "fixtures"
    build_fixtures(out, seed=0, n_per_benchmark=6, n_train_per_source=8)
    return out


def _no_leftovers(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], "temp files left"


def test_prepare_ok_writes_parquet_and_summary(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "vlguard.parquet"
    r = run_cli(
        "prepare", "--benchmark", "vlguard", "--root", str(fixtures_dir / "vlguard"), "--out", str(out)
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["n"] > 0 and summary["benchmark"] == "vlguard"


def test_unknown_benchmark_lists_known_names(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    r = run_cli("prepare", "--benchmark", "nope", "--root", str(tmp_path), "--out", str(out))
    assert r.returncode == 2
    assert "unknown benchmark 'nope'" in r.stderr and "vlguard" in r.stderr
    _no_leftovers(out)


def test_missing_benchmark_folder_names_the_path(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    missing = tmp_path / "no" / "such" / "VLSBench"
    r = run_cli("prepare", "--benchmark", "vlsbench", "--root", str(missing), "--out", str(out))
    assert r.returncode == 2
    assert str(missing) in r.stderr
    _no_leftovers(out)


def test_record_missing_field_names_file_and_record(fixtures_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "vlsbench"
    subprocess.run(["cp", "-r", str(fixtures_dir / "vlsbench"), str(root)], check=True)
    records = json.loads((root / "data.json").read_text())
    del records[2]["instruction"]
    (root / "data.json").write_text(json.dumps(records))
    out = tmp_path / "vlsbench.parquet"
    r = run_cli("prepare", "--benchmark", "vlsbench", "--root", str(root), "--out", str(out))
    assert r.returncode == 2
    assert "data.json" in r.stderr and "record 2" in r.stderr and "instruction" in r.stderr
    _no_leftovers(out)


def test_corrupt_image_names_the_image(fixtures_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "siuo"
    subprocess.run(["cp", "-r", str(fixtures_dir / "siuo"), str(root)], check=True)
    first = json.loads((root / "siuo_gen.json").read_text())[0]["image"]
    (root / "images" / first).write_bytes(b"not an image")
    out = tmp_path / "siuo.parquet"
    r = run_cli("prepare", "--benchmark", "siuo", "--root", str(root), "--out", str(out))
    assert r.returncode == 2
    assert first in r.stderr
    _no_leftovers(out)


def test_wrong_param_type_is_rejected_before_work(tmp_path: Path) -> None:
    out = tmp_path / "sft"
    r = run_cli(
        "sft",
        "--model",
        str(tmp_path),
        "--data",
        str(tmp_path / "d.parquet"),
        "--out",
        str(out),
        "--params",
        '{"epochs": "ten"}',
    )
    assert r.returncode == 2
    assert "'sft'" in r.stderr and "'epochs'" in r.stderr and "'ten'" in r.stderr
    _no_leftovers(out)


def test_every_stage_has_help() -> None:
    from safervlm.cli import build_parser

    parser = build_parser()
    stages = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {rule.replace("_", "-") for rule in RULES} <= set(stages)
    for name in stages:
        r = run_cli(name, "--help")
        assert r.returncode == 0 and "usage" in r.stdout
