"""The curation DAG in a real Snakemake run: changing only the QI box reruns qi_select and
what follows (sft), never qi_score; the same seed rebuilds a byte-identical qi_safe.parquet."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, snakemake

SFT = "results/checkpoints/sft"
QI_SAFE = "results/data/qi_safe.parquet"
QI_SCORES = "results/data/qi_scores.parquet"

pytestmark = pytest.mark.slow  # builds the DAG up to SFT for real (about a minute on 2 cores)


def small_config() -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["fixtures"].update(n_per_benchmark=4, n_train_per_source=12)
    cfg["curate"].update(k_samples=2, max_new_tokens=8, min_instability=0.0, target_size=20)
    cfg["sft"].update(epochs=1)
    return cfg


def smk(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return snakemake("-d", str(workdir), "--cores", "2", *args, "--configfile", str(workdir / "config.yaml"))


def write_config(workdir: Path, cfg: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def planned(workdir: Path, target: str) -> dict[str, int]:
    """Jobs per rule that a dry run plans (Snakemake's "Job stats" table)."""
    r = smk(workdir, "-n", target)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    out = r.stdout + r.stderr
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:", 1)[1].split("Reasons:", 1)[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m[0] != "total"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("curate_dag")
    write_config(workdir, small_config())
    r = smk(workdir, SFT)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    assert planned(workdir, SFT) == {}
    return workdir, sha256(workdir / QI_SAFE)


@pytest.mark.parametrize(
    "change",
    [
        {"quality_range": [-0.9, 0.9]},
        {"min_instability": 0.01},
        {"target_size": 15},
        {"allocation": "equal"},
    ],
)
def test_box_change_reruns_qi_select_and_sft_only(built: tuple[Path, str], change: dict) -> None:
    workdir, _ = built
    cfg = small_config()
    cfg["curate"].update(change)
    write_config(workdir, cfg)
    try:
        assert planned(workdir, SFT) == {"qi_select": 1, "sft": 1}
        r = smk(workdir, "--list-params-changes")
        changed = r.stdout.split()
        assert str(QI_SAFE) in changed and str(QI_SCORES) not in changed
    finally:
        write_config(workdir, small_config())


def test_sampling_change_does_rerun_qi_score(built: tuple[Path, str]) -> None:
    """The control: a key qi_score uses reruns it (so the test above can fail)."""
    workdir, _ = built
    cfg = small_config()
    cfg["curate"]["k_samples"] = 3
    write_config(workdir, cfg)
    try:
        assert planned(workdir, SFT) == {"qi_score": 1, "qi_select": 1, "sft": 1}
    finally:
        write_config(workdir, small_config())


def test_rerun_after_box_change_keeps_scores_and_restores_bytes(built: tuple[Path, str]) -> None:
    workdir, first_sha = built
    scores_before = (sha256(workdir / QI_SCORES), (workdir / QI_SCORES).stat().st_mtime_ns)
    cfg = small_config()
    cfg["curate"]["target_size"] = 10
    write_config(workdir, cfg)
    r = smk(workdir, QI_SAFE)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    ran = re.findall(r"\(Rule: (\w+)\)", r.stdout + r.stderr)
    assert ran == ["qi_select"]
    assert sha256(workdir / QI_SAFE) != first_sha
    assert (sha256(workdir / QI_SCORES), (workdir / QI_SCORES).stat().st_mtime_ns) == scores_before
    # Back to the original box: the same seed gives the same bytes as the first build.
    write_config(workdir, small_config())
    r = smk(workdir, QI_SAFE)
    assert r.returncode == 0 and re.findall(r"\(Rule: (\w+)\)", r.stdout + r.stderr) == ["qi_select"]
    assert sha256(workdir / QI_SAFE) == first_sha
