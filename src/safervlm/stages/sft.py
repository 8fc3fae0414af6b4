"""``safervlm sft``: the SFT warm-up (TRL SFTTrainer) on QI-Safe."""

from __future__ import annotations

import argparse
from typing import Any

from safervlm.config import SFTParams
from safervlm.stages.args import params_arg
from safervlm.train.sft import run_sft


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm sft`` (collected by :func:`safervlm.cli.build_parser`)."""
    for flag in ("--model", "--data", "--out"):
        p.add_argument(flag, required=True)
    p.add_argument("--params", default="{}", help="sft section as JSON")
    p.add_argument("--seed", type=int, default=0)


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return run_sft(a.model, a.data, a.out, params_arg(SFTParams, a.params), seed=a.seed)
