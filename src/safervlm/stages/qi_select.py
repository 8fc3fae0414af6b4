"""QI selection stage: the box and stratified draw (QI-Safe), then its datasheet."""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path
from typing import Any

from safervlm import tracking
from safervlm.config import QISelectParams
from safervlm.curate.datasheet import build_datasheet, plot_datasheet, render_markdown
from safervlm.curate.qi import qi_select
from safervlm.errors import InputError
from safervlm.io import atomic_path, read_json, read_parquet, write_json, write_parquet, write_text
from safervlm.stages.args import params_arg

log = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def qi_select_stage(
    *,
    scores_path: str,
    pool_path: str,
    pool_summary_path: str,
    decontamination_path: str,
    out: str,
    datasheet_md: str,
    datasheet_json: str,
    figure: str,
    params: QISelectParams,
    seed: int,
) -> dict[str, Any]:
    """Write QI-Safe (``out``), its datasheet (markdown, JSON, PNG) and log the parquet's sha256.

    Raises:
        InputError: missing columns, duplicate score ids, no scored prompt, or an empty box.
    """
    scores = read_parquet(scores_path, required=["id", "quality", "instability", "n_scored"])
    dup = scores["id"].duplicated()
    if dup.any():
        raise InputError("duplicate prompt id", path=scores_path, record=scores.loc[dup, "id"].iloc[0])
    pool = read_parquet(pool_path, required=["id", "source", "category", "should_refuse"])
    pool_summary = read_json(pool_summary_path)
    decontamination = read_json(decontamination_path)
    selected, info = qi_select(scores, pool, params, seed, scores_path=scores_path)
    write_parquet(selected, out)
    sha = file_sha256(out)
    sheet = build_datasheet(
        selected=selected,
        clean=pool,
        scores=scores,
        info=info,
        pool_summary=pool_summary,
        decontamination=decontamination,
        params={**params.model_dump(), "seed": seed},
        sha256=sha,
    )
    write_json(sheet, datasheet_json)
    write_text(render_markdown(sheet, Path(figure).name), datasheet_md)
    with atomic_path(figure) as tmp:
        plot_datasheet(scores, selected, sheet, tmp)
    log.info("qi_select: wrote %d rows to %s (sha256 %s)", len(selected), out, sha)
    tracking.log_stage(
        "qi_select",
        params={**params.model_dump(), "seed": seed, "qi_safe_sha256": sha},
        metrics={k: v for k, v in info.items() if k.startswith("n_")},
        artifacts=[datasheet_md, datasheet_json, figure],
    )
    return {**info, "qi_safe_sha256": sha}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm qi-select`` (collected by :func:`safervlm.cli.build_parser`)."""
    for flag in ("--scores", "--pool", "--pool-summary", "--decontamination", "--out"):
        p.add_argument(flag, required=True)
    for flag in ("--datasheet", "--datasheet-json", "--figure"):
        p.add_argument(flag, required=True)
    p.add_argument("--params", default="{}", help="curate keys as JSON (box, target_size, allocation)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tie-breaking RNG")


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return qi_select_stage(
        scores_path=a.scores,
        pool_path=a.pool,
        pool_summary_path=a.pool_summary,
        decontamination_path=a.decontamination,
        out=a.out,
        datasheet_md=a.datasheet,
        datasheet_json=a.datasheet_json,
        figure=a.figure,
        params=params_arg(QISelectParams, a.params),
        seed=a.seed,
    )
