"""The report stage writes every output of its rule for every shape of evaluation: 1 or 2
models, 0 or 1 (reasoning, base) pairs, 1 or 2 seeds, 1 or 2 judges.

Real stages end to end below the report: synthetic fixtures in the benchmarks' official
formats, ``prepare``, crafted responses (safe, harmful, unclosed reasoning, empty), the
reference judge (``judge`` stage) and ``score``; then ``report_stage`` with the arguments
the report rule passes. The expected file names are read from ``rules/report.smk``, so a
new output of the rule is checked here too.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pandas as pd
import pytest
from helpers import ROOT

from safervlm.embedded.fixtures import write_fixture
from safervlm.metrics import Settings
from safervlm.schema import RESPONSE_COLUMNS, with_generation_columns
from safervlm.stages.judge import judge_stage
from safervlm.stages.prepare import prepare
from safervlm.stages.report import report_stage
from safervlm.stages.score import score_stage
from safervlm.text import split_response

BENCHES = ("vlguard", "figstep")
N = 8


# The figures the rule declares only where their dimension is not degenerate (REPORT_FIGURES).
FIGURES = {"blind_spots": "pairs", "safety_seeds": "seeds", "judge_agreement": "judges"}


def rule_figures(n_pairs: int, n_seeds: int, n_judges: int) -> tuple[list[str], list[str]]:
    """(declared, left out) figures of the report rule for one shape of evaluation."""
    text = (ROOT / "rules" / "report.smk").read_text()
    for key, cond in (("blind_spots", "bool(EVAL_PAIRS)"), ("safety_seeds", "len(SEEDS) > 1"),
                      ("judge_agreement", "len(JUDGES) > 1")):  # fmt: skip
        assert f'("{key}", {cond},' in text, key
    on = {"pairs": n_pairs > 0, "seeds": n_seeds > 1, "judges": n_judges > 1}
    declared = [f"{k}.png" for k, dim in FIGURES.items() if on[dim]]
    return declared, [f"{k}.png" for k in FIGURES if f"{k}.png" not in declared]


def rule_outputs() -> list[str]:
    """File names under ``{R}/report/`` that the report rule always declares."""
    text = (ROOT / "rules" / "report.smk").read_text()
    rule = text.split("rule report:", 1)[1].split("\nrule ", 1)[0]
    outputs = rule.split("output:", 1)[1].split("log:", 1)[0]
    names = re.findall(r'f"\{R\}/report/([\w.]+)"', outputs)
    ext = re.search(r'multiext\(\s*f"\{R\}/report/",(.*?)\)', outputs, re.DOTALL)
    assert ext, "the report rule's multiext() was not found"
    names += re.findall(r'"([\w.]+)"', ext.group(1))
    assert len(names) > 20, names
    return names


@pytest.fixture(scope="module")
def benches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench")
    out = {}
    for name in BENCHES:
        write_fixture(root / "fixtures", name, seed=0, n=N)
        out[name] = root / f"{name}.parquet"
        prepare(name, str(root / "fixtures" / name), str(out[name]))
    return out


def responses(data: Path, model: str, variant: int) -> pd.DataFrame:
    """Crafted responses: a mix of refusals, harmful compliance, an unclosed (truncated)
    reasoning and an empty reply, shifted by ``variant`` so models and seeds differ."""
    samples = pd.read_parquet(data).drop(columns=["image"])
    kinds = (
        "<think>The image shows it.</think>I cannot help with that.",
        "<think>They asked; I will answer.</think>Here is how: step 1, step 2.",
        "<think>The user wants to know how to",
        "",
    )
    texts = [kinds[(i + variant) % len(kinds)] for i in range(len(samples))]
    df = samples.assign(model=model, response=texts)
    split = [split_response(t) for t in texts]
    df["reasoning"] = [s[0] for s in split]
    df["answer"] = [s[1] for s in split]
    cut = [t.startswith("<think>") and "</think>" not in t for t in texts]  # hit the token budget
    df["truncated"] = cut
    df["finish_reason"] = ["length" if c else "stop" for c in cut]
    return with_generation_columns(df)[RESPONSE_COLUMNS]


CASES = [
    (models, pairs, seeds, judges)
    for models, seeds, judges in itertools.product((1, 2), (1, 2), (1, 2))
    for pairs in ((0,) if models == 1 else (0, 1))
]


@pytest.mark.parametrize(("n_models", "n_pairs", "n_seeds", "n_judges"), CASES)
def test_report_writes_every_output(
    tmp_path: Path, benches: dict[str, Path], n_models: int, n_pairs: int, n_seeds: int, n_judges: int
) -> None:
    models = ["reasoner", "base"][:n_models]
    pairs = [("reasoner", "base")][:n_pairs]
    seeds = list(range(n_seeds))
    judges = ["ref", "ref2"][:n_judges]
    metric_paths, judgment_paths, run_metrics, run_judgments = [], [], [], []
    for seed, judge, (m, model), bench in itertools.product(seeds, judges, enumerate(models), BENCHES):
        folder = tmp_path / f"seed{seed}" / "eval" / model / bench
        folder.mkdir(parents=True, exist_ok=True)
        resp = folder / "responses.parquet"
        if not resp.exists():
            responses(benches[bench], model, variant=m + seed).to_parquet(resp)
        judged = folder / f"judgments.{judge}.parquet"
        metrics = folder / f"metrics.{judge}.json"
        judge_stage(str(resp), str(judged), "reference", {}, data_path=str(benches[bench]))
        score_stage(str(judged), str(metrics), n_bootstrap=20, seed=seed)
        run_metrics.append(f"{seed}:{judge}={metrics}")
        run_judgments.append(f"{seed}:{judge}={judged}")
        if seed == seeds[0] and judge == judges[0]:  # the main tables: first seed and judge
            metric_paths.append(str(metrics))
            judgment_paths.append(str(judged))
    out = tmp_path / "report"
    compare = [(b, a) for a, b in pairs]
    table = report_stage(
        metric_paths,
        str(out),
        judgment_paths,
        pairs,
        Settings(n_bootstrap=20),
        runs=(run_metrics, run_judgments),
        compare=compare,
    )
    figures, left_out = rule_figures(n_pairs, n_seeds, n_judges)
    missing = [n for n in [*rule_outputs(), *figures] if not (out / n).exists()]
    assert not missing, missing
    assert not [n for n in left_out if (out / n).exists()], left_out
    # a degenerate dimension: its tables say why in one line, never an empty table
    omitted = {"seeds": n_seeds < 2, "judges": n_judges < 2, "judge_sensitivity": n_judges < 2,
               "paired": not pairs, "tax": not pairs, "blind_spots": not pairs}  # fmt: skip
    for name, gone in omitted.items():
        text = (out / f"{name}.md").read_text()
        assert text.startswith("# ")
        assert (
            ("\nOmitted: " in text and "|" not in text) if gone else ("|" in text and "Omitted" not in text)
        ), name
    assert set(models) <= {c[0] for c in table.columns}
    counts = pd.read_csv(out / "counts.csv")
    assert set(counts["model"]) == set(models)
    # every model and benchmark has its quarter of unclosed (cut-off) responses, counted
    by = counts.groupby(["model", "benchmark"])[["n", "n_truncated"]].sum()
    assert (by["n_truncated"] == by["n"] // 4).all(), by
    if pairs:
        paired = pd.read_csv(out / "paired.csv")
        assert ("base", "reasoner") in set(zip(paired["a"], paired["b"], strict=True))
        assert "reasoner" in (out / "tax.md").read_text()
    if n_seeds == 2 and pairs:
        assert len(pd.read_csv(out / "seed_tests.csv")) > 0
