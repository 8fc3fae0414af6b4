"""One story in the report: every number that appears in two places is the same number.

Three shapes of evaluation, built from small synthetic judged records (every column the
judge stage writes) and the real ``score`` and ``report`` stages:

* ``demo``: config/config.yaml's shape - base, sft, grpo_plain, grpo; three benchmarks, one
  of them attacked; one seed and one judge; the (reasoning, base) pairs and the GRPO pairs;
* ``seeds``: config/seeds.yaml's - sft, grpo_plain, grpo; two benchmarks; three seeds; no pair;
* ``eval``: an evaluate-only run of two unrelated models (eval.compare, no (reasoning, base)
  pair) judged by three judges.

The report's Markdown is parsed back and cross-checked: table.md against the seed table, the
paired tests, the judge table and the scatter; the seed table against its per-pair sections;
the Reasoning Tax against its paired tests, paired.md and asr.md; every caption states its
scope; every interval stays in its range; a degenerate dimension leaves its tables out with
one line and its figure undrawn; a metric name means one quantity.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from safervlm.metrics import MEAN, Settings
from safervlm.report.figures import blind_spot_rows
from safervlm.report.tables import points
from safervlm.schema import HARM_COLUMNS, JUDGMENT_COLUMNS, SCORE_COLUMNS
from safervlm.stages.report import report_stage
from safervlm.stages.score import score_stage

CATEGORIES = ("weapons", "weapons", "fraud", "privacy", "weapons", "fraud")  # unequal sizes
NONE = "none"


@dataclass
class Shape:
    models: dict[str, tuple[float, float]]  # model -> (P(safe), P(empty response))
    benches: dict[str, list[str]]  # benchmark -> attacks
    seeds: list[int]
    judges: list[str]
    pairs: list[tuple[str, str]] = field(default_factory=list)
    compare: list[tuple[str, str]] = field(default_factory=list)
    drift: dict[str, float] = field(default_factory=dict)  # P(safe) change per seed (a seed-sensitive model)


GRPO = [("sft", "grpo"), ("grpo_plain", "grpo")]
SHAPES = {
    "demo": Shape(
        models={"base": (0.3, 0.5), "sft": (0.8, 0.0), "grpo_plain": (0.5, 0.1), "grpo": (0.9, 0.0)},
        benches={"vlguard": [NONE, "vanilla", "typo"], "mssbench": [NONE], "figstep": [NONE]},
        seeds=[0],
        judges=["reference"],
        pairs=[("sft", "base"), ("grpo_plain", "base"), ("grpo", "base")],
        compare=[("base", "sft"), ("base", "grpo_plain"), ("base", "grpo"), *GRPO],
    ),
    "seeds": Shape(
        models={"sft": (0.6, 0.0), "grpo_plain": (0.5, 0.1), "grpo": (0.8, 0.0)},
        benches={"vlguard": [NONE], "mssbench": [NONE]},
        seeds=[0, 1, 2],
        judges=["reference"],
        compare=GRPO,
        drift={"grpo_plain": 0.35},  # 15 %, 50 %, 85 % safe: a Student-t interval runs past [0, 100]
    ),
    "eval": Shape(
        models={"mine": (0.4, 0.0), "served": (0.7, 0.2)},
        benches={"figstep": [NONE], "mssbench": [NONE]},
        seeds=[0],
        judges=["ref", "api", "local"],
        compare=[("mine", "served")],
    ),
}


def n_items(bench: str) -> int:
    """Benchmarks of unequal sizes (12 or 16 samples), so an average over benchmarks is not the
    mean of the pooled items."""
    return 8 + 4 * (len(bench) % 3)


def _draw(*key: object) -> float:
    """A deterministic uniform draw in [0, 1) for one key."""
    return zlib.crc32("|".join(map(str, key)).encode()) / 2**32


def judged(model: str, bench: str, shape: Shape, seed: int, judge: int) -> pd.DataFrame:
    """Judged rows as the judge stage writes them: binary verdicts; some responses empty (the
    judge scores an empty response unsafe; SafeMLRM calls the empty part no success)."""
    p_safe, p_empty = shape.models[model]
    p_safe += shape.drift.get(model, 0.0) * (seed - 1)
    rows = []
    for i in range(n_items(bench)):
        refuse = i % 4 != 3
        for attack in shape.benches[bench]:
            if attack != NONE and not refuse:
                continue  # attacked copies of should-refuse samples only, as the attack stage
            sid = f"{bench}/{i}" + ("" if attack == NONE else f"::{attack}")
            empty = refuse and _draw(model, sid, seed, "empty") < p_empty
            # a third of the items are where the judges disagree
            draw = _draw(model, sid, seed, judge if i % 3 == 0 else 0)
            safe = not empty and draw < p_safe - 0.1 * (attack != NONE)
            reasoning = "" if empty else "I look at the image."
            answer = "" if empty else ("I cannot help." if safe else "Step 1.")
            row = dict.fromkeys(JUDGMENT_COLUMNS, "")
            row.update(dict.fromkeys(SCORE_COLUMNS + HARM_COLUMNS, float("nan")))
            row.update(
                id=sid, benchmark=bench, category=CATEGORIES[i % len(CATEGORIES)], question=f"q{i}",
                should_refuse=refuse, model=model, reasoning=reasoning, answer=answer,
                response="" if empty else f"<think>{reasoning}</think>{answer}", reasoning_source="markers",
                finish_reason="stop", truncated=False, prompt_tokens=-1, completion_tokens=-1,
                judge="reference", judge_status="scored", unscored_reason="", suspected_injection=False,
                safety=float(safe or not refuse), reasoning_safety=float(safe or not refuse),
                answer_safety=float(safe or not refuse), helpfulness=float(safe) * (0.5 + 0.5 * (i % 2)),
            )  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows)[JUDGMENT_COLUMNS]


def run_report(root: Path, shape: Shape) -> Path:
    """Judgments and metrics of every (seed, judge, model, benchmark), then the report stage with
    the arguments the report rule passes for that shape."""
    metric_paths, judgment_paths, run_metrics, run_judgments = [], [], [], []
    for seed in shape.seeds:
        for j, judge in enumerate(shape.judges):
            for model in shape.models:
                for bench in shape.benches:
                    folder = root / f"seed{seed}" / "eval" / model / bench
                    folder.mkdir(parents=True, exist_ok=True)
                    path, metrics = folder / f"judgments.{judge}.parquet", folder / f"metrics.{judge}.json"
                    judged(model, bench, shape, seed, j).to_parquet(path)
                    score_stage(str(path), str(metrics), n_bootstrap=50, seed=0)
                    run_metrics.append(f"{seed}:{judge}={metrics}")
                    run_judgments.append(f"{seed}:{judge}={path}")
                    if seed == shape.seeds[0] and j == 0:
                        metric_paths.append(str(metrics))
                        judgment_paths.append(str(path))
    out = root / "report"
    report_stage(metric_paths, str(out), judgment_paths, shape.pairs, Settings(n_bootstrap=200),
                 runs=(run_metrics, run_judgments), compare=shape.compare)  # fmt: skip
    return out


@pytest.fixture(scope="module", params=list(SHAPES))
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Shape, Path]:
    shape = SHAPES[request.param]
    return shape, run_report(tmp_path_factory.mktemp(request.param), shape)


# --- reading the Markdown back -------------------------------------------------------------


def tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Section title (``# ...`` / ``## ...``) -> the rows of its table, as header -> cell."""
    out: dict[str, list[dict[str, str]]] = {}
    title, header = "", None
    for line in text.splitlines():
        if line.startswith("#"):
            title, header = line.lstrip("# ").strip(), None
        elif line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
                out[title] = []
            else:
                out[title].append(dict(zip(header, cells, strict=True)))
    return out


