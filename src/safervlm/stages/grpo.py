"""``safervlm grpo``: GRPO (TRL GRPOTrainer) with the safety-aware rollout, rewarded via the judge."""

from __future__ import annotations

import argparse
from typing import Any

from safervlm.config import GRPOParams
from safervlm.stages.args import judge_args, judge_kwargs, params_arg
from safervlm.train.grpo import run_grpo


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm grpo`` (collected by :func:`safervlm.cli.build_parser`)."""
    for flag in ("--model", "--data", "--out"):
        p.add_argument(flag, required=True)
    p.add_argument("--params", default="{}", help="grpo section as JSON")
    p.add_argument("--seed", type=int, default=0)
    judge_args(p)
    p.add_argument(
        "--state-dir",
        default=None,
        help="run-state folder for checkpoints; a rerun with the same config resumes from it",
    )


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return run_grpo(
        a.model,
        a.data,
        a.out,
        params_arg(GRPOParams, a.params),
        **judge_kwargs(a),
        seed=a.seed,
        state_root=a.state_dir,
    )
