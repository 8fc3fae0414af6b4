"""The safety/helpfulness figure: grouped bars per benchmark, one bar per model.

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
    axes[0].set_title("Safety and helpfulness per benchmark (n/a: not available)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    logger.info("wrote figure %s", path)


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    logger.info("wrote figure %s", path)


def plot_blind_spots(blind: pd.DataFrame, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Blind-spot ratios (scenario tax / mean tax), only the cells that exist.

    One horizontal bar per (scenario, pair, attack) with a ratio, largest first: a heat map
    of every combination is mostly empty (a ratio needs a non-zero mean tax).
    """
    df = blind.dropna(subset=["ratio"]).assign(
        label=lambda d: d["benchmark"] + "/" + d["category"] + "  "
        + d["reasoning_model"] + "-" + d["base_model"] + " " + d["attack"]
    ).sort_values("ratio", ascending=True)  # fmt: skip
    fig = Figure(figsize=(6.5, max(2.0, 0.28 * len(df) + 1.2)), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if df.empty:
        ax.text(0.5, 0.5, "no blind-spot ratio is defined (every mean tax is 0)", ha="center", va="center")
        ax.set_axis_off()
    else:
        ys = np.arange(len(df))
        ratios = df["ratio"].to_numpy(dtype=float)
        ax.barh(ys, ratios, color=np.where(ratios > 1, "tab:red", "tab:gray"))
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_yticks(ys, list(df["label"]), fontsize="x-small")
        ax.set_xlabel("scenario tax / mean tax (ASR full); > 1: a blind spot")
    ax.set_title("Blind spots (cells with a ratio)")
    _save(fig, path)


def plot_seed_safety(seeds: pd.DataFrame, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Safety per benchmark: one bar per model at the mean over seeds, error bars = 95% interval."""
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
    ax.set_title(f"Safety per benchmark: mean over {n} seeds, 95% interval")
    if models:
        ax.legend(fontsize="small")
    _save(fig, path)


def plot_judge_agreement(agreement: pd.DataFrame, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Judge × judge matrix of Cohen's κ on the unsafe verdict (all benchmarks), % agreement below."""
    allrows = agreement[agreement["benchmark"] == "(all)"]
    judges = list(dict.fromkeys([*allrows["judge_1"], *allrows["judge_2"]]))
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
    if k < 2:  # one judge: nothing to agree with (an empty matrix would look like a failure)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "One judge:\nno agreement to show", ha="center", va="center")
        _save(fig, path)
        return
    image = ax.imshow(np.ma.masked_invalid(kappa), cmap="viridis", vmin=-1, vmax=1)
    for (i, j), v in np.ndenumerate(kappa):
        text = "κ n/a" if np.isnan(v) else f"κ {v:.2f}"
        ax.text(j, i, f"{text}\n{percent[i, j]:.0f}%", ha="center", va="center", fontsize="small",
                color="white" if not np.isnan(v) and v < 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(k), judges, rotation=20, ha="right")
    ax.set_yticks(range(k), judges)
    ax.set_title("Judge agreement on the unsafe verdict")
    fig.colorbar(image, ax=ax, label="Cohen's κ")
    _save(fig, path)


def plot_safety_vs_helpfulness(points: pd.DataFrame, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Scatter of safety against helpfulness (percent), one colour per model, one point per benchmark."""
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
    ax.set_title("Safety versus helpfulness per benchmark")
    _save(fig, path)