def read(out: Path, name: str) -> dict[str, list[dict[str, str]]]:
    return tables((out / f"{name}.md").read_text())


def point(cell: str) -> float:
    """The number a cell starts with (a value, or the value before its interval)."""
    return float(cell.split()[0])


def main_table(out: Path) -> dict[tuple[str, str], str]:
    """table.md: (benchmark, "model metric") -> cell."""
    (rows,) = read(out, "table").values()
    return {(r["benchmark"], col): v for r in rows for col, v in r.items() if col != "benchmark"}


def omitted(out: Path, name: str) -> bool:
    return "\nOmitted: " in (out / f"{name}.md").read_text()


# --- the cross-checks ----------------------------------------------------------------------


def test_table_and_paired_tests_show_the_same_safety(report: tuple[Shape, Path]) -> None:
    """paired.md's attack-none rows (first seed and judge) are table.md's numbers, the average
    row its average row; every evaluated pair is there, attacked rows apart."""
    shape, out = report
    table = main_table(out)
    rows = [r for r in read(out, "paired")["Paired comparisons on the same items"]
            if r["seed"] == str(shape.seeds[0]) and r["judge"] == shape.judges[0]]  # fmt: skip
    safety = [r for r in rows if r["measure"] == "safety" and r["attack"] == NONE]
    assert {tuple(r["a → b"].split(" → ")) for r in safety} == set(shape.compare)
    checked = 0
    for r in safety:
        a, b = r["a → b"].split(" → ")
        assert r["a (%)"] == table[(r["benchmark"], f"{a} safety")], r
        assert r["b (%)"] == table[(r["benchmark"], f"{b} safety")], r
        checked += 1
    assert checked == len(shape.compare) * (len(shape.benches) + 1)  # + the average row
    attacked = {r["attack"] for r in rows} - {NONE}
    assert attacked == {a for attacks in shape.benches.values() for a in attacks} - {NONE}


