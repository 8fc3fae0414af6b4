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
    """Heat map of blind-spot ratios: scenarios (benchmark/category) × (pair, attack).

    Cells with no ratio (mean tax 0 or undefined) are left blank and marked "n/a".
    """
    df = blind.assign(
        scenario=blind["benchmark"] + "/" + blind["category"],
        column=blind["reasoning_model"] + "-" + blind["base_model"] + " " + blind["attack"],
    )
    grid = df.pivot_table(index="scenario", columns="column", values="ratio", sort=False, dropna=False)
    rows, cols = list(grid.index), list(grid.columns)
    fig = Figure(figsize=(max(4.0, 1.6 * len(cols) + 3), max(2.5, 0.35 * len(rows) + 1.5)), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    values = grid.to_numpy(dtype=float) if rows and cols else np.zeros((1, 1))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="Reds", aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize="x-small")
    ax.set_xticks(range(len(cols)), cols, rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), rows, fontsize="x-small")
    ax.set_title("Blind-spot ratio (scenario tax / mean tax, ASR full)")
    fig.colorbar(image, ax=ax)
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
