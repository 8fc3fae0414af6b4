"""The run layout along seeds and judges (safervlm.layout), shared by the DAG and the audit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from safervlm.layout import judge_suffix, judged_name, run_judges, run_seeds, seed_dir
from safervlm.report.audit import AuditInputs, inputs_from_config

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_one_seed_and_one_judge_keep_the_plain_layout() -> None:
    cfg = {"seed": 7, "seeds": [], "judge": {"name": "reference", "params": {"x": 1}}, "eval": {}}
    assert run_seeds(cfg) == [7]
    assert run_judges(cfg) == {"reference": {"name": "reference", "params": {"x": 1}}}
    assert seed_dir("results", run_seeds(cfg), "{seed}") == "results"
    assert judge_suffix(run_judges(cfg), "{judge}") == ""
    assert judged_name("judgments.parquet", run_judges(cfg), "reference") == "judgments.parquet"
    # A config file as written (no defaults filled in) reads the same way.
    assert run_seeds({}) == [0] and list(run_judges({})) == ["reference"]


def test_several_seeds_and_judges_get_their_own_files() -> None:
    cfg = {"seeds": [3, 1], "eval": {"judges": {"ref": {"name": "reference"}, "http": {"name": "http"}}}}
    seeds, judges = run_seeds(cfg), run_judges(cfg)
    assert seeds == [3, 1] and list(judges) == ["ref", "http"]
    assert seed_dir("r", seeds, seeds[0]) == "r/seeds/3"
    assert seed_dir("r", seeds, "{seed}") == "r/seeds/{seed}"
    assert judged_name("metrics.json", judges, "http") == "metrics.http.json"
    assert judged_name("judgments.parquet", judges, "{judge}") == "judgments.{judge}.parquet"


def test_the_audit_reads_the_main_run_of_a_multi_seed_multi_judge_config(tmp_path: Path) -> None:
    """The audit's default is the first seed's folder and the first judge's file; a judgments
    file named by the caller wins (auditing another judge on purpose)."""
    (tmp_path / "config").mkdir()
    cfg = tmp_path / "config" / "c.yaml"
    cfg.write_text("results: out\nseeds: [5, 6]\neval: {judges: {b: {name: reference}, a: {name: http}}}\n")
    got = inputs_from_config(cfg, AuditInputs())
    assert (got.results, got.judgments) == ("out/seeds/5", "judgments.b.parquet")
    other = inputs_from_config(cfg, AuditInputs(judgments="judgments.a.parquet"))
    assert other.judgments == "judgments.a.parquet"


def test_the_dag_builds_its_paths_from_the_same_layout(tmp_path: Path) -> None:
    """The judge and score jobs of a 2-seed x 2-judge config sit where safervlm.layout says
    (a dry run of the real Snakefile; its plan lists every job's output)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "seeds: [0, 1]\neval: {models: [sft], benchmarks: [vlguard], benchmark_attacks: {vlguard: [none]},"
        " pairs: [], judges: {r1: {name: reference}, r2: {name: reference}}}\n"
    )
    out = subprocess.run(
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n", "--cores", "1",
         "all", "--configfile", str(cfg)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    seeds, judges = run_seeds({"seeds": [0, 1]}), run_judges({"eval": {"judges": {"r1": {}, "r2": {}}}})
    for seed in seeds:
        for label in judges:
            name = judged_name("metrics.json", judges, label)
            path = f"{seed_dir('results', seeds, seed)}/eval/sft/vlguard/{name}"
            assert f"output: {path}" in out.stdout, path
