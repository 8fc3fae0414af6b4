"""eval.compare: any two evaluated models compared item by item (paired tests only), next to
eval.pairs' (reasoning, base) pairs; the figures a degenerate dimension leaves out of the rule."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import ROOT, snakemake

from safervlm.errors import SafervlmError
from safervlm.stages.report import report_stage


def _config(tmp_path: Path, **eval_keys: object) -> Path:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["eval"].update(eval_keys)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_eval_compare_reaches_the_report_rule_and_figures_follow_the_dimensions(tmp_path: Path) -> None:
    cfg = _config(tmp_path, compare=[["grpo", "sft"]])
    r = snakemake("-n", "-p", "-d", str(tmp_path), "report", "--configfile", str(cfg))  # --configfile last
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    (command,) = [line for line in out.splitlines() if "safervlm report " in line]
    compare = command.split("--compare ", 1)[1].split(" >", 1)[0].split()
    # the declared pairs (base -> reasoning), the GRPO runs, then eval.compare's pair
    assert compare == ["base=sft", "base=grpo_plain", "base=grpo", "sft=grpo", "grpo_plain=grpo", "grpo=sft"]
    assert "--pair sft=base grpo_plain=base grpo=base" in command  # the tax stays reasoning vs base
    # one seed, one judge (the embedded default): no seed or agreement figure is declared
    assert "report/blind_spots.png" in out
    assert "report/safety_seeds.png" not in out and "report/judge_agreement.png" not in out


def test_eval_compare_naming_a_model_not_evaluated_fails_at_parse_time(tmp_path: Path) -> None:
    r = snakemake(
        "-n", "-d", str(tmp_path), "--configfile", str(_config(tmp_path, compare=[["sft", "ghost"]]))
    )
    assert r.returncode != 0
    assert "eval.compare names ['ghost'], which are not in eval.models" in r.stdout + r.stderr


def test_report_stage_refuses_a_pair_without_metrics(tmp_path: Path) -> None:
    folder = tmp_path / "eval" / "m" / "b"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"overall": {"safety": 1.0, "helpfulness": 0.5}}))
    with pytest.raises(SafervlmError, match=r"--pair/--compare name \['ghost'\].*evaluated: \['m'\]"):
        report_stage([str(folder / "metrics.json")], str(tmp_path / "out"), compare=[("m", "ghost")])
    table = report_stage([str(folder / "metrics.json")], str(tmp_path / "out"))
    assert isinstance(table, pd.DataFrame) and (tmp_path / "out" / "table.md").read_text().startswith("# ")
