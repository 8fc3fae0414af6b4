"""Plain vs safety-aware GRPO: held-out safety per benchmark and learning curves over seeds.

Inputs are the GRPO checkpoints' ``train_log.json`` (one per model and seed) and the first
seed's evaluation metrics (``results/eval/{model}/{bench}/metrics.json``). The learning curve
is the mean judge safety of the policy's *own* samples on the prompts that should be refused,
``rollout/harmful_sample_safety`` (measured by the safety-aware rollout before any
correction, and by :class:`~safervlm.train.rollout.SampleSafetyMonitor` in plain GRPO). A log
without it falls back to ``rollout/sample_safety``, which also counts the benign prompts
(always safe), so its per-step value moves with each step's prompt mix.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from safervlm import tracking
from safervlm.io import atomic_path, read_json, read_parquet, write_text
from safervlm.metrics.paired import SeedSummary, seed_summary
from safervlm.report.paired import paired_table
from safervlm.report.robustness import AVERAGE, NONE
from safervlm.schema import JUDGMENT_COLUMNS

log = logging.getLogger(__name__)

HARMFUL_KEY = "rollout/harmful_sample_safety"
ALL_KEY = "rollout/sample_safety"
CURVE_KEYS = (HARMFUL_KEY, ALL_KEY)  # the curve metric, then its fallback
KEY_LABELS = {HARMFUL_KEY: "sampled safety on harmful prompts", ALL_KEY: "sampled safety, all prompts"}
THIRDS = ("first third", "middle third", "last third")
CURVES_TITLE = "Learning curves over seeds"

Curve = list[tuple[int, float]]


def curve_key(train_log: Mapping[str, Any]) -> str:
    """The curve metric a ``train_log.json`` carries: :data:`HARMFUL_KEY`, else :data:`ALL_KEY`.

    Chosen per log (never per step), so one curve never mixes the two quantities.
    """
    history = train_log.get("log_history", [])
    return HARMFUL_KEY if any(HARMFUL_KEY in h for h in history) else ALL_KEY


def curve_points(train_log: Mapping[str, Any], key: str | None = None) -> Curve:
    """(step, value) of every logged step carrying ``key`` (default :func:`curve_key`), NaN
    values included (a step that sampled no harmful prompt), in step order."""
    key = key or curve_key(train_log)
    out = []
    for h in train_log.get("log_history", []):
        if key in h and "step" in h:
            value = h[key]
            out.append((int(h["step"]), math.nan if value is None else float(value)))
    return sorted(out)


def safety_curve(train_log: Mapping[str, Any], key: str | None = None) -> Curve:
    """(step, policy sample safety) from a GRPO ``train_log.json``, NaN steps skipped."""
    return [(s, v) for s, v in curve_points(train_log, key) if not math.isnan(v)]


def step_thirds(points: Curve) -> list[float]:
    """Mean of the first / middle / last third of the logged steps (NaN values skipped; NaN
    for a third with no value), as ``bench/learning_comparison.py`` splits them."""
    n = len(points)
    return [_mean([v for _, v in points[k * n // 3 : (k + 1) * n // 3]]) for k in range(3)]


def thirds_summary(curves: Sequence[Curve]) -> list[SeedSummary]:
    """Per third of the steps: the seeds' means with a 95% Student-t interval in [0, 1]."""
    per_seed = [step_thirds(c) for c in curves]
    return [seed_summary([t[k] for t in per_seed], bounds=(0, 1)) for k in range(3)]


def step_summary(curves: Sequence[Curve]) -> list[tuple[int, SeedSummary]]:
    """Per step: the mean over the seeds that logged a value there, with its 95% t interval."""
    by_step: dict[int, list[float]] = {}
    for c in curves:
        for step, v in c:
            by_step.setdefault(step, []).append(v)
    return [(s, seed_summary(by_step[s], bounds=(0, 1))) for s in sorted(by_step)]


def metric_label(keys: Mapping[str, Sequence[str]]) -> str:
    """The curve metric's name for axis labels and text, from ``{model: [key per seed]}``."""
    used = list(dict.fromkeys(k for ks in keys.values() for k in ks))
    if used == [HARMFUL_KEY] or used == [ALL_KEY]:
        return f"{KEY_LABELS[used[0]]} ({used[0]})"
    return f"{KEY_LABELS[HARMFUL_KEY]} ({HARMFUL_KEY}; {ALL_KEY} where a log lacks it)"


def _n_seeds(n: int) -> str:
    return f"{n} seed" + ("s" if n != 1 else "")


def _summary_cell(s: SeedSummary) -> str:
    if math.isnan(s.mean):
        return "–"
    if s.n < 2:
        return f"{_pct(s.mean)} ({s.n} seed: no interval)"
    return f"{_pct(s.mean)} [{_pct(s.low)}, {_pct(s.high)}]"


