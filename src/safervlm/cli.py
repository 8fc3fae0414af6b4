"""``safervlm``: one subcommand per pipeline stage; every Snakemake rule calls one.

This module only parses flags and dispatches: subcommand ``x-y`` runs
``safervlm.stages.x_y.main``, importing that one stage module (and what it imports) and no
other, so light stages start without torch and a job loads exactly the code its rule tracks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from typing import Any

from safervlm import __version__, prefork
from safervlm.errors import SafervlmError

log = logging.getLogger("safervlm")


def run_stage(args: argparse.Namespace) -> Any:
    """Import the subcommand's stage module and run its ``main`` with ``args``."""
    return importlib.import_module(f"safervlm.stages.{args.stage}").main(args)


def _add(sub: Any, name: str, help_: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
    p.set_defaults(stage=name.replace("-", "_"))
    return p


def _max_pixels_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-image-pixels",
        type=int,
        default=None,
        help="refuse images over this many pixels (data.max_image_pixels; default 178956970)",
    )


def _judge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judge", default="reference", help="judge registry name")
    p.add_argument("--judge-params", default="{}", help="judge parameters as JSON (never an API key)")
    p.add_argument("--judge-cache", default=None, help="SQLite reply cache for model judges")


def _many(p: argparse.ArgumentParser, flag: str, **kwargs: Any) -> None:
    """A list option whose repetitions accumulate (``--pair a=b --pair c=d`` keeps both)."""
    p.add_argument(flag, action="extend", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per stage."""
    parser = argparse.ArgumentParser(prog="safervlm", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    p = _add(sub, "fixtures", "write synthetic fixtures in each benchmark's official format")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-per-benchmark", type=int, default=24)
    p.add_argument("--n-train-per-source", type=int, default=120)
    p.add_argument("--only", help="write only this root: a benchmark, or train/<source>")

    p = _add(sub, "tiny-model", "build the offline tiny Qwen2.5-VL policy")
    _many(p, "--texts", nargs="+", required=True, help="parquet files whose text trains the tokenizer")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dims", default="{}", help="TinyDims as JSON")

    p = _add(sub, "prepare", "normalise a benchmark's local copy to parquet")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=None)
    _max_pixels_arg(p)

    p = _add(sub, "pool", "build the training pool from the sources (capped, categories mapped)")
    p.add_argument("--sources", required=True, help="sources section as JSON: name -> {root, cap, ...}")
    p.add_argument("--params", default="{}", help="curate keys as JSON (taxonomy)")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-source caps")
    p.add_argument("--out", required=True)
    _max_pixels_arg(p)

    p = _add(sub, "decontaminate", "remove pool rows that duplicate evaluation items")
    p.add_argument("--pool", required=True)
    _many(p, "--eval", nargs="+", required=True, help="benchmark parquet files ({name}.parquet)")
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--params", default="{}", help="curate keys as JSON (thresholds, image hash)")

    p = _add(sub, "qi-score", "sample K answers per prompt, judge them, score quality/instability")
    for flag in ("--model", "--pool", "--out", "--samples"):
        p.add_argument(flag, required=True)
    p.add_argument("--params", default="{}", help="curate keys as JSON (k_samples, score, ...)")
    p.add_argument("--seed", type=int, default=0)
    _judge_args(p)
    p.add_argument("--reward", default="structured", help="reward registry name (for score: reward)")
    p.add_argument("--reward-params", default="{}", help="reward parameters as JSON")

    p = _add(sub, "qi-select", "select QI-Safe from the quality-instability box; datasheet")
    for flag in ("--scores", "--pool", "--pool-summary", "--decontamination", "--out"):
        p.add_argument(flag, required=True)
    for flag in ("--datasheet", "--datasheet-json", "--figure"):
        p.add_argument(flag, required=True)
    p.add_argument("--params", default="{}", help="curate keys as JSON (box, target_size, allocation)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tie-breaking RNG")

    for name, help_ in (
        ("sft", "SFT warm-up (TRL SFTTrainer)"),
        ("grpo", "GRPO (TRL GRPOTrainer) rewarded through the judge"),
    ):
        p = _add(sub, name, help_)
        for flag in ("--model", "--data", "--out"):
            p.add_argument(flag, required=True)
        p.add_argument("--params", default="{}", help=f"{name} section as JSON")
        p.add_argument("--seed", type=int, default=0)
        if name == "grpo":
            _judge_args(p)
            p.add_argument(
                "--state-dir",
                default=None,
                help="run-state folder for checkpoints; a rerun with the same config resumes from it",
            )

    p = _add(sub, "grpo-compare", "plain vs safety-aware GRPO: table and safety curves")
    _many(p, "--runs", nargs="+", required=True, help="NAME=CHECKPOINT_DIR, in display order")
    _many(p, "--metrics", nargs="+", required=True, help="results/eval/{model}/{bench}/metrics.json")
    _many(p, "--judgments", nargs="*", default=[], help="their judgments.parquet (paired tests)")
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-png", required=True)

    p = _add(sub, "generate", "generate responses for one benchmark with one model")
    for flag in ("--model", "--model-name", "--data", "--out"):
        p.add_argument(flag, required=True)
    p.add_argument("--params", default="{}", help="generate section as JSON")
    p.add_argument("--seed", type=int, default=0)

    p = _add(sub, "preflight", "check every served model's endpoint (reachable, model listed, key set)")
    _many(
        p, "--config", nargs="+", required=True, help="config YAML files, merged in order as Snakemake does"
    )
    _many(p, "--model", nargs="+", default=None, help="models to check (default: eval.models)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per check")

    p = _add(sub, "judge", "judge responses")
    p.add_argument("--responses", required=True)
    p.add_argument("--data", default=None, help="benchmark parquet to join images from (by id)")
    p.add_argument("--out", required=True)
    _judge_args(p)

    p = _add(sub, "score", "aggregate judgments into metrics")
    p.add_argument("--judgments", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)

    p = _add(sub, "attack", "apply jailbreak transforms (none, vanilla, typo, sd_typo, figstep)")
    p.add_argument("--data", required=True, help="benchmark parquet")
    p.add_argument("--out", required=True)
    p.add_argument("--attacks", default="none", help="comma-separated attack names")
    p.add_argument("--image-size", type=int, default=336, help="side of rendered attack images (px)")

    p = _add(sub, "report", "tables and figures across models and benchmarks")
    _many(p, "--metrics", nargs="+", required=True, help="results/eval/{model}/{bench}/metrics.json")
    _many(p, "--judgments", nargs="*", default=[], help="judgments.parquet files (SafeMLRM analysis)")
    p.add_argument("--out-dir", required=True)
    _analysis_args(p)
    _many(p, "--run-metrics", nargs="*", default=[], metavar="SEED:JUDGE=PATH",
                   help="metrics.json of every seed and judge (seed, judge and paired tables)")  # fmt: skip
    _many(p, "--run-judgments", nargs="*", default=[], metavar="SEED:JUDGE=PATH",
                   help="judgments.parquet of every seed and judge, likewise")  # fmt: skip
    _many(p, "--compare", nargs="*", default=[], metavar="A=B", help="model pairs compared per item (b - a)")

    p = _add(sub, "audit", "recompute every reported number from the judgments and compare")
    p.add_argument(
        "--results", default="results", help="results folder (eval/{model}/{bench}/judgments.parquet)"
    )
    _many(p, "--expected", nargs="*", default=[], help="expectation YAML files (config/audit/*.yaml)")
    p.add_argument("--out-dir", help="write audit.md / audit.csv / audit.json here")
    p.add_argument("--report-rates", help="the report's rates.csv, cross-checked value by value")
    p.add_argument("--judgments-name", default="judgments.parquet",
                   help="the audited judge's file (judgments.<judge>.parquet with several)")  # fmt: skip
    p.add_argument("--judge-model", help="model of the judge that wrote the judgments (else from --config), "
                   "checked against the judge of cells that name one")  # fmt: skip
    p.add_argument("--dvc-lock", help="dvc.lock whose pinned hashes the artifacts are checked against")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a comparable cell or a report value mismatches")  # fmt: skip
    _many(p, "--audit-pair", nargs="*", default=[], metavar="REASONING=BASE",
                   help="pairs that published cells with 'pairs: config' refer to")  # fmt: skip
    p.add_argument("--pin", help="write the run's numbers as expectations to this YAML instead")
    _many(p, "--models", nargs="*", default=[], help="models to pin (with --pin)")
    _many(p, "--benchmarks", nargs="*", default=[], help="benchmarks to pin (with --pin)")
    p.add_argument("--note", default="", help="provenance note stored with pinned numbers")
    p.add_argument("--config", help="take results, models, benchmarks, pairs and settings from this config")
    _many(p, "--artifact", nargs="*", default=[], metavar="NAME=FOLDER",
          help="imported releases that cells with 'artifact: NAME' are recomputed from")  # fmt: skip
    _analysis_args(p)

    p = _add(sub, "import-artifact", "pin a path of a third-party git repository at a revision (dvc import)")
    p.add_argument("repo", help="git repository URL or local path")
    p.add_argument("path", help="path inside it, e.g. code/evaluation/statistic_results")
    p.add_argument("--rev", required=True, help="tag, branch or commit to pin")
    p.add_argument(
        "--out", required=True, help="folder to import into (relative to --project); out.dvc pins it"
    )
    p.add_argument("--project", default=".", help="the DVC project (git + dvc init) to import into")
    p.add_argument("--force", action="store_true", help="replace an existing import")

    p = _add(
        sub,
        "import-responses",
        "released generations (JSONL/parquet) -> eval/{model}/{bench}/responses.parquet",
    )
    p.add_argument("file", help="JSONL or parquet: id or question (+ image), benchmark, model, response")
    p.add_argument(
        "--data-dir", required=True, help="prepared benchmarks (results/data/bench/{bench}.parquet)"
    )
    p.add_argument("--results", default="results", help="write eval/{model}/{bench}/responses.parquet here")
    p.add_argument("--model", default=None, help="model name when the file has no model column")
    p.add_argument("--benchmark", default=None, help="benchmark name when the file has no benchmark column")
    p.add_argument("--allow-unmatched", action="store_true",
                   help="drop records matching no sample or several (listed)")  # fmt: skip
    p.add_argument("--field", action="append", default=[], metavar="OURS=THEIRS",
                   help="read our field from the file's, e.g. --field id=question_id --field response=text")  # fmt: skip
    p.add_argument("--fields", help="YAML mapping of our field names to the file's (--field wins)")

    p = _add(sub, "mlflow-runs",
             "list the MLflow run of each stage (current config hash) for the report")  # fmt: skip
    p.add_argument("--out", required=True, help="Markdown listing")
    p.add_argument("--csv", required=True, help="CSV listing")

    p = _add(sub, "import-opensafemlrm",
             "re-analyse OpenSafeMLRM's per-sample judged files and histograms")  # fmt: skip
    p.add_argument("dir", help="folder of OpenSafeMLRM result files")
    p.add_argument("--out", required=True, help="folder for the tables")
    p.add_argument("--benchmark", default="opensafemlrm", help="benchmark name in the tables")
    _analysis_args(p)
    return parser


def _analysis_args(p: argparse.ArgumentParser) -> None:
    _many(p, "--pair", nargs="*", default=[], metavar="REASONING=BASE", help="Reasoning Tax pairs")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="attack success: harm score >= this, 1-5 (default: safervlm.metrics.ASR_THRESHOLD)",
    )
    p.add_argument("--missing", default="count", help="unscored/empty parts: count (default) or exclude")
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, configure logging once, run the stage, map user errors to exit 2.

    From the command line (``argv`` None) inside a local Snakemake run, the stage runs in a
    child of the run's pre-forked interpreter when there is one (:mod:`safervlm.prefork`).
    """
    if argv is None:
        status = prefork.delegate(sys.argv[1:])
        if status is not None:
            return status
    args = build_parser().parse_args(argv)
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
