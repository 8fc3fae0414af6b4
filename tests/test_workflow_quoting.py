"""Parameters the shell never parses: every string a rule hands to its command arrives intact,
whatever it holds (apostrophes, double quotes, ``$``, backticks, backslashes, newlines,
non-ASCII). Rules pass values as ``{...:q}`` (shlex-quoted words), never spliced into quotes."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, snakemake

NASTY = 'it\'s "quoted" $HOME `id` $(id) \\back\\slash\nnew line; é ü 日本 ☃'
# A folder name cannot hold a newline in Snakemake's file patterns; all the rest it can.
NASTY_DIR = 'res\'ults "$HOME" `id` \\x é'


def nasty_config(tmp_path: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["results"] = NASTY_DIR
    cfg["mlflow"]["enabled"] = False
    cfg["generate"]["system_prompt"] = NASTY
    cfg["generate"]["prompt_template"] = NASTY + " {question}"
    cfg["sft"]["demo_critique"] = NASTY
    cfg["grpo"]["reflection_template"] = NASTY
    cfg["grpo"]["correction_template"] = NASTY + " {question} {critique}"
    cfg["fixtures"].update(n_per_benchmark=4, n_train_per_source=8)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


def commands(tmp_path: Path, config: Path) -> dict[str, list[list[str]]]:
    """Subcommand -> the argv of each planned job, as bash would split its command line."""
    r = snakemake("-n", "-p", "--forceall", "-d", str(tmp_path), "--configfile", str(config))
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    out: dict[str, list[list[str]]] = {}
    for line in re.findall(r"^Shell command: (.*safervlm.*)$", r.stdout + r.stderr, re.M):
        argv = shlex.split(line)
        argv = argv[: argv.index(">")]  # the log redirection
        start = argv.index("safervlm")
        out.setdefault(argv[start + 1], []).append(argv[start + 2 :])
    return out


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_every_string_param_arrives_intact(tmp_path: Path) -> None:
    plans = commands(tmp_path, nasty_config(tmp_path))
    assert {"fixtures", "prepare", "pool", "generate", "judge", "sft", "grpo", "report"} <= set(plans)
    for argv in plans["generate"]:
        params = json.loads(flag(argv, "--params"))
        assert params["system_prompt"] == NASTY
        assert params["prompt_template"] == NASTY + " {question}"
        assert flag(argv, "--out").startswith(NASTY_DIR + "/eval/")
    sft = json.loads(flag(plans["sft"][0], "--params"))
    assert sft["demo_critique"] == NASTY
    for argv in plans["grpo"]:
        grpo = json.loads(flag(argv, "--params"))
        if grpo["safety_aware"]:
            assert grpo["reflection_template"] == NASTY
            assert grpo["correction_template"] == NASTY + " {question} {critique}"
        assert json.loads(flag(argv, "--judge-params")) == {}
    sources = json.loads(flag(plans["pool"][0], "--sources"))
    assert all(s["root"].startswith(NASTY_DIR + "/fixtures/") for s in sources.values())
    report = plans["report"][0]
    pairs = report[report.index("--pair") + 1 : report.index("--pair") + 4]
    assert pairs == ["sft=base", "grpo_plain=base", "grpo=base"]
    for argv in plans["judge"]:
        assert flag(argv, "--judge-cache") == NASTY_DIR + "/cache/judge.sqlite"


@pytest.mark.slow
def test_jobs_run_under_a_hostile_results_folder(tmp_path: Path) -> None:
    """Real jobs (fixtures, prepare, pool) write where the config says, and their logs show
    the arguments the CLI received."""
    config = nasty_config(tmp_path)
    bench = f"{NASTY_DIR}/data/bench/vlguard.parquet"
    r = snakemake("--cores", "2", "-d", str(tmp_path), bench, f"{NASTY_DIR}/data/pool.parquet",
                  "--configfile", str(config))  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert (tmp_path / bench).stat().st_size > 0
    log = (tmp_path / NASTY_DIR / "logs" / "pool.log").read_text()
    logged = json.loads(re.search(r"safervlm pool (\{.*\})$", log, re.M).group(1))
    assert logged["out"] == f"{NASTY_DIR}/data/pool.parquet"
    assert json.loads(logged["sources"])["vlguard_train"]["root"] == f"{NASTY_DIR}/fixtures/train/vlguard"