def curves_md(logs: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The "Learning curves over seeds" section: per model the curve metric per third of the
    steps (mean over seeds, 95% Student-t interval), the metric and the number of seeds."""
    keys = {n: [curve_key(lg) for lg in lgs] for n, lgs in logs.items()}
    header = ["model", "metric", "seeds", *(f"{t} (%)" for t in THIRDS)]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for name, lgs in logs.items():
        thirds = thirds_summary([curve_points(lg, k) for lg, k in zip(lgs, keys[name], strict=True)])
        metric = ", ".join(f"`{k}`" for k in dict.fromkeys(keys[name]))
        cells = [name, metric, str(len(lgs)), *(_summary_cell(s) for s in thirds)]
        lines.append("| " + " | ".join(cells) + " |")
    return (
        f"## {CURVES_TITLE}\n\nGRPO training, {metric_label(keys)}: the judge's safety of the policy's own "
        "samples (before any correction), per third of each run's logged steps. Per seed the mean over "
        "the steps of that third (a step that sampled no harmful prompt, NaN, is skipped); then the mean "
        "over seeds with its 95% Student-t interval, clipped to [0, 100]. `rollout/sample_safety` "
        "(the fallback for logs without `rollout/harmful_sample_safety`) also counts the benign prompts, "
        "always safe, so it moves with each step's prompt mix. Per step: grpo_safety_per_step.png.\n\n"
        + "\n".join(lines)
        + "\n"
    )


def _held_out(metric_paths: Sequence[str]) -> dict[str, dict[str, float]]:
    """{model: {bench: safety}} from ``eval/{model}/{bench}/metrics.json`` paths."""
    out: dict[str, dict[str, float]] = {}
    for p in metric_paths:
        path = Path(p)
        m = read_json(path)
        value = m.get("overall", m).get("safety")
        out.setdefault(path.parent.parent.name, {})[path.parent.name] = math.nan if value is None else value
    return out


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _pct(v: float) -> str:
    return "–" if math.isnan(v) else f"{100 * v:.1f}"


def _paired_cells(judgment_paths: Sequence[str], a: str, b: str, benches: list[str]) -> dict[str, list[str]]:
    """{bench: [b - a safety [95% CI], McNemar p]} on the items both models answered.

    The held-out columns' scope: attack ``none``, items pooled per benchmark, the average row
    the unweighted mean over benchmarks (its gain is the mean of the benchmarks' paired
    differences, with no McNemar test).
    """
    if not judgment_paths:
        return {}
    df = pd.concat([read_parquet(p, required=JUDGMENT_COLUMNS) for p in judgment_paths], ignore_index=True)
    # The report's paired comparison (robustness.paired_table), for this one pair.
    table = paired_table({(0, ""): df}, [(a, b)], [], n_resamples=1000, seed=0)
    table = table[table["attack"] == NONE]
    if len(benches) == 1:  # one benchmark: the average is that benchmark
        table = pd.concat([table, table[table["benchmark"] == benches[0]].assign(benchmark=AVERAGE)])
    out = {}
    for bench in [*benches, AVERAGE]:
        row = table[table["benchmark"] == bench]
        if row.empty:  # no item both models answered
            out[bench] = ["–", "–"]
            continue
        r = row.iloc[0]
        ci = "" if math.isnan(r["low"]) else f" [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]"
        gain = "–" if math.isnan(r["diff"]) else f"{100 * r['diff']:+.1f}{ci}"
        out[bench] = [gain, "–" if math.isnan(r["mcnemar_p"]) else f"{r['mcnemar_p']:.3g}"]
    return out


def _held_out_md(
    names: list[str], held: dict[str, dict[str, float]], judgment_paths: Sequence[str]
) -> tuple[list[str], dict[str, float]]:
    """The held-out table's lines and ``{model: average held-out safety}``."""
    benches = sorted({b for name in names for b in held.get(name, {})})
    paired = _paired_cells(judgment_paths, names[0], names[-1], benches) if len(names) == 2 else {}
    extra = [f"{names[-1]} − {names[0]} [95% CI]", "p (McNemar)"] if paired else []
    header = [*names, *extra]
    lines = ["| benchmark | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    for b in benches:
        cells = [_pct(held.get(n, {}).get(b, math.nan)) for n in names] + paired.get(b, [])
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    averages = {n: _mean([held.get(n, {}).get(b, math.nan) for b in benches]) for n in names}
    cells = [f"**{_pct(averages[n])}**" for n in names] + paired.get(AVERAGE, [])
    lines.append("| **average** | " + " | ".join(cells) + " |")
    return lines, averages


TRAINING_ROWS = (
    ("steps", "steps", None),
    ("mean_harmful_sample_safety", "sampled safety, harmful prompts (%)", HARMFUL_KEY),
    ("mean_sample_safety", "policy sample safety, all prompts (%)", ALL_KEY),
    ("mean_unsafe_rate", "unsafe rate (%)", None),
    ("mean_correction_success", "correction success (%)", None),
    ("reward_last_quarter", "reward, last quarter", None),
)


def _training_md(logs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One run per model's training summaries (``train_log.json`` ``metrics``; a rollout mean
    the log lacks is the mean over its logged steps)."""
    lines = ["| training (mean over steps) | " + " | ".join(logs) + " |", "|---|" + "---:|" * len(logs)]
    for key, label, curve in TRAINING_ROWS:
        cells = []
        for lg in logs.values():
            v = lg.get("metrics", {}).get(key)
            if v is None and curve is not None:
                v = _mean([s for _, s in safety_curve(lg, curve)])
            if v is None:
                cells.append("–")
            elif key == "steps":
                cells.append(str(int(v)))
            elif key == "reward_last_quarter":
                cells.append(f"{v:.3f}")
            else:
                cells.append(_pct(float(v)))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _run_dirs(runs: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    """``{model: [checkpoint folder per seed]}`` (a single folder is one seed)."""
    return {n: [d] if isinstance(d, str) else list(d) for n, d in runs.items()}


def compare_grpo(
    runs: Mapping[str, str | Sequence[str]],
    metric_paths: Sequence[str],
    out_md: str,
    out_png: str,
    judgment_paths: Sequence[str] = (),
    seeds: Sequence[int] = (),
    out_curves_md: str | None = None,
) -> dict[str, float]:
    """Write the comparison (markdown), the learning-curve figure and, optionally, the
    learning-curve section on its own (``out_curves_md``, which the report appends to seeds.md).

    Args:
        runs: ``{model name: checkpoint folder, or one folder per seed}`` in display order
            (e.g. grpo_plain, grpo); the first folder is the held-out table's seed.
        metric_paths: the first seed's evaluation ``metrics.json`` files of those models.
        judgment_paths: their ``judgments.parquet`` (the paired gain and McNemar test).
        seeds: the seeds of each model's folders, in order (for the text; may be empty).

    Returns:
        ``{model: average held-out safety}`` (first seed).
    """
    dirs = _run_dirs(runs)
    logs = {n: [read_json(Path(d) / "train_log.json") for d in ds] for n, ds in dirs.items()}
    held_lines, averages = _held_out_md(list(dirs), _held_out(metric_paths), judgment_paths)
    first = {n: lgs[0] for n, lgs in logs.items()}
    seed = f"seed {seeds[0]}" if seeds else "the first seed"
    curves = curves_md(logs)
    text = (
        f"# Plain vs safety-aware GRPO\n\nHeld-out safety (%) from the evaluation judge, {seed} (same SFT "
        "start and steps; every seed's numbers are in seeds.md). Scope: attack `none`, items pooled per "
        "benchmark (table.md's numbers); average: the unweighted mean over benchmarks. The gain per item "
        "with a paired bootstrap 95% interval and McNemar's exact test on the unsafe verdict (the average "
        "row: the mean of the benchmarks' differences, no McNemar test).\n\n"
        + "\n".join(held_lines)
        + f"\n\nTraining summaries, {seed}:\n\n"
        + "\n".join(_training_md(first))
        + "\n\n"
        + curves
    )
    write_text(text, out_md)
    artifacts: list[str | Path] = [Path(out_md), Path(out_png)]
    if out_curves_md:
        write_text(curves, out_curves_md)
        artifacts.append(Path(out_curves_md))
    fig = learning_curve_figure(logs)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    log.info("GRPO comparison: %s", averages)
    tracking.log_stage(
        "grpo_compare", metrics={f"{n}/avg_safety": v for n, v in averages.items()}, artifacts=artifacts
    )
    return averages


def learning_curve_figure(logs: Mapping[str, Sequence[Mapping[str, Any]]]) -> Figure:
    """Per model the curve metric's mean over seeds per step, with a shaded 95% Student-t
    band (clipped to 0-100) where two or more seeds logged the step."""
    fig = Figure(figsize=(6, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    keys = {n: [curve_key(lg) for lg in lgs] for n, lgs in logs.items()}
    for name, lgs in logs.items():
        steps = step_summary([safety_curve(lg, k) for lg, k in zip(lgs, keys[name], strict=True)])
        if not steps:
            continue
        x = [s for s, _ in steps]
        (line,) = ax.plot(
            x, [100 * m.mean for _, m in steps], marker=".", label=f"{name} ({_n_seeds(len(lgs))})"
        )
        band = [(s, m) for s, m in steps if m.n >= 2 and not math.isnan(m.low)]
        if band:
            ax.fill_between(
                [s for s, _ in band],
                [100 * m.low for _, m in band],
                [100 * m.high for _, m in band],
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
    most = max((len(lgs) for lgs in logs.values()), default=0)
    counts = "/".join(str(n) for n in sorted({len(lgs) for lgs in logs.values()}))
    interval = ", shaded: 95% Student-t interval" if most >= 2 else " (1 seed: no interval)"
    ax.set_title(
        f"{metric_label(keys)}\nmean over {counts} seed{'s' if most > 1 else ''}{interval}", fontsize=8
    )
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("sampled safety (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return fig
