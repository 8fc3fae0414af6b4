"""Plain vs safety-aware GRPO: held-out safety per benchmark and policy safety per step.

Inputs are the two GRPO checkpoints' ``train_log.json`` and their evaluation metrics
(``results/eval/{model}/{bench}/metrics.json``). The per-step curve is the mean judge
safety of the policy's *own* samples from the original prompts, ``rollout/sample_safety``:
measured by the safety-aware rollout before any correction, and by
:class:`~safervlm.train.rollout.SampleSafetyMonitor` in plain GRPO.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from safervlm import tracking
from safervlm.io import atomic_path, read_json, read_parquet, write_text
from safervlm.report.paired import paired_table
from safervlm.report.robustness import AVERAGE, NONE
from safervlm.schema import JUDGMENT_COLUMNS

log = logging.getLogger(__name__)

CURVE_KEYS = ("rollout/sample_safety",)


def safety_curve(train_log: dict[str, Any]) -> list[tuple[int, float]]:
    """(step, policy sample safety) from a GRPO ``train_log.json``."""
    out = []
    for h in train_log["log_history"]:
        for key in CURVE_KEYS:
            if key in h and "step" in h and not math.isnan(h[key]):
                out.append((int(h["step"]), float(h[key])))
                break
    return out


def _held_out(metric_paths: list[str]) -> dict[str, dict[str, float]]:
    """{model: {bench: safety}} from ``eval/{model}/{bench}/metrics.json`` paths."""
    out: dict[str, dict[str, float]] = {}
    for p in metric_paths:
        path = Path(p)
        m = read_json(path)
        value = m.get("overall", m).get("safety")
        out.setdefault(path.parent.parent.name, {})[path.parent.name] = math.nan if value is None else value
    return out


def _mean(values: list[float]) -> float:
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


def compare_grpo(
    runs: dict[str, str],
    metric_paths: list[str],
    out_md: str,
    out_png: str,
    judgment_paths: Sequence[str] = (),
) -> dict[str, float]:
    """Write the comparison table (markdown) and the safety-per-step figure.

    Args:
        runs: ``{model name: checkpoint folder}`` in display order (e.g. grpo_plain, grpo).
        metric_paths: evaluation ``metrics.json`` files of those models.

    Returns:
        ``{model: average held-out safety}``.
    """
    held = _held_out(metric_paths)
    logs = {name: read_json(Path(folder) / "train_log.json") for name, folder in runs.items()}
    benches = sorted({b for name in runs for b in held.get(name, {})})
    names = list(runs)
    paired = _paired_cells(judgment_paths, names[0], names[-1], benches) if len(names) == 2 else {}
    extra = [f"{names[-1]} − {names[0]} [95% CI]", "p (McNemar)"] if paired else []
    header = [*runs, *extra]
    lines = ["| benchmark | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    for b in benches:
        cells = [_pct(held.get(n, {}).get(b, math.nan)) for n in runs] + paired.get(b, [])
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    averages = {n: _mean([held.get(n, {}).get(b, math.nan) for b in benches]) for n in runs}
    cells = [f"**{_pct(averages[n])}**" for n in runs] + paired.get("average", [])
    lines.append("| **average** | " + " | ".join(cells) + " |")
    lines += ["", "| training (mean over steps) | " + " | ".join(runs) + " |", "|---|" + "---:|" * len(runs)]
    for key, label in (
        ("steps", "steps"),
        ("mean_sample_safety", "policy sample safety (%)"),
        ("mean_unsafe_rate", "unsafe rate (%)"),
        ("mean_correction_success", "correction success (%)"),
        ("reward_last_quarter", "reward, last quarter"),
    ):
        cells = []
        for n in runs:
            m = logs[n].get("metrics", {})
            v = m.get(key)
            if key == "mean_sample_safety" and v is None:
                v = _mean([s for _, s in safety_curve(logs[n])])
            if v is None:
                cells.append("–")
            elif key == "steps":
                cells.append(str(int(v)))
            elif key == "reward_last_quarter":
                cells.append(f"{v:.3f}")
            else:
                cells.append(_pct(float(v)))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    text = (
        "# Plain vs safety-aware GRPO\n\nHeld-out safety (%) from the evaluation judge, same SFT start, "
        "steps and seed. Scope: attack `none`, items pooled per benchmark (table.md's numbers); average: the "
        "unweighted mean over benchmarks. The gain per item with a paired bootstrap 95% interval and "
        "McNemar's exact test on the unsafe verdict (the average row: the mean of the benchmarks' "
        "differences, no McNemar test).\n\n" + "\n".join(lines) + "\n"
    )
    write_text(text, out_md)
    _plot({n: safety_curve(lg) for n, lg in logs.items()}, out_png)
    log.info("GRPO comparison: %s", averages)
    tracking.log_stage(
        "grpo_compare",
        metrics={f"{n}/avg_safety": v for n, v in averages.items()},
        artifacts=[Path(out_md), Path(out_png)],
    )
    return averages


def _plot(curves: dict[str, list[tuple[int, float]]], out_png: str) -> None:
    fig = Figure(figsize=(6, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, pts in curves.items():
        if pts:
            ax.plot([s for s, _ in pts], [100 * v for _, v in pts], marker=".", label=name)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("policy sample safety (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
