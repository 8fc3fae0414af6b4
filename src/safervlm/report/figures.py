"""The report's figures: safety/helpfulness bars and scatter, blind spots, seeds, judges.

Each figure's title states its scope, the same as the table it draws from: the bars, the
scatter and the seed figure are table.md's numbers (attack ``none``, items pooled); the
blind spots are tax.md's category-level taxes. A figure whose dimension is degenerate (one
seed, one judge, no (reasoning, base) pair) is not drawn: the stage leaves it out and the
matching table says why.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend
switch), so it works headless and does not disturb other users of matplotlib.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from safervlm.io import atomic_path
from safervlm.report.tables import TABLE_METRICS

logger = logging.getLogger(__name__)


def _models(df: pd.DataFrame) -> list[str]:
    if not isinstance(df.columns, pd.MultiIndex):
        raise ValueError("expected the wide table from build_table (columns = (model, metric))")
    return list(dict.fromkeys(df.columns.get_level_values(0)))


def _draw_bars(ax: Axes, df: pd.DataFrame, col: tuple[str, str], xs: np.ndarray, width: float) -> None:
    """One model's bars for one metric; missing values are marked "n/a" instead of a bar."""
    values = df[col].astype(float).to_numpy() * 100 if col in df.columns else np.full(len(xs), np.nan)
    ax.bar(xs, np.nan_to_num(values), width, label=col[0])
    for x, v in zip(xs, values, strict=True):
        if np.isnan(v):
            ax.text(x, 1, "n/a", ha="center", va="bottom", fontsize="x-small", rotation=90)


def plot_safety_helpfulness(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    metric_names: Sequence[str] = TABLE_METRICS,
    dpi: int = 120,
) -> None:
    """Write a PNG with one panel per metric: grouped bars (benchmarks × models) in percent.

    Args:
        df: Wide table from :func:`safervlm.report.tables.build_table`.
        path: Output PNG path (written atomically: temp file, then rename).
        metric_names: Metrics to plot, one panel each.
        dpi: Resolution of the PNG.
    """
    models = _models(df)
    benchmarks = [str(b) for b in df.index]
    x = np.arange(len(benchmarks))
    width = 0.8 / max(1, len(models))
    fig = Figure(figsize=(max(6.0, 1.2 * len(benchmarks) + 2), 3.2 * len(metric_names)), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(metric_names), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metric_names, strict=True):
        for i, model in enumerate(models):
            _draw_bars(ax, df, (model, metric), x + (i - (len(models) - 1) / 2) * width, width)
        ax.set_ylabel(f"{metric} (%)")
        ax.set_ylim(0, 105)
        ax.set_xticks(x, benchmarks, rotation=20, ha="right")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    axes[0].set_title("Safety and helpfulness per benchmark: attack none, items pooled (table.md; n/a: none)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    logger.info("wrote figure %s", path)


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    logger.info("wrote figure %s", path)


BLIND_SPOT_TOP = 10


def blind_spot_rows(blind: pd.DataFrame, tax: pd.DataFrame, top: int = BLIND_SPOT_TOP) -> pd.DataFrame:
    """The blind spots the figure draws: per (reasoning, base) pair, the ``top`` scenarios with
    the largest ratio above 1 where the mean tax is positive (a real gap, no zero rows), with
    the scenario tax's 95% interval from ``tax`` (ASR F, category level)."""
    ci = tax[tax["metric"] == "asr_full"].rename(columns={"value": "tax_value"})
    keys = ["reasoning_model", "base_model", "benchmark", "attack", "category"]
    df = blind[(blind["mean_tax"] > 0) & (blind["ratio"] > 1)].merge(
        ci[[*keys, "ci_low", "ci_high"]], on=keys, how="left"
    )
    df = df.sort_values("ratio", ascending=False, kind="stable")
    return df.groupby(["reasoning_model", "base_model"], sort=False).head(top).reset_index(drop=True)


def plot_blind_spots(
    blind: pd.DataFrame,
    tax: pd.DataFrame,
    path: str | os.PathLike[str],
    top: int = BLIND_SPOT_TOP,
    dpi: int = 120,
) -> None:
    """Compact blind-spot figure: one panel per (reasoning, base) pair, the ``top`` scenarios by
    ratio (scenario tax / mean tax > 1): the scenario's tax with its 95% interval, the
    benchmark's mean tax as a tick, the ratio at the right (:func:`blind_spot_rows`)."""
    df = blind_spot_rows(blind, tax, top)
    shown = set(zip(df["reasoning_model"], df["base_model"], strict=True))
    declared = dict.fromkeys(zip(blind["reasoning_model"], blind["base_model"], strict=True))
    pairs = [p for p in declared if p in shown]  # declared order
    heights = [max(1, int(((df["reasoning_model"] == r) & (df["base_model"] == b)).sum())) for r, b in pairs]
    fig = Figure(figsize=(6.5, 0.32 * sum(heights) + 1.0 * max(1, len(pairs)) + 0.4), dpi=dpi)
    FigureCanvasAgg(fig)
    if not pairs:
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No blind spot: no scenario's tax exceeds its benchmark's (positive) mean tax",
                ha="center", va="center", fontsize="small")  # fmt: skip
        _save(fig, path)
        return
    grid = {"height_ratios": heights}
    axes = fig.subplots(len(pairs), 1, squeeze=False, sharex=True, gridspec_kw=grid)[:, 0]
    for ax, (r, b) in zip(axes, pairs, strict=True):
        _blind_panel(ax, df[(df["reasoning_model"] == r) & (df["base_model"] == b)].iloc[::-1], f"{r} − {b}")
    axes[-1].set_xlabel("Reasoning Tax, ASR F (points); | = benchmark mean tax")
    fig.suptitle(
        f"Blind spots: top {top} scenarios by tax / mean tax (category level, tax.md)", fontsize="medium"
    )
    _save(fig, path)


