"""``safervlm``: one subcommand per pipeline stage; every Snakemake rule calls one.

Imports are lazy so light stages (judge, score, report) start without torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from safervlm import __version__
from safervlm.errors import SafervlmError
from safervlm.metrics.asr import ASR_THRESHOLD

log = logging.getLogger("safervlm")


def _params(cls: Any, text: str, section: str) -> Any:
    from safervlm.config import from_dict, parse_json_arg

    return from_dict(cls, parse_json_arg(text, what=f"--params ({section})"), section=section)


def _json(text: str, what: str) -> dict[str, Any]:
    from safervlm.config import parse_json_arg

    return parse_json_arg(text, what=what)


def cmd_fixtures(a: argparse.Namespace) -> Any:
    from safervlm.stages.data import fixtures

    return fixtures(a.out, a.seed, a.n_per_benchmark, a.n_train_per_source)


def cmd_tiny_model(a: argparse.Namespace) -> Any:
    from safervlm.stages.data import tiny_model

    return tiny_model(a.texts, a.out, a.seed, _json(a.dims, "--dims"))


def cmd_prepare(a: argparse.Namespace) -> Any:
    from safervlm.stages.data import prepare

    return prepare(a.benchmark, a.root, a.out, limit=a.limit, max_image_pixels=a.max_image_pixels)


def cmd_pool(a: argparse.Namespace) -> Any:
    from safervlm.curate.pool import PoolParams
    from safervlm.stages.pool import pool_stage

    return pool_stage(
        _json(a.sources, "--sources"),
        a.out,
        _params(PoolParams, a.params, "curate"),
        a.seed,
        max_image_pixels=a.max_image_pixels,
    )


def cmd_decontaminate(a: argparse.Namespace) -> Any:
    from safervlm.curate.decontaminate import DecontaminateParams
    from safervlm.stages.curate import decontaminate_stage

    return decontaminate_stage(
        a.pool, a.eval, a.out, a.report, _params(DecontaminateParams, a.params, "curate")
    )


def cmd_qi_score(a: argparse.Namespace) -> Any:
    from safervlm.curate.scoring import QIScoreParams
    from safervlm.stages.curate import qi_score_stage

    return qi_score_stage(
        a.model,
        a.pool,
        a.out,
        a.samples,
        _params(QIScoreParams, a.params, "curate"),
        judge_name=a.judge,
        judge_params=_json(a.judge_params, "--judge-params"),
        judge_cache=a.judge_cache,
        reward=a.reward,
        reward_params=_json(a.reward_params, "--reward-params"),
        seed=a.seed,
    )


def cmd_qi_select(a: argparse.Namespace) -> Any:
    from safervlm.curate.qi import QISelectParams
    from safervlm.stages.qi_select import qi_select_stage

    return qi_select_stage(
        scores_path=a.scores,
        pool_path=a.pool,
        pool_summary_path=a.pool_summary,
        decontamination_path=a.decontamination,
        out=a.out,
        datasheet_md=a.datasheet,
        datasheet_json=a.datasheet_json,
        figure=a.figure,
        params=_params(QISelectParams, a.params, "curate"),
        seed=a.seed,
    )


def cmd_sft(a: argparse.Namespace) -> Any:
    from safervlm.config import SFTParams
    from safervlm.train.sft import run_sft

    return run_sft(a.model, a.data, a.out, _params(SFTParams, a.params, "sft"), seed=a.seed)


def cmd_grpo(a: argparse.Namespace) -> Any:
    from safervlm.config import GRPOParams
    from safervlm.train.grpo import run_grpo

    return run_grpo(
        a.model,
        a.data,
        a.out,
        _params(GRPOParams, a.params, "grpo"),
        judge_name=a.judge,
        judge_params=_json(a.judge_params, "--judge-params"),
        judge_cache=a.judge_cache,
        seed=a.seed,
        state_root=a.state_dir,
    )


def cmd_grpo_compare(a: argparse.Namespace) -> Any:
    from safervlm.report.compare import compare_grpo

    runs = dict(r.split("=", 1) for r in a.runs)
    return compare_grpo(runs, a.metrics, a.out_md, a.out_png)


def cmd_generate(a: argparse.Namespace) -> Any:
    from safervlm.config import GenerateParams
    from safervlm.stages.evaluate import generate_stage

    return generate_stage(
        a.model, a.model_name, a.data, a.out, _params(GenerateParams, a.params, "generate"), a.seed
    )


def cmd_judge(a: argparse.Namespace) -> Any:
    from safervlm.stages.evaluate import judge_stage

    return judge_stage(
        a.responses,
        a.out,
        a.judge,
        _json(a.judge_params, "--judge-params"),
        data_path=a.data,
        cache=a.judge_cache,
    )


def cmd_score(a: argparse.Namespace) -> Any:
    from safervlm.stages.evaluate import score_stage

    return score_stage(a.judgments, a.out, a.n_bootstrap, a.seed)


def cmd_attack(a: argparse.Namespace) -> Any:
    from safervlm.stages.evaluate import attack_stage

    return attack_stage(a.data, a.out, [x for x in a.attacks.split(",") if x], a.image_size)


def _pairs(items: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        reasoning, sep, base = item.partition("=")
        if not sep or not reasoning or not base:
            raise SafervlmError(f"--pair expects REASONING=BASE, got {item!r}")
        pairs.append((reasoning, base))
    return pairs


def _settings(a: argparse.Namespace) -> Any:
    from safervlm.metrics import Settings

    try:
        return Settings(threshold=a.threshold, missing=a.missing, n_bootstrap=a.n_bootstrap, seed=a.seed)
    except ValueError as exc:
        raise SafervlmError(str(exc)) from exc


def cmd_report(a: argparse.Namespace) -> Any:
    from safervlm.stages.evaluate import report_stage

    return report_stage(a.metrics, a.out_dir, a.judgments, _pairs(a.pair), _settings(a))


def cmd_mlflow_runs(a: argparse.Namespace) -> Any:
    from safervlm.stages.provenance import mlflow_runs_stage

    return mlflow_runs_stage(a.out, a.csv)


def cmd_import_opensafemlrm(a: argparse.Namespace) -> Any:
    from safervlm.stages.evaluate import import_stage

    return import_stage(a.dir, a.out, _pairs(a.pair), _settings(a), a.benchmark)


def cmd_audit(a: argparse.Namespace) -> Any:
    from safervlm.report.audit import AuditInputs, inputs_from_config
    from safervlm.stages.audit import audit_stage, pin_stage

    inputs = AuditInputs(
        results=a.results, expected=a.expected, models=a.models, benchmarks=a.benchmarks,
        pairs=_pairs(a.pair), audit_pairs=_pairs(a.audit_pair), threshold=a.threshold, missing=a.missing,
    )  # fmt: skip
    if a.config:  # results, models, benchmarks, pairs and analysis settings from a config file
        inputs = inputs_from_config(a.config, inputs)
    if a.pin:
        return pin_stage(inputs, a.pin, a.note)
    return audit_stage(inputs, a.out_dir, a.dvc_lock, a.report_rates, a.strict)


def _add(sub: Any, name: str, fn: Callable[[argparse.Namespace], Any], help_: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
    p.set_defaults(func=fn)
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per stage."""
    parser = argparse.ArgumentParser(prog="safervlm", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    p = _add(sub, "fixtures", cmd_fixtures, "write synthetic fixtures in each benchmark's official format")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-per-benchmark", type=int, default=24)
    p.add_argument("--n-train-per-source", type=int, default=120)

    p = _add(sub, "tiny-model", cmd_tiny_model, "build the offline tiny Qwen2.5-VL policy")
    p.add_argument("--texts", nargs="+", required=True, help="parquet files whose text trains the tokenizer")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dims", default="{}", help="TinyDims as JSON")

    p = _add(sub, "prepare", cmd_prepare, "normalise a benchmark's local copy to parquet")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=None)
    _max_pixels_arg(p)

    p = _add(sub, "pool", cmd_pool, "build the training pool from the sources (capped, categories mapped)")
    p.add_argument("--sources", required=True, help="sources section as JSON: name -> {root, cap, ...}")
    p.add_argument("--params", default="{}", help="curate keys as JSON (taxonomy)")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-source caps")
    p.add_argument("--out", required=True)
    _max_pixels_arg(p)

    p = _add(sub, "decontaminate", cmd_decontaminate, "remove pool rows that duplicate evaluation items")
    p.add_argument("--pool", required=True)
    p.add_argument("--eval", nargs="+", required=True, help="benchmark parquet files ({name}.parquet)")
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--params", default="{}", help="curate keys as JSON (thresholds, image hash)")

    p = _add(
        sub, "qi-score", cmd_qi_score, "sample K answers per prompt, judge them, score quality/instability"
    )
    for flag in ("--model", "--pool", "--out", "--samples"):
        p.add_argument(flag, required=True)
    p.add_argument("--params", default="{}", help="curate keys as JSON (k_samples, score, ...)")
    p.add_argument("--seed", type=int, default=0)
    _judge_args(p)
    p.add_argument("--reward", default="structured", help="reward registry name (for score: reward)")
    p.add_argument("--reward-params", default="{}", help="reward parameters as JSON")

    p = _add(sub, "qi-select", cmd_qi_select, "select QI-Safe from the quality-instability box; datasheet")
    for flag in ("--scores", "--pool", "--pool-summary", "--decontamination", "--out"):
        p.add_argument(flag, required=True)
    for flag in ("--datasheet", "--datasheet-json", "--figure"):
        p.add_argument(flag, required=True)
    p.add_argument("--params", default="{}", help="curate keys as JSON (box, target_size, allocation)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tie-breaking RNG")

    for name, fn, help_ in (
        ("sft", cmd_sft, "SFT warm-up (TRL SFTTrainer)"),
        ("grpo", cmd_grpo, "GRPO (TRL GRPOTrainer) rewarded through the judge"),
    ):
        p = _add(sub, name, fn, help_)
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

    p = _add(sub, "grpo-compare", cmd_grpo_compare, "plain vs safety-aware GRPO: table and safety curves")
    p.add_argument("--runs", nargs="+", required=True, help="NAME=CHECKPOINT_DIR, in display order")
    p.add_argument("--metrics", nargs="+", required=True, help="results/eval/{model}/{bench}/metrics.json")
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-png", required=True)

    p = _add(sub, "generate", cmd_generate, "generate responses for one benchmark with one model")
    for flag in ("--model", "--model-name", "--data", "--out"):
        p.add_argument(flag, required=True)
    p.add_argument("--params", default="{}", help="generate section as JSON")
    p.add_argument("--seed", type=int, default=0)

    p = _add(sub, "judge", cmd_judge, "judge responses")
    p.add_argument("--responses", required=True)
    p.add_argument("--data", default=None, help="benchmark parquet to join images from (by id)")
    p.add_argument("--out", required=True)
    _judge_args(p)

    p = _add(sub, "score", cmd_score, "aggregate judgments into metrics")
    p.add_argument("--judgments", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)

    p = _add(sub, "attack", cmd_attack, "apply jailbreak transforms (none, vanilla, typo, sd_typo, figstep)")
    p.add_argument("--data", required=True, help="benchmark parquet")
    p.add_argument("--out", required=True)
    p.add_argument("--attacks", default="none", help="comma-separated attack names")
    p.add_argument("--image-size", type=int, default=336, help="side of rendered attack images (px)")

    p = _add(sub, "report", cmd_report, "tables and figures across models and benchmarks")
    p.add_argument("--metrics", nargs="+", required=True, help="results/eval/{model}/{bench}/metrics.json")
    p.add_argument("--judgments", nargs="*", default=[], help="judgments.parquet files (SafeMLRM analysis)")
    p.add_argument("--out-dir", required=True)
    _analysis_args(p)

    p = _add(sub, "audit", cmd_audit, "recompute every reported number from the judgments and compare")
    p.add_argument(
        "--results", default="results", help="results folder (eval/{model}/{bench}/judgments.parquet)"
    )
    p.add_argument("--expected", nargs="*", default=[], help="expectation YAML files (config/audit/*.yaml)")
    p.add_argument("--out-dir", help="write audit.md / audit.csv / audit.json here")
    p.add_argument("--report-rates", help="the report's rates.csv, cross-checked value by value")
    p.add_argument("--dvc-lock", help="dvc.lock whose pinned hashes the artifacts are checked against")
    p.add_argument("--strict", action="store_true", help="exit 1 when any cell does not match")
    p.add_argument("--audit-pair", nargs="*", default=[], metavar="REASONING=BASE",
                   help="pairs that published cells with 'pairs: config' refer to")  # fmt: skip
    p.add_argument("--pin", help="write the run's numbers as expectations to this YAML instead")
    p.add_argument("--models", nargs="*", default=[], help="models to pin (with --pin)")
    p.add_argument("--benchmarks", nargs="*", default=[], help="benchmarks to pin (with --pin)")
    p.add_argument("--note", default="", help="provenance note stored with pinned numbers")
    p.add_argument("--config", help="take results, models, benchmarks, pairs and settings from this config")
    _analysis_args(p)

    p = _add(sub, "mlflow-runs", cmd_mlflow_runs,
             "list the MLflow run of each stage (current config hash) for the report")  # fmt: skip
    p.add_argument("--out", required=True, help="Markdown listing")
    p.add_argument("--csv", required=True, help="CSV listing")

    p = _add(sub, "import-opensafemlrm", cmd_import_opensafemlrm,
             "re-analyse OpenSafeMLRM's per-sample judged files and histograms")  # fmt: skip
    p.add_argument("dir", help="folder of OpenSafeMLRM result files")
    p.add_argument("--out", required=True, help="folder for the tables")
    p.add_argument("--benchmark", default="opensafemlrm", help="benchmark name in the tables")
    _analysis_args(p)
    return parser


def _analysis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pair", nargs="*", default=[], metavar="REASONING=BASE", help="Reasoning Tax pairs")
    p.add_argument(
        "--threshold", type=float, default=ASR_THRESHOLD, help="attack success: harm score >= this (1-5)"
    )
    p.add_argument("--missing", default="count", help="unscored/empty parts: count (default) or exclude")
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, configure logging once, run the stage, map user errors to exit 2."""
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
        json.dumps({k: v for k, v in vars(args).items() if k != "func"}, default=str),
    )
    try:
        args.func(args)
    except SafervlmError as exc:
        log.error("%s", exc)
        print(f"safervlm {args.command}: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