def test_seed_table_and_its_pair_sections(report: tuple[Shape, Path]) -> None:
    shape, out = report
    if len(shape.seeds) < 2:
        assert omitted(out, "seeds") and not (out / "safety_seeds.png").exists()
        return
    table, seeds = main_table(out), read(out, "seeds")
    main = {(r["model"], r["benchmark"], r["metric"]): r for r in seeds["Across seeds"]}
    first = f"seed {shape.seeds[0]}"
    for (model, bench, metric), r in main.items():
        assert metric in ("safety", "helpfulness", "unsafety_full")  # one name per quantity
        if metric != "unsafety_full":
            assert r[first] == table[(bench, f"{model} {metric}")]  # the first seed is table.md's
    paired = read(out, "paired")["Paired comparisons on the same items"]
    tests = {
        (r["a → b"], r["benchmark"], r["metric"]): r for r in seeds["Paired test over seed-level values"]
    }
    for a, b in shape.compare:
        rows = seeds[f"Safety (%), {a} → {b}"]
        assert {r["benchmark"] for r in rows} == {*shape.benches, "average"}
        for r in rows:
            bench = r["benchmark"]
            for s in shape.seeds:
                assert r[f"seed {s}: {a} / {b}"] == " / ".join(
                    main[(m, bench, "safety")][f"seed {s}"] for m in (a, b)
                )
            for m in (a, b):
                cell = main[(m, bench, "safety")]
                assert r[f"{m} mean [95% CI]"] == f"{cell['mean']} {cell['95% CI']}"
            t = tests[(f"{a} → {b}", bench, "safety")]
            assert r["gain [95% CI]"] == t["b − a [95% CI]"]
            assert r["p (paired t over seeds)"] == t["p (paired t)"]
            assert t["a: mean [95% CI]"] == r[f"{a} mean [95% CI]"]
            key = (f"{a} → {b}", bench, NONE, shape.judges[0], "safety")
            expected = [
                p["p (McNemar)"]
                for p in paired
                if (p["a → b"], p["benchmark"], p["attack"], p["judge"], p["measure"]) == key
            ]
            assert r["p (McNemar, per seed)"] == (", ".join(expected) if bench != "average" else "–")
    if shape.drift:  # the seed-sensitive model's interval is clipped to the range, and says so
        clipped = [r for r in main.values() if r["95% CI"].endswith("‡")]
        assert clipped and {r["model"] for r in clipped} >= set(shape.drift), clipped
    assert (out / "safety_seeds.png").stat().st_size > 1000


def test_judge_tables_and_agreement(report: tuple[Shape, Path]) -> None:
    shape, out = report
    if len(shape.judges) < 2:
        assert omitted(out, "judges") and omitted(out, "judge_sensitivity")
        assert not (out / "judge_agreement.png").exists()
        return
    table, judges = main_table(out), read(out, "judges")
    rows = judges["Across judges"]
    ranges: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r["metric"] != "unsafety_full" and len(shape.seeds) == 1:
            assert r[shape.judges[0]] == table[(r["benchmark"], f"{r['model']} {r['metric']}")]
        values = [float(r[j]) for j in shape.judges]
        assert float(r["range (max − min)"]) == pytest.approx(max(values) - min(values), abs=0.11)
        ranges.setdefault((r["metric"], r["benchmark"]), []).append(float(r["range (max − min)"]))
    for r in read(out, "judge_sensitivity")["Judge sensitivity"]:
        assert float(r["largest range"]) == max(ranges[(r["metric"], r["benchmark"])])
    pairs = {r["judges"] for r in judges["Inter-judge agreement"]}
    assert len(pairs) == len(shape.judges) * (len(shape.judges) - 1) // 2
    fleiss = judges.get("Agreement of all judges", [])
    assert bool(fleiss) == (len(shape.judges) >= 3)
    agreement = pd.read_csv(out / "agreement.csv")
    for r in fleiss:
        row = agreement[(agreement["statistic"] == "fleiss") & (agreement["benchmark"] == r["benchmark"])]
        assert r["Fleiss' κ"] == f"{row['kappa'].item():.2f}" and r["judges"] == str(len(shape.judges))
    assert (out / "judge_agreement.png").stat().st_size > 1000


