"""``safervlm judge``: judge every response with the configured judge."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from safervlm import tracking
from safervlm.config import parse_json_arg
from safervlm.errors import InputError
from safervlm.io import read_parquet, write_parquet
from safervlm.judge import build_judge, judge_frame
from safervlm.schema import GENERATION_COLUMNS, JUDGE_STATUSES, RESPONSE_COLUMNS, SCORE_COLUMNS
from safervlm.stages.args import judge_args


def judge_stage(
    responses_path: str,
    out: str,
    judge_name: str,
    judge_params: dict[str, Any],
    data_path: str | None = None,
    cache: str | None = None,
) -> dict[str, Any]:
    """Judge every response; keep the judge prompt, raw reply, scores and status per sample.

    ``data_path`` (the benchmark parquet) supplies the images, joined on ``id``; ``cache`` is
    the SQLite reply cache of model judges. Every sample ends ``scored``, ``unscored`` (with
    a reason) or ``error``; the three counts add up to ``n``.
    """

    required = [c for c in RESPONSE_COLUMNS if c not in GENERATION_COLUMNS]  # judge_frame fills those
    df = read_parquet(responses_path, required=required)
    if data_path:
        images = read_parquet(data_path, required=["id", "image"])[["id", "image"]]
        if images["id"].duplicated().any():
            raise InputError("duplicate sample ids", path=data_path)
        df = df.merge(images, on="id", how="left", validate="one_to_one")
    judge = build_judge(judge_name, judge_params, cache)
    out_df = judge_frame(judge, df)
    out_df["judge"] = f"{judge.name}@{judge.version}"
    write_parquet(out_df, out)
    counts = out_df["judge_status"].value_counts()
    summary: dict[str, Any] = {
        "n": len(out_df),
        **{f"n_{s}": int(counts.get(s, 0)) for s in JUDGE_STATUSES},
        "n_suspected_injection": int(out_df["suspected_injection"].sum()),
        **{f"mean_{c}": float(out_df[c].mean()) for c in SCORE_COLUMNS},
        **{k: v for k, v in judge.stats.items() if isinstance(v, int)},
    }
    tracking.log_stage(
        "judge",
        params={
            "judge": judge_name,
            "judge_version": judge.version,
            "judge_params": json.dumps(judge_params, sort_keys=True),
            "rubrics": ",".join(sorted(set(out_df["rubric"]) - {""})),
            "cache": cache or "",
            "responses": responses_path,
        },
        metrics=summary,
        # results/eval/{model}/{bench}/responses.parquet: one run name per model and benchmark
        run_name=f"judge:{Path(responses_path).parent.parent.name}:{Path(responses_path).parent.name}",
    )
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm judge`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument("--responses", required=True)
    p.add_argument("--data", default=None, help="benchmark parquet to join images from (by id)")
    p.add_argument("--out", required=True)
    judge_args(p)


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    params = parse_json_arg(a.judge_params, what="--judge-params")
    return judge_stage(a.responses, a.out, a.judge, params, data_path=a.data, cache=a.judge_cache)
