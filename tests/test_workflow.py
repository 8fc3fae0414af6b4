"""Workflow checks: formatting, lint, dry runs with each profile, config validation."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import BIN, ROOT, RULES, snakemake


def smk(*args: str) -> subprocess.CompletedProcess[str]:
    return snakemake(*args)


def test_snakefmt_clean() -> None:
    r = subprocess.run([str(BIN / "snakefmt"), "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_ruff_clean() -> None:
    r = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_snakemake_lint_clean(tmp_path: Path) -> None:
    r = smk("--lint", "-d", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Lints for" not in r.stdout + r.stderr


@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_dry_run_with_each_profile(profile: str, tmp_path: Path) -> None:
    r = smk(
        "-n",
        "--profile",
        str(ROOT / "workflow" / "profiles" / profile),
        "-d",
        str(tmp_path),
        "--configfile",
        str(ROOT / "config" / "config.yaml"),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    for rule in RULES:
        assert re.search(rf"^{rule}\s+\d+", out, re.M), f"rule {rule} missing from the plan"


def test_paper_config_fails_naming_missing_paths(tmp_path: Path) -> None:
    r = smk("-n", "-d", str(tmp_path), "--configfile", str(ROOT / "config" / "paper.yaml"))
    assert r.returncode != 0
    err = r.stdout + r.stderr
    assert "missing input paths" in err
    assert "base_model.path: /models/Qwen2.5-VL-3B-Instruct" in err
    assert "benchmarks.vlguard.root: /data/benchmarks/VLGuard" in err
    assert "Traceback" not in err or "WorkflowError" in err


def test_config_value_of_wrong_type_is_rejected(tmp_path: Path) -> None:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["sft"]["epochs"] = "ten"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    # A valid config's validation is cached in .snakemake/; another config is validated again.
    assert smk("-n", "-d", str(tmp_path)).returncode == 0
    assert (tmp_path / ".snakemake" / "safervlm-config.json").is_file()
    r = smk("-n", "-d", str(tmp_path), "--configfile", str(bad))
    assert r.returncode != 0
    err = r.stdout + r.stderr
    assert "'ten' is not of type 'number'" in err and "epochs" in err


def test_every_schema_key_has_description_and_default() -> None:
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())

    def walk(props: dict, path: str) -> None:
        for key, spec in props.items():
            assert "description" in spec, f"{path}{key} has no description"
            assert "default" in spec, f"{path}{key} has no default"
            if "properties" in spec:
                walk(spec["properties"], f"{path}{key}.")

    walk(schema["properties"], "")


def _edges(dot: str) -> set[tuple[str, str]]:
    """Rule-name edges of a ``snakemake --rulegraph`` dot graph (node ids are not stable)."""
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, re.M))
    return {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M)}


def test_docs_rulegraph_is_current() -> None:
    """The docs' rule graph (docs/assets/rulegraph.dot, drawn as rulegraph.svg) is the Snakefile's."""
    r = smk("--rulegraph", "-d", str(ROOT))
    assert r.returncode == 0, r.stderr
    dot = (ROOT / "docs" / "assets" / "rulegraph.dot").read_text()
    assert _edges(r.stdout) == _edges(dot), "docs' rule graph is stale: `make rulegraph`"
    assert len(_edges(dot)) >= 15
    svg = (ROOT / "docs" / "assets" / "rulegraph.svg").read_text()
    drawn = set(re.findall(r"<text[^>]*>(\w+)</text>", svg))
    stale = "rulegraph.svg is stale: `make rulegraph`"
    assert drawn == {rule for edge in _edges(dot) for rule in edge}, stale
    assert svg.count('class="edge"') == len(_edges(dot)), stale


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_results_are_not_tracked() -> None:
    r = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True)
    assert r.stdout.strip() == ""


def test_mypy_clean() -> None:
    r = subprocess.run([str(BIN / "mypy")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