def test_reasoning_tax_tests_asr_and_paired_tell_one_number(report: tuple[Shape, Path]) -> None:
    shape, out = report
    if not shape.pairs:
        for name in ("tax", "blind_spots"):
            assert omitted(out, name) and "eval.compare" in (out / f"{name}.md").read_text()
        assert not (out / "blind_spots.png").exists()
        assert set(pd.read_csv(out / "paired.csv")["measure"]) == {"safety"}
        return
    tax = read(out, "tax")
    main = {(r["benchmark"], r["attack"]): r for r in tax["Reasoning Tax"]}
    tests = tax["Paired tests"]
    assert len(tests) >= len(shape.pairs) * sum(len(a) for a in shape.benches.values())
    for t in tests:
        # the tests' point estimate is the table's tax (same items, category means)
        assert point(t["tax F [95% CI]"]) == point(main[(t["benchmark"], t["attack"])][f"{t['pair']} F"])
    paired = pd.read_csv(out / "paired.csv")
    success = paired[paired["measure"] == "attack_success"]
    rates = pd.read_csv(out / "rates.csv")
    level = rates[(rates["category"] == MEAN) & (rates["metric"] == "asr_full")]
    asr = level.set_index(["model", "benchmark", "attack"])["value"]
    taxes = pd.read_csv(out / "tax.csv")
    taxes = taxes[(taxes["category"] == MEAN) & (taxes["metric"] == "asr_full")]
    for r in taxes.itertuples():
        key = (r.benchmark, r.attack)
        expected = asr[(r.reasoning_model, *key)] - asr[(r.base_model, *key)]
        assert r.value == pytest.approx(expected, abs=1e-12)  # tax = ASR(reasoning) - ASR(base), asr.md's
        row = success[(success["b"] == r.reasoning_model) & (success["a"] == r.base_model)
                      & (success["benchmark"] == r.benchmark) & (success["attack"] == r.attack)]  # fmt: skip
        if r.benchmark != MEAN or len(row):
            assert row["diff"].item() == pytest.approx(r.value, abs=1e-12)  # paired.md's attack_success
    # asr.md's (mean) row: the unweighted mean of the benchmarks that have the attack
    for (model, attack), g in level[level["benchmark"] != MEAN].groupby(["model", "attack"]):
        assert asr[(model, MEAN, attack)] == pytest.approx(g["value"].mean(), abs=1e-12)
    blind = pd.read_csv(out / "blind_spots.csv")
    drawn = blind_spot_rows(blind, pd.read_csv(out / "tax.csv"))
    assert (drawn["ratio"] > 1).all() and (drawn["mean_tax"] > 0).all()
    assert drawn.groupby(["reasoning_model", "base_model"]).size().max() <= 10
    merged = drawn.merge(blind, on=["reasoning_model", "base_model", "benchmark", "attack", "category"])
    assert (merged["ratio_x"] == merged["ratio_y"]).all() and (merged["tax_x"] == merged["tax_y"]).all()


def test_figures_draw_the_tables_numbers(report: tuple[Shape, Path]) -> None:
    """The scatter's points are table.md's (items pooled), the same as the bars."""
    shape, out = report
    csv = pd.read_csv(out / "table.csv", index_col="benchmark")
    table = main_table(out)
    wide = pd.DataFrame(
        {(m, k): csv[f"{m}/{k}"] for m in shape.models for k in ("safety", "helpfulness")}
    )  # fmt: skip
    wide.columns = pd.MultiIndex.from_tuples(wide.columns)
    for r in points(wide).itertuples():
        assert f"{100 * r.safety:.1f}" == table[(r.benchmark, f"{r.model} safety")]
        assert f"{100 * r.helpfulness:.1f}" == table[(r.benchmark, f"{r.model} helpfulness")]
    assert (out / "safety_vs_helpfulness.png").stat().st_size > 1000


_INTERVAL = re.compile(r"\[([-+]?\d+\.\d), ([-+]?\d+\.\d)\]")


def test_every_table_states_its_scope_and_every_interval_its_range(report: tuple[Shape, Path]) -> None:
    _, out = report
    for path in sorted(out.glob("*.md")):
        text = path.read_text()
        title, caption, *_ = text.split("\n\n")
        assert title.startswith("# "), path.name
        assert caption.startswith("Omitted: ") or "Scope" in caption, (path.name, caption)
        for low, high in _INTERVAL.findall(text):
            signed = low.startswith(("+", "-")) or high.startswith(("+", "-"))
            lo, hi = (-100.0, 100.0) if signed else (0.0, 100.0)
            assert lo <= float(low) <= float(high) <= hi, (path.name, low, high)
        if path.stem in ("seeds", "judges", "judge_sensitivity", "paired"):
            assert "asr_" not in text  # mean unsafety is unsafety_*; asr_* is attack success only
        if path.stem in ("asr", "tax"):
            assert "unsafety" not in text
