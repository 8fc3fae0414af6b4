"""End to end: the whole DAG on a reduced embedded default, then a no-op rerun and a
targeted rerun after a params change. Slow (a few minutes on 2 cores)."""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from helpers import ROOT, RULES, snakemake, snakemake_command
from PIL import Image

BENCHES = ["vlguard", "mssbench", "figstep"]

pytestmark = pytest.mark.slow


def reduced_config() -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["fixtures"].update(n_per_benchmark=8, n_train_per_source=60)
    cfg["curate"].update(k_samples=2, max_new_tokens=16, min_instability=0.0, target_size=None)
    cfg["sft"].update(epochs=3)
    cfg["grpo"].update(max_steps=2, batch_size=8, max_completion_length=24)
    cfg["generate"].update(max_new_tokens=40)
    cfg["eval"].update(benchmarks=BENCHES, n_bootstrap=50)
    cfg["mlflow"]["experiment"] = "e2e"
    return cfg


def smk(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # --configfile last: it takes several values. Tracking on: a test checks the MLflow runs.
    return snakemake(
        "-d", str(workdir), "--cores", "2", *args, "--configfile", str(workdir / "config.yaml"), tracking=True
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("e2e")
    (workdir / "config.yaml").write_text(yaml.safe_dump(reduced_config()))
    r = smk(workdir, "all")
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    return workdir


def test_report_table_and_figure(run_dir: Path) -> None:
    table = (run_dir / "results/report/table.md").read_text()
    for bench in BENCHES:
        assert bench in table
    for model in ("base", "sft", "grpo_plain", "grpo"):
        assert f"{model} safety" in table
    csv = pd.read_csv(run_dir / "results/report/table.csv")
    assert len(csv) == len(BENCHES) + 1  # + average
    with Image.open(run_dir / "results/report/safety_helpfulness.png") as img:
        assert img.size[0] > 100 and img.size[1] > 100
    avg = csv.set_index(csv.columns[0]).loc["average"]
    # The tiny model really learns: SFT is safer than the untrained base without refusing
    # everything (helpfulness also rises).
    assert avg["sft/safety"] > avg["base/safety"] + 0.2
    assert avg["sft/helpfulness"] > avg["base/helpfulness"]


def test_safemlrm_analysis_in_the_report(run_dir: Path) -> None:
    report = run_dir / "results/report"
    asr = _flat((report / "asr.md").read_text())
    assert asr.startswith("# Attack success rate (SafeMLRM)\n")  # title, then the caption with the scope
    header = next(line for line in asr.splitlines() if line.startswith("| benchmark"))
    assert header.startswith("| benchmark | attack | base R | base A | base F | sft R")
    for bench in BENCHES:
        assert f"| {bench} | none |" in asr
    for attack in ("vanilla", "typo", "sd_typo", "figstep"):  # the embedded default attacks vlguard
        assert f"| vlguard | {attack} |" in asr
    assert "| (mean) | none |" in asr
    tax = pd.read_csv(report / "tax.csv")
    pairs = {("sft", "base"), ("grpo_plain", "base"), ("grpo", "base")}
    assert pairs == set(zip(tax.reasoning_model, tax.base_model, strict=True))
    rates = pd.read_csv(report / "rates.csv")
    assert set(rates["metric"]) >= {"safety", "helpfulness", "official", "asr_reasoning", "asr_answer",
                                    "asr_full", "self_correction"}  # fmt: skip
    top = rates[(rates.category == "(mean)") & (rates.attack == "none") & (rates.benchmark != "(mean)")]
    models = ["base", "grpo", "grpo_plain", "sft"]
    assert top.groupby("model")["benchmark"].nunique().to_dict() == dict.fromkeys(models, 3)
    defined = top.dropna(subset=["value"])  # e.g. no self-correction without unsafe reasoning
    assert len(defined) >= 3 * 3 * 5
    assert (defined["ci_low"] <= defined["value"] + 1e-9).all()
    assert (defined["value"] <= defined["ci_high"] + 1e-9).all()
    for name in ("blind_spots.png", "safety_vs_helpfulness.png"):
        with Image.open(report / name) as img:
            assert img.size[0] > 100
    official = _flat((report / "official.md").read_text())
    assert "| vlguard | asr_keywords | none |" in official and "| figstep | asr | none |" in official
    attacked = pd.read_parquet(run_dir / "results/eval/sft/vlguard/judgments.parquet")
    plain = attacked[~attacked["id"].str.contains("::")]
    # every should-refuse sample once per attack; benign samples only as given
    assert attacked["id"].str.endswith("::figstep").sum() == plain["should_refuse"].astype(bool).sum()


def test_per_sample_records_between_stages(run_dir: Path) -> None:
    j = pd.read_parquet(run_dir / "results/eval/sft/vlguard/judgments.parquet")
    assert {"judge_prompt", "judge_raw", "safety", "reasoning_safety", "answer_safety"} <= set(j.columns)
    assert len(j) == len(pd.read_parquet(run_dir / "results/data/attack/vlguard.parquet"))
    assert (~j["id"].str.contains("::")).sum() == len(
        pd.read_parquet(run_dir / "results/data/bench/vlguard.parquet")
    )
    metrics = json.loads((run_dir / "results/eval/sft/vlguard/metrics.json").read_text())
    assert metrics["model"] == "sft"
    assert (run_dir / "results/checkpoints/grpo/model.safetensors").exists()
    assert (run_dir / "results/data/qi_safe.datasheet.md").read_text().startswith("#")


def test_every_stage_logged_to_mlflow(run_dir: Path) -> None:
    db = run_dir / "results/mlflow/mlflow.db"
    con = sqlite3.connect(db)
    rows = con.execute(
        "select t.value, count(*) from tags t join runs r on r.run_uuid = t.run_uuid "
        "where t.key = 'stage' group by t.value"
    ).fetchall()
    stages = dict(rows)
    for stage in RULES:
        assert stage in stages, f"no MLflow run for {stage}: {stages}"
    assert stages["generate"] == 4 * len(BENCHES)  # base, sft, grpo_plain, grpo
    tags = dict(
        con.execute("select key, value from tags where key in ('git_commit', 'config_hash')").fetchall()
    )
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", tags["git_commit"]), tags["git_commit"]
    assert len(tags["config_hash"]) == 12
    n_step_metrics = con.execute(
        "select count(*) from metrics m join tags t on t.run_uuid = m.run_uuid "
        "where t.key = 'stage' and t.value = 'sft' and m.key = 'loss'"
    ).fetchone()[0]
    assert n_step_metrics >= 2  # per-step training loss


def code_records(workdir: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(output, rule, recorded ``code`` param) of every job in ``.snakemake/metadata``: what
    Snakemake's params trigger compares on the next run."""
    root = workdir / ".snakemake" / "metadata"
    out = []
    for f in root.rglob("*"):
        if not f.is_file():
            continue
        meta = json.loads(f.read_text())
        # Long ids are split into folders named "@<chunk>" (urlsafe base64 of the output path).
        encoded = "".join(part.removeprefix("@") for part in f.relative_to(root).parts)
        target = base64.urlsafe_b64decode(encoded.encode()).decode()
        for param in meta.get("params") or []:
            try:
                value = ast.literal_eval(param)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, dict) and value and all(str(k).endswith(".py") for k in value):
                out.append((target, meta["rule"], value))
    return out


def tracked_code(workdir: Path) -> dict[str, set[str]]:
    """Rule -> the package modules in its jobs' recorded ``code`` params."""
    out: dict[str, set[str]] = {}
    for _, rule, code in code_records(workdir):
        out.setdefault(rule, set()).update(code)
    return out


def test_tracked_code_equals_what_each_stage_loaded(run_dir: Path) -> None:
    """Editing a module reruns exactly the rules whose jobs ran it: each rule's tracked code
    equals the modules its processes really loaded (MLflow tag ``code_modules``)."""
    tracked = tracked_code(run_dir)
    con = sqlite3.connect(run_dir / "results/mlflow/mlflow.db")
    rows = con.execute(
        "select s.value, m.value from tags s join tags m on m.run_uuid = s.run_uuid "
        "where s.key = 'stage' and m.key = 'code_modules'"
    ).fetchall()
    loaded: dict[str, set[str]] = {}
    for stage, modules in rows:
        loaded.setdefault(stage, set()).update(modules.split(","))
    assert set(loaded) >= set(RULES), sorted(set(RULES) - set(loaded))
    for rule in RULES:
        assert tracked[rule] == loaded[rule], (
            f"rule {rule}: tracked but not loaded {sorted(tracked[rule] - loaded[rule])}, "
            f"loaded but not tracked {sorted(loaded[rule] - tracked[rule])}"
        )


def test_jobs_ran_in_the_pre_forked_interpreter(run_dir: Path) -> None:
    """The local run forked its jobs from one interpreter that imported torch, pandas …
    once (safervlm.prefork): none was refused, every score job (late in the DAG, long after
    the server is up) was forked, and so were generate jobs; the pinned numbers the other
    tests check come from them."""
    log = (run_dir / ".snakemake" / "safervlm-prefork.log").read_text()
    assert "listening on" in log and "refused" not in log, log[-3000:]
    scores = list((run_dir / "results" / "eval").glob("*/*/metrics.json"))
    assert scores and log.count("runs safervlm score ") == len(scores), log[-3000:]
    assert log.count("runs safervlm generate ") >= 1, log[-3000:]


def test_rerun_does_nothing(run_dir: Path) -> None:
    r = smk(run_dir, "all")
    assert r.returncode == 0
    assert "Nothing to be done" in r.stdout + r.stderr


@pytest.fixture(scope="module")
def moved_tree(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The finished run and a copy of the workflow and package, together in another folder:
    a colleague's copy of the checkout (mtimes kept, as ``cp -a`` / rsync / ``dvc pull``
    with the restore script do)."""
    tree = tmp_path_factory.mktemp("moved") / "checkout"
    shutil.copytree(run_dir, tree, symlinks=True)
    for name in ("Snakefile", "rules", "workflow", "src", "config", "envs", "dvc.yaml", "dvc.lock"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, tree / name)
    return tree


def moved_plan(tree: Path, *args: str) -> dict[str, int]:
    """Rule -> jobs a dry run of the moved tree plans (empty: nothing to be done)."""
    cmd, env = snakemake_command("-n", "--quiet", "rules", *args, "--configfile", str(tree / "config.yaml"))
    cmd[cmd.index("-s") + 1] = str(tree / "Snakefile")
    r = subprocess.run([*cmd, "-d", str(tree)], capture_output=True, text=True, env=env, cwd=tree)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    out = r.stdout + r.stderr
    if "Job stats:" not in out:
        assert "Nothing to be done" in out, out[-3000:]
        return {}
    table = out.split("Job stats:")[1].split("total")[0]
    rows = {m[1]: m[2] for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}
    return {rule: int(n) for rule, n in rows.items() if rule not in ("total", "all")}


def test_a_moved_copy_of_the_finished_tree_plans_nothing(moved_tree: Path) -> None:
    assert moved_plan(moved_tree) == {}


def test_editing_a_module_reruns_exactly_the_jobs_that_ran_it(moved_tree: Path) -> None:
    """For every package module: append a comment, dry-run, and compare the plan with forcing
    exactly the jobs whose recorded ``code`` holds that module (and what depends on them).
    Writes the rerun table of docs/concepts/reruns.md (rule sets only: the e2e config has fewer
    benchmarks)."""
    pkg = moved_tree / "src" / "safervlm"
    outputs: dict[str, list[str]] = {}  # module -> outputs of the jobs that ran it
    for target, _, code in code_records(moved_tree):
        for module in code:
            outputs.setdefault(module, []).append(target)
    modules = sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*.py"))
    groups = sorted({tuple(sorted(outputs.get(m, []))) for m in modules})
    # Two copies of the tree, one dry run in each at a time (2 cores): each edit is alone in its tree.
    second = moved_tree.parent / "checkout2"
    shutil.copytree(moved_tree, second, symlinks=True)
    trees = [moved_tree, second]

    def expected(i: int, targets: tuple[str, ...]) -> dict[str, int]:
        return moved_plan(trees[i % 2], "--forcerun", *targets) if targets else {}

    def edited(i: int, module: str) -> dict[str, int]:
        path = trees[i % 2] / "src" / "safervlm" / module
        text = path.read_text()
        path.write_text(text + "\n# an edit\n")
        try:
            return moved_plan(trees[i % 2])
        finally:
            path.write_text(text)

    def in_pairs(fn: Any, items: list[Any]) -> list[Any]:
        with ThreadPoolExecutor(2) as pool:
            return [f.result() for f in [pool.submit(run_all, fn, items[k::2], k) for k in (0, 1)]]

    def run_all(fn: Any, items: list[Any], k: int) -> list[tuple[Any, Any]]:
        return [(item, fn(k, item)) for item in items]

    expected_by_targets = {t: plan for part in in_pairs(expected, groups) for t, plan in part}
    table: dict[tuple[str, ...], list[str]] = {}
    for module, planned in sorted(pair for part in in_pairs(edited, modules) for pair in part):
        assert planned == expected_by_targets[tuple(sorted(outputs.get(module, [])))], f"editing {module}"
        table.setdefault(tuple(sorted(planned)), []).append(module)
    assert moved_plan(moved_tree) == {}
    rows = [
        f"| {', '.join(f'`{m}`' for m in modules)} | {', '.join(rules) if rules else '(nothing)'} |"
        for rules, modules in sorted(table.items(), key=lambda kv: (len(kv[0]), kv[0]))
    ]
    text = (
        "| module edited | rules that rerun (with their dependants) |\n|---|---|\n" + "\n".join(rows) + "\n"
    )
    (ROOT / "bench" / "rerun_table.md").write_text(text)
    page = ROOT / "docs" / "concepts" / "reruns.md"
    start, end = "<!-- rerun-table:start -->\n", "<!-- rerun-table:end -->"
    head, rest = page.read_text().split(start)
    _, tail = rest.split(end)
    if os.environ.get("SAFERVLM_WRITE_RERUN_TABLE") == "1":
        page.write_text(head + start + text + end + tail)
    else:
        assert rest.split(end)[0] == text, (
            "the rerun table in docs/concepts/reruns.md is stale: rerun with SAFERVLM_WRITE_RERUN_TABLE=1"
        )


def test_params_change_reruns_only_dependents(run_dir: Path) -> None:
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["grpo"]["learning_rate"] = 5e-5
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = smk(run_dir, "-n", "all")
    plan = r.stdout + r.stderr
    assert r.returncode == 0
    assert "rule grpo:" in plan
    for untouched in ("rule sft:", "rule fixtures:", "rule prepare:", "rule qi_score:"):
        assert untouched not in plan
    assert "results/eval/base/" not in plan.split("Job stats")[0].replace("results/models/base", "")


SAFEMLRM_TABLES = {
    "asr": "Attack success rate",
    "tax": "Reasoning Tax",
    "self_correction": "Self-correction",
    "official": "Official metrics",
    "counts": "Counts",
    "blind_spots": "Blind spots",
}


def _report_data(html: str) -> dict[str, Any]:
    """The data Snakemake 9 embeds in its self-contained HTML report.

    Each ``<script id="X">var name = JSON;</script>`` holds one JSON value; results are
    keyed by path, each file inlined base64 in ``data_uri`` with its rendered caption.
    """
    names = {"results": "results", "categories": "categories", "workflow-desc": "workflow_desc"}
    out = {}
    for script_id, var in names.items():
        m = re.search(rf'<script id="{script_id}">\s*var {var} = ', html)
        assert m, f"no {script_id} data in the report"
        out[var] = json.JSONDecoder().raw_decode(html, m.end())[0]
    return out


def _decode(data_uri: str) -> bytes:
    head, payload = data_uri.split(",", 1)
    assert head.startswith("data:") and head.endswith(";base64"), head
    return base64.b64decode(payload)


def _flat(md: str) -> str:
    """Markdown with its column padding collapsed (the report pads cells to align columns)."""
    return re.sub(r" {2,}", " ", md)


def _md_rows(md: str) -> dict[str, list[str]]:
    """First cell -> the other cells, for every row of the Markdown tables in ``md``."""
    rows = {}
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def html_report(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("html") / "report.html"
    r = smk(run_dir, "--report", str(out))
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    html = out.read_text()
    assert "Please enable Javascript" in html  # Snakemake's report app, data inlined
    return _report_data(html)


def test_html_report_has_the_results_table_and_figure(run_dir: Path, html_report: dict[str, Any]) -> None:
    results = html_report["results"]
    table = results["results/report/table.md"]
    md = _decode(table["data_uri"]).decode()
    assert md == (run_dir / "results/report/table.md").read_text()
    rows = _md_rows(md)
    csv = pd.read_csv(run_dir / "results/report/table.csv", index_col="benchmark")
    header = rows["benchmark"]
    assert header == [c.replace("/", " ") for c in csv.columns]
    assert list(csv.index) == [*BENCHES, "average"]
    for bench, values in csv.iterrows():
        expected = [f"{100 * v:.1f}" for v in values]
        assert rows[str(bench)] == expected, bench
        # the caption shows the same table
        assert f"| {bench} | {' | '.join(expected)} |" in _flat(table["caption"])
    fig = results["results/report/safety_helpfulness.png"]
    assert fig["mime_type"] == "image/png"
    png = _decode(fig["data_uri"])
    assert png == (run_dir / "results/report/safety_helpfulness.png").read_bytes()
    with Image.open(io.BytesIO(png)) as img:
        assert img.size[0] > 100 and img.size[1] > 100
    cats = html_report["categories"]
    assert set(cats["Results"]["Safety and helpfulness"]) >= {
        "results/report/table.md",
        "results/report/safety_helpfulness.png",
    }


def test_html_report_has_safemlrm_tables_and_datasheet(run_dir: Path, html_report: dict[str, Any]) -> None:
    results, cats = html_report["results"], html_report["categories"]
    for name, sub in SAFEMLRM_TABLES.items():
        path = f"results/report/{name}.md"
        assert path in cats["SafeMLRM"][sub]
        assert _decode(results[path]["data_uri"]).decode() == (run_dir / path).read_text()
    asr = _md_rows(_decode(results["results/report/asr.md"]["data_uri"]).decode())
    assert asr["benchmark"][:4] == ["attack", "base R", "base A", "base F"]
    assert {"vlguard", "mssbench", "figstep", "(mean)"} <= set(asr)
    datasheet = "results/data/qi_safe.datasheet.md"
    assert set(cats["Data"]["QI-Safe"]) == {datasheet, "results/data/qi_safe.datasheet.png"}
    sheet = _decode(results[datasheet]["data_uri"]).decode()
    sha = hashlib.sha256((run_dir / "results/data/qi_safe.parquet").read_bytes()).hexdigest()
    assert sheet.startswith("# QI-Safe datasheet") and sha in sheet
    png = _decode(results["results/data/qi_safe.datasheet.png"]["data_uri"])
    assert png == (run_dir / "results/data/qi_safe.datasheet.png").read_bytes()


def test_html_report_captions_and_workflow_description(html_report: dict[str, Any]) -> None:
    results = html_report["results"]
    for path, res in results.items():
        assert res["caption"].startswith("<p>"), f"{path} has no caption"
        assert "{{" not in res["caption"] and "System Message" not in res["caption"], path
    caption = {path: " ".join(res["caption"].split()) for path, res in results.items()}
    table = caption["results/report/table.md"]
    # templated from the config: the judge and the models
    assert "Safety and helpfulness (%) per benchmark" in table
    assert 'given by the <tt class="docutils literal">reference</tt> judge' in table
    assert "(base, sft, grpo_plain, grpo)" in table
    assert "harm score is at least 4 (of 5)" in caption["results/report/asr.md"]
    assert "from 2 sampled answers" in caption["results/data/qi_safe.datasheet.md"]
    assert 'experiment <tt class="docutils literal">e2e</tt>' in caption["results/report/mlflow_runs.md"]
    desc = " ".join(html_report["workflow_desc"].split())
    assert "SaFeR-VLM pipeline" in desc and "benchmarks: vlguard, mssbench, figstep;" in desc
    assert "System Message" not in desc


def test_html_report_lists_the_mlflow_run_of_every_stage(run_dir: Path, html_report: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    path = "results/report/mlflow_runs.md"
    res = html_report["results"][path]
    assert path in html_report["categories"]["Provenance"]["MLflow runs"]
    md = _decode(res["data_uri"]).decode()
    assert md == (run_dir / path).read_text()
    uri = f"sqlite:///{(run_dir / 'results/mlflow/mlflow.db').resolve()}"
    assert f"Tracking URI: `{uri}`; experiment: `e2e`" in md
    table = [line.strip("|").split("|") for line in md.splitlines() if line.startswith("| ")]
    assert [c.strip() for c in table[0]] == [
        "stage", "run name", "MLflow run id", "start time (UTC)", "git commit", "config hash"
    ]  # fmt: skip
    listed = {cells[2]: cells for cells in ([c.strip() for c in row] for row in table[1:])}
    assert len(listed) == len(table) - 1  # one row per run
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("e2e")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    # Every job of the DAG ran once: the listing is every run but the listing's own.
    own = [r for r in runs if r.data.tags["stage"] == "mlflow_runs"]
    assert len(own) == 1
    stage_runs = {r.info.run_id: r for r in runs if r.data.tags["stage"] != "mlflow_runs"}
    assert set(listed) == set(stage_runs)
    assert len({(c[0], c[1]) for c in listed.values()}) == len(listed) > len(RULES)  # names distinct
    for run_id, (stage, run_name, _, _start, commit, config_hash) in listed.items():
        run = stage_runs[run_id]
        assert (stage, run_name) == (run.data.tags["stage"], run.info.run_name)
        assert (commit, config_hash) == (run.data.tags["git_commit"], run.data.tags["config_hash"])
        assert config_hash == own[0].data.tags["config_hash"]
        assert run_id in res["caption"]  # shown in the report, not only downloadable
    assert {s for s, *_ in listed.values()} == set(RULES) - {"mlflow_runs"}
    csv = pd.read_csv(run_dir / "results/report/mlflow_runs.csv")
    assert set(csv["run_id"]) == set(listed) and set(csv["tracking_uri"]) == {uri}


def test_pins_include_the_safety_aware_gain(run_dir: Path) -> None:
    """`make pin` pins grpo - grpo_plain (the rollout's claim) next to each model's averages."""
    from safervlm.report.audit import demo_cells

    cfg = reduced_config()
    pairs = [tuple(p) for p in cfg["eval"]["pairs"]]
    cells = {c["id"]: c for c in demo_cells(run_dir / "results", cfg["eval"]["models"], BENCHES, pairs)}
    for metric in ("safety", "helpfulness"):
        gain = cells[f"demo.safety_aware_gain.{metric}"]
        assert (gain["kind"], gain["model"], gain["versus"]) == ("difference", "grpo", "grpo_plain")
        expected = (
            cells[f"demo.grpo.avg.{metric}"]["expected"] - cells[f"demo.grpo_plain.avg.{metric}"]["expected"]
        )
        assert gain["expected"] == pytest.approx(expected, abs=1e-9)
