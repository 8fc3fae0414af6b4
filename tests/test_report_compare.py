"""eval.compare: any two evaluated models compared item by item (paired tests only), next to
eval.pairs' (reasoning, base) pairs; the figures a degenerate dimension leaves out of the rule;
grpo_compare's learning curves over seeds (and seeds.md, which appends them)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import ROOT, snakemake

from safervlm.errors import SafervlmError
from safervlm.metrics.paired import seed_summary
from safervlm.report.compare import compare_grpo, curve_key, curves_md, learning_curve_figure, safety_curve
from safervlm.stages.grpo_compare import parse_runs
from safervlm.stages.report import append_sections, report_stage


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


# --- grpo_compare: learning curves over seeds ------------------------------------------------

NAN = math.nan
HARMFUL, ALL = "rollout/harmful_sample_safety", "rollout/sample_safety"
# {model: one curve per seed}, steps 1-6: thirds are steps 1-2, 3-4, 5-6 (seed 1's step 2: NaN)
CURVES = {
    "grpo_plain": [
        [0.0, 0.5, 0.5, 0.5, 1.0, 1.0],
        [0.0, NAN, 0.25, 0.75, 0.5, 1.0],
        [0.5, 0.5, 0.0, 1.0, 1.0, 0.5],
    ],
    "grpo": [
        [1.0, 1.0, 0.5, 0.0, 0.0, 0.0],
        [0.5, 1.0, 1.0, 1.0, 1.0, 1.0],
        [0.0, 0.0, 0.5, 0.5, 0.25, 0.25],
    ],
}
# per seed, the mean over each third's steps, by hand
THIRDS_BY_HAND = {
    "grpo_plain": [[0.25, 0.5, 1.0], [0.0, 0.5, 0.75], [0.5, 0.5, 0.75]],
    "grpo": [[1.0, 0.25, 0.0], [0.75, 1.0, 1.0], [0.0, 0.5, 0.25]],
}


def train_log(values: list[float], key: str = HARMFUL) -> dict[str, object]:
    """A GRPO ``train_log.json``: one entry per step (the other key a decoy), then the summary."""
    other = ALL if key == HARMFUL else "rollout/unsafe_rate"
    history: list[dict[str, object]] = [
        {"loss": 0.1, "step": i + 1, key: v, other: 0.9} for i, v in enumerate(values)
    ]
    history.append({"step": len(values), "train_runtime": 1.0})
    return {"log_history": history, "metrics": {"steps": len(values)}}


def write_runs(
    root: Path, curves: dict[str, list[list[float]]], key: str = HARMFUL
) -> tuple[dict[str, list[str]], list[str]]:
    """Checkpoint folders per model and seed, and the first seed's metrics.json per model."""
    runs: dict[str, list[str]] = {}
    metric_paths = []
    for model, per_seed in curves.items():
        for seed, values in enumerate(per_seed):
            folder = root / f"seed{seed}" / model
            folder.mkdir(parents=True)
            (folder / "train_log.json").write_text(json.dumps(train_log(values, key)))
            runs.setdefault(model, []).append(str(folder))
        bench = root / "eval" / model / "b"
        bench.mkdir(parents=True)
        (bench / "metrics.json").write_text(json.dumps({"overall": {"safety": 0.5}}))
        metric_paths.append(str(bench / "metrics.json"))
    return runs, metric_paths


def curve_rows(text: str) -> dict[str, list[str]]:
    """The "Learning curves over seeds" table: model -> its cells."""
    section = text.split("## Learning curves over seeds", 1)[1]
    rows = [line.strip("| ").split(" | ") for line in section.splitlines() if line.startswith("| grpo")]
    return {r[0]: r[1:] for r in rows}


def cell(values: list[float]) -> str:
    s = seed_summary(values, bounds=(0, 1))
    return f"{100 * s.mean:.1f} [{100 * s.low:.1f}, {100 * s.high:.1f}]"


