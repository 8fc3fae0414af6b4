"""``safervlm grpo``: GRPO (TRL GRPOTrainer) with the safety-aware rollout, rewarded via the judge."""

from __future__ import annotations

import argparse
from typing import Any

from safervlm.config import GRPOParams
from safervlm.stages.args import judge_kwargs, params_arg
from safervlm.train.grpo import run_grpo


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
