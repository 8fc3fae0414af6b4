"""``safervlm``: one subcommand per pipeline stage; every Snakemake rule calls one.

This module only lists the subcommands, parses flags and dispatches: subcommand ``x-y``
declares its flags in ``safervlm.stages.x_y.add_arguments`` and runs
``safervlm.stages.x_y.main``; a run imports that one stage module (and what it imports) and
no other, so light stages start without torch and a job loads exactly the code its rule tracks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Iterable
from typing import Any

from safervlm import __version__, prefork
from safervlm.errors import SafervlmError

log = logging.getLogger("safervlm")


def run_stage(args: argparse.Namespace) -> Any:
    """Import the subcommand's stage module and run its ``main`` with ``args``."""
    return importlib.import_module(f"safervlm.stages.{args.stage}").main(args)


# Subcommand -> one-line help, in ``--help`` order. Its flags live with its stage module
# (``safervlm.stages.<name>.add_arguments``), imported only when that subcommand is parsed.
STAGES: dict[str, str] = {
    "fixtures": "write synthetic fixtures in each benchmark's official format",
    "tiny-model": "build the offline tiny Qwen2.5-VL policy",
    "prepare": "normalise a benchmark's local copy to parquet",
    "pool": "build the training pool from the sources (capped, categories mapped)",
    "decontaminate": "remove pool rows that duplicate evaluation items",
    "qi-score": "sample K answers per prompt, judge them, score quality/instability",
    "qi-select": "select QI-Safe from the quality-instability box; datasheet",
    "sft": "SFT warm-up (TRL SFTTrainer)",
    "grpo": "GRPO (TRL GRPOTrainer) rewarded through the judge",
    "grpo-compare": "plain vs safety-aware GRPO: table and safety curves",
    "generate": "generate responses for one benchmark with one model",
    "preflight": "check every served model's endpoint (reachable, model listed, key set)",
    "judge": "judge responses",
    "score": "aggregate judgments into metrics",
    "attack": "apply jailbreak transforms (none, vanilla, typo, sd_typo, figstep)",
    "report": "tables and figures across models and benchmarks",
    "audit": "recompute every reported number from the judgments and compare",
    "import-artifact": "pin a path of a third-party git repository at a revision (dvc import)",
    "import-responses": "released generations (JSONL/parquet) -> eval/{model}/{bench}/responses.parquet",
    "mlflow-runs": "list the MLflow run of each stage (current config hash) for the report",
    "import-opensafemlrm": "re-analyse OpenSafeMLRM's per-sample judged files and histograms",
}


def stage_module_name(command: str) -> str:
    """The stage module that runs ``safervlm <command>``."""
    return f"safervlm.stages.{command.replace('-', '_')}"


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser with one subcommand per stage.

    Args:
        commands: Subcommands whose flags to add, importing their stage modules (every one
            when None); the others are listed with their help only.
    """
    parser = argparse.ArgumentParser(prog="safervlm", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    wanted = set(STAGES if commands is None else commands)
    for name, help_ in STAGES.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(stage=name.replace("-", "_"))
        if name in wanted:
            importlib.import_module(stage_module_name(name)).add_arguments(p)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, configure logging once, run the stage, map user errors to exit 2.

    From the command line (``argv`` None) inside a local Snakemake run, the stage runs in a
    child of the run's pre-forked interpreter when there is one (:mod:`safervlm.prefork`).
    """
    if argv is None:
        status = prefork.delegate(sys.argv[1:])
        if status is not None:
            return status
    words = sys.argv[1:] if argv is None else argv
    args = build_parser([c for c in [_command_of(words)] if c in STAGES]).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # HTTP client transports log one INFO line per request (the judge's openai client among them).
    # (openai 3.x sends through httpx2/httpcore2; earlier releases through httpx/httpcore.)
    for noisy in ("alembic", "mlflow", "httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log.info(
        "safervlm %s %s",
        args.command,
        json.dumps({k: v for k, v in vars(args).items() if k != "stage"}, default=str),
    )
    try:
        run_stage(args)
    except SafervlmError as exc:
        log.error("%s", exc)
        print(f"safervlm {args.command}: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