def _blind_panel(ax: Axes, rows: pd.DataFrame, title: str) -> None:
    ys = np.arange(len(rows))
    value = rows["tax"].to_numpy(dtype=float) * 100
    low = rows["ci_low"].to_numpy(dtype=float) * 100
    high = rows["ci_high"].to_numpy(dtype=float) * 100
    err = [np.nan_to_num(value - low), np.nan_to_num(high - value)]
    ax.errorbar(value, ys, xerr=err, fmt="o", color="tab:red", ecolor="tab:gray", capsize=2, markersize=4)
    ax.scatter(rows["mean_tax"].to_numpy(dtype=float) * 100, ys, marker="|", color="black", s=80)
    labels = [f"{r.benchmark}/{r.category} ({r.attack})" for r in rows.itertuples()]
    ax.set_yticks(ys, labels, fontsize="small")
    for y, ratio in enumerate(rows["ratio"]):
        ax.annotate(f"×{ratio:.1f}", (1.0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize="x-small")  # fmt: skip
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_title(title, fontsize="small", loc="left")
    ax.grid(axis="x", alpha=0.3)


def plot_seed_safety(seeds: pd.DataFrame, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Safety per benchmark: one bar per model at the mean over seeds, error bars = the seed
    table's 95% Student-t interval (clipped to [0, 100], as there). Needs two or more seeds."""
    part = seeds[seeds["metric"] == "safety"]
    models = list(dict.fromkeys(part["model"]))
    benches = list(dict.fromkeys(part["benchmark"]))
    fig = Figure(figsize=(max(6.0, 0.9 * len(benches) * max(1, len(models)) / 2 + 2), 4.0), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / max(1, len(models))
    xs = np.arange(len(benches))
    for i, model in enumerate(models):
        rows = part[part["model"] == model].set_index("benchmark").reindex(benches)
        mean = rows["mean"].to_numpy(dtype=float) * 100
        low = np.nan_to_num(mean - rows["ci_low"].to_numpy(dtype=float) * 100)
        high = np.nan_to_num(rows["ci_high"].to_numpy(dtype=float) * 100 - mean)
        ax.bar(xs + (i - (len(models) - 1) / 2) * width, np.nan_to_num(mean), width,
               yerr=[low, high], capsize=2, label=model)  # fmt: skip
    ax.set_xticks(xs, benches, rotation=20, ha="right")
    ax.set_ylabel("safety (%)")
    ax.set_ylim(0, 105)
    n = int(part["n_seeds"].max()) if len(part) else 0
    ax.set_title(f"Safety per benchmark (attack none, items pooled): mean over {n} seeds,\n"
                 "95% Student-t interval clipped to [0, 100] (seeds.md)", fontsize="medium")  # fmt: skip
    if models:
        ax.legend(fontsize="small")
    _save(fig, path)


def plot_judge_agreement(agreement: pd.DataFrame, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Judge × judge matrix of Cohen's κ on the unsafe verdict (all benchmarks), % agreement below;
    with three or more judges Fleiss' κ in the title. Needs two or more judges."""
    allrows = agreement[(agreement["benchmark"] == "(all)") & (agreement["statistic"] == "cohen")]
    judges = list(dict.fromkeys([*allrows["judge_1"], *allrows["judge_2"]]))
    if len(judges) < 2:
        raise ValueError("the agreement figure needs two or more judges")
    k = len(judges)
    kappa, percent = np.full((k, k), np.nan), np.full((k, k), np.nan)
    np.fill_diagonal(kappa, 1.0)
    np.fill_diagonal(percent, 100.0)
    for _, r in allrows.iterrows():
        i, j = judges.index(r["judge_1"]), judges.index(r["judge_2"])
        kappa[i, j] = kappa[j, i] = r["kappa"]
        percent[i, j] = percent[j, i] = r["percent"]
    fig = Figure(figsize=(1.4 * k + 2.5, 1.2 * k + 1.5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(kappa), cmap="viridis", vmin=-1, vmax=1)
    for (i, j), v in np.ndenumerate(kappa):
        text = "κ n/a" if np.isnan(v) else f"κ {v:.2f}"
        ax.text(j, i, f"{text}\n{percent[i, j]:.0f}%", ha="center", va="center", fontsize="small",
                color="white" if not np.isnan(v) and v < 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(k), judges, rotation=20, ha="right")
    ax.set_yticks(range(k), judges)
    fleiss = agreement[(agreement["benchmark"] == "(all)") & (agreement["statistic"] == "fleiss")]
    extra = f"; Fleiss' κ (all {k}) {fleiss['kappa'].iloc[0]:.2f}" if len(fleiss) else ""
    ax.set_title(
        f"Judge agreement on the unsafe verdict\n(every item, attack and seed{extra})", fontsize="medium"
    )
    fig.colorbar(image, ax=ax, label="Cohen's κ")
    _save(fig, path)


def plot_safety_vs_helpfulness(points: pd.DataFrame, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Scatter of safety against helpfulness (percent), one colour per model, one point per benchmark:
    table.md's numbers (``tables.points``: attack none, items pooled)."""
    fig = Figure(figsize=(6.0, 4.5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for model, part in points.groupby("model", sort=False):
        ax.scatter(part["helpfulness"] * 100, part["safety"] * 100, label=str(model))
        for _, r in part.iterrows():
            ax.annotate(str(r["benchmark"]), (r["helpfulness"] * 100, r["safety"] * 100), fontsize="xx-small")
    ax.set_xlabel("helpfulness (%)")
    ax.set_ylabel("safety (%)")
    ax.set_xlim(-5, 105)
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
    if len(points):
        ax.legend(fontsize="small")
    ax.set_title(
        "Safety versus helpfulness per benchmark: attack none, items pooled (table.md)", fontsize="medium"
    )
    _save(fig, path)