def test_learning_curves_are_seed_means_with_student_t_intervals(tmp_path: Path) -> None:
    runs, metric_paths = write_runs(tmp_path, CURVES)
    md, png, curves_md = (str(tmp_path / n) for n in ("c.md", "c.png", "curves.md"))
    compare_grpo(runs, metric_paths, md, png, seeds=[101, 102, 103], out_curves_md=curves_md)
    text = Path(md).read_text()
    assert "seed 101" in text and Path(png).stat().st_size > 0
    assert text.endswith(Path(curves_md).read_text())  # the section alone, for seeds.md
    rows = curve_rows(text)
    assert list(rows) == ["grpo_plain", "grpo"]  # display order
    for model, per_seed in THIRDS_BY_HAND.items():
        metric, n, *thirds = rows[model]
        assert metric == f"`{HARMFUL}`" and n == "3"
        assert thirds == [cell([t[k] for t in per_seed]) for k in range(3)]
    assert rows["grpo_plain"][3] == "50.0 [50.0, 50.0]"  # every seed's middle third is 0.5


def test_learning_curve_band_per_step_and_one_seed_has_no_interval(tmp_path: Path) -> None:
    logs = {m: [train_log(c) for c in per_seed] for m, per_seed in CURVES.items()}
    ax = learning_curve_figure(logs).axes[0]
    assert len(ax.collections) == 2  # one shaded band per model
    line = ax.get_lines()[0]
    # step 2 of grpo_plain: seed 1 logged NaN, so the mean of the other two seeds
    assert list(line.get_ydata())[:2] == pytest.approx([100 * (0.0 + 0.0 + 0.5) / 3, 50.0])
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() >= 0.0 and band.max() <= 100.0  # clipped to the rate's range
    assert "3 seeds" in ax.get_title() and HARMFUL in ax.get_title()

    one = {m: [train_log(per_seed[0])] for m, per_seed in CURVES.items()}
    ax = learning_curve_figure(one).axes[0]
    assert not ax.collections and "1 seed" in ax.get_title()
    text = curves_md(one)
    assert "25.0 (1 seed: no interval)" in text and curve_rows(text)["grpo"][1] == "1"


def test_learning_curves_fall_back_to_sample_safety_and_skip_nan_steps(tmp_path: Path) -> None:
    runs, metric_paths = write_runs(tmp_path, CURVES, key=ALL)
    compare_grpo(runs, metric_paths, str(tmp_path / "c.md"), str(tmp_path / "c.png"))
    text = (tmp_path / "c.md").read_text()
    rows = curve_rows(text)
    assert rows["grpo"][0] == f"`{ALL}`" and f"all prompts ({ALL})" in text
    assert rows["grpo_plain"][2] == cell([t[0] for t in THIRDS_BY_HAND["grpo_plain"]])  # NaN step skipped
    logs = [train_log(c, ALL) for c in CURVES["grpo"]]
    assert ALL in learning_curve_figure({"grpo": logs}).axes[0].get_title()
    nan_log = train_log(CURVES["grpo_plain"][1])
    assert safety_curve(nan_log) == [(1, 0.0), (3, 0.25), (4, 0.75), (5, 0.5), (6, 1.0)]
    assert curve_key(train_log([0.5], ALL)) == ALL and curve_key(nan_log) == HARMFUL


def test_grpo_compare_runs_repeat_a_name_per_seed_and_seeds_md_gains_the_curves(tmp_path: Path) -> None:
    runs = parse_runs(["grpo_plain=a0", "grpo_plain=a1", "grpo=b0", "grpo=b1"])
    assert runs == {"grpo_plain": ["a0", "a1"], "grpo": ["b0", "b1"]}
    assert parse_runs(["grpo_plain=a", "grpo=b"]) == {"grpo_plain": ["a"], "grpo": ["b"]}
    with pytest.raises(SafervlmError, match="NAME=CHECKPOINT_DIR"):
        parse_runs(["grpo"])
    seeds_md, curves = tmp_path / "seeds.md", tmp_path / "curves.md"
    assert not append_sections(seeds_md, [str(curves)])  # nothing to append to, nothing to append
    seeds_md.write_text("# Seeds\n\ntable\n")
    curves.write_text("## Learning curves over seeds\n\nrows\n")
    assert append_sections(seeds_md, [str(curves), str(tmp_path / "absent.md")])
    assert seeds_md.read_text() == "# Seeds\n\ntable\n\n## Learning curves over seeds\n\nrows\n"
