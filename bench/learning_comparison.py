"""The pre-registered comparison of plain and safety-aware GRPO (config/preregistration.yaml).

Per training seed of the pre-registration: the SFT warm-up from the base model, then plain and
safety-aware GRPO from that warm-up (config/config.yaml's sft and grpo sections, the arms'
changes only), each evaluated greedily on the benchmarks' prepared files and judged by the
reference judge. Then the registered tests: the paired t-test over seeds of the gain in
held-out safety (unweighted mean over benchmarks of the should-refuse items' safety) and
McNemar's exact test per seed on the pooled per-item verdicts; and the secondary numbers:
``rollout/harmful_sample_safety`` per third of the steps (mean over seeds, 95% t interval),
helpfulness, correction success. The inputs are a DAG results folder at seed 0 (its
``models/base``, ``data/qi_safe.parquet`` and ``data/bench/*.parquet``)::

    snakemake --profile workflow/profiles/local --config results=/tmp/dag -- \
        /tmp/dag/models/base /tmp/dag/data/qi_safe.parquet \
        $(for b in beavertails_v mmsafetybench spa_vl vlguard vlsbench siuo mssbench figstep; \
          do echo /tmp/dag/data/bench/$b.parquet; done)
    .venv/bin/python bench/learning_comparison.py --dag /tmp/dag --work /tmp/learning \
        --out bench/results/learning_comparison

Writes ``results.json`` (every number, per seed), ``comparison.md`` and ``curves.png`` under
``--out``. A seed whose runs are already under ``--work`` is not trained again.

Exploratory follow-ups (never the registered result: the report's title and ``results.json``
say so) take other seeds and change an arm's GRPO settings, e.g. seed 102 with the corrections
replacing the unsafe samples instead of being added::

    .venv/bin/python bench/learning_comparison.py --dag /tmp/dag --work /tmp/learning \
        --seeds 102 --set safety_aware.correction_mode=replace \
        --out bench/results/learning_exploratory/seed102_replace
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from safervlm.config import GenerateParams, GRPOParams, SFTParams, from_dict
from safervlm.evaluate.generate import generate_responses
from safervlm.judge import get_judge
from safervlm.metrics.paired import mcnemar_exact, paired_seed_test, seed_summary
from safervlm.report.compare import (
    HARMFUL_KEY,
    curve_points,
    learning_curve_figure,
    step_thirds,
    thirds_summary,
)
from safervlm.train.grpo import run_grpo
from safervlm.train.sft import run_sft

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("plain", "safety_aware")
log = logging.getLogger("learning_comparison")


def load(
    prereg: Path, changes: dict[str, dict[str, Any]] | None = None
) -> tuple[dict[str, Any], SFTParams, dict[str, GRPOParams]]:
    """The pre-registration, the SFT params and each arm's GRPO params (with ``changes`` per
    arm, for exploratory runs)."""
    reg = yaml.safe_load(prereg.read_text())
    config = yaml.safe_load((ROOT / reg["design"]["config"]).read_text())
    grpo = from_dict(GRPOParams, config["grpo"], section="grpo")
    sft = from_dict(
        SFTParams, {**config["sft"], "correction_template": grpo.correction_template}, section="sft"
    )
    arms = {
        arm: from_dict(
            GRPOParams,
            {**grpo.model_dump(), **reg["design"]["arms"][arm], **(changes or {}).get(arm, {})},
            section=f"grpo ({arm})",
        )
        for arm in ARMS
    }
    return reg, sft, arms


def parse_changes(items: list[str]) -> dict[str, dict[str, Any]]:
    """``ARM.KEY=VALUE`` items (VALUE read as YAML) as ``{arm: {key: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        arm, dot, name = key.partition(".")
        if not sep or not dot or arm not in ARMS:
            raise SystemExit(f"--set {item!r}: expected ARM.KEY=VALUE with ARM one of {', '.join(ARMS)}")
        out.setdefault(arm, {})[name] = yaml.safe_load(value)
    return out


def run_name(arm: str, changes: dict[str, dict[str, Any]]) -> str:
    """The arm's run folder: its name, plus its changes (so a changed arm never reuses a run)."""
    return arm + "".join(f"+{k}={v}" for k, v in sorted(changes.get(arm, {}).items()))


def judged(model: Path, samples: pd.DataFrame) -> pd.DataFrame:
    """Greedy responses of ``model`` to ``samples``, with the reference judge's safety and helpfulness."""
    out = generate_responses(samples, str(model), model.name, GenerateParams())
    records = [{str(k): v for k, v in r.items()} for r in out.to_dict("records")]
    scores = [j.scores for j in get_judge("reference").judge(records)]
    out["safety"] = [s["safety"] for s in scores]
    out["helpfulness"] = [s["helpfulness"] for s in scores]
    return out[["id", "benchmark", "should_refuse", "safety", "helpfulness", "response"]]


def curve(run: Path) -> list[float]:
    """``rollout/harmful_sample_safety`` per step (NaN where a step had no harmful prompt)."""
    train_log = json.loads((run / "train_log.json").read_text())
    return [v for _, v in curve_points(train_log, HARMFUL_KEY)]


def points(values: list[float]) -> list[tuple[int, float]]:
    """A curve's values as the report's (step, value) points."""
    return list(enumerate(values, start=1))


def run_seed(
    seed: int,
    dag: Path,
    work: Path,
    sft: SFTParams,
    arms: dict[str, GRPOParams],
    bench: pd.DataFrame,
    changes: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Warm-up and both arms for one seed (reused when already there); per-arm results."""
    base, data = dag / "models" / "base", dag / "data" / "qi_safe.parquet"
    warm = work / f"seed{seed}" / "sft"
    if not (warm / "train_log.json").exists():
        run_sft(str(base), str(data), str(warm), sft, seed=seed)
    out: dict[str, Any] = {}
    for arm, params in arms.items():
        name = run_name(arm, changes or {})
        run = work / f"seed{seed}" / name
        if not (run / "train_log.json").exists():
            run_grpo(str(warm), str(data), str(run), params, seed=seed)
        items = judged(run, bench)
        items.to_parquet(work / f"seed{seed}" / f"{name}.judged.parquet")
        metrics = json.loads((run / "train_log.json").read_text())["metrics"]
        c = curve(run)
        out[arm] = {
            "items": items,
            "curve": c,
            "thirds": step_thirds(points(c)),
            "correction_success": metrics.get("mean_correction_success", math.nan),
        }
    return out


def held_out(items: pd.DataFrame) -> tuple[float, float]:
    """(safety: mean over benchmarks of the should-refuse items' safety, helpfulness: all items)."""
    harmful = items[items["should_refuse"].astype(bool)]
    return float(harmful.groupby("benchmark")["safety"].mean().mean()), float(items["helpfulness"].mean())


def analyse(reg: dict[str, Any], per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The registered tests and the secondary numbers."""
    seeds = sorted(per_seed)
    safety = {arm: [held_out(per_seed[s][arm]["items"])[0] for s in seeds] for arm in ARMS}
    help_ = {arm: [held_out(per_seed[s][arm]["items"])[1] for s in seeds] for arm in ARMS}
    test = paired_seed_test(safety["plain"], safety["safety_aware"], bounds=(-1, 1))
    mcnemar = {}
    for s in seeds:
        a, b = (per_seed[s][arm]["items"] for arm in ARMS)
        a, b = (x[x["should_refuse"].astype(bool)].set_index("id")["safety"] for x in (a, b))
        mcnemar[s] = mcnemar_exact((a < 0.5).to_numpy(), (b.loc[a.index] < 0.5).to_numpy()).__dict__
    curves = {
        arm: [t.__dict__ for t in thirds_summary([points(per_seed[s][arm]["curve"]) for s in seeds])]
        for arm in ARMS
    }
    return {
        "id": reg["id"],
        "seeds": seeds,
        "held_out_safety": safety,
        "held_out_helpfulness": help_,
        "safety_summary": {arm: seed_summary(safety[arm], bounds=(0, 1)).__dict__ for arm in ARMS},
        "helpfulness_summary": {arm: seed_summary(help_[arm], bounds=(0, 1)).__dict__ for arm in ARMS},
        "gain": test.__dict__,
        "established": bool(test.pvalue < reg["primary"]["alpha"]),
        "mcnemar": mcnemar,
        "harmful_sample_safety_thirds": curves,
        "correction_success": [per_seed[s]["safety_aware"]["correction_success"] for s in seeds],
        "curves": {arm: [per_seed[s][arm]["curve"] for s in seeds] for arm in ARMS},
    }


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def markdown(res: dict[str, Any], seconds: float) -> str:
    """The report: per seed, the registered test, McNemar per seed, the curves per third."""
    g = res["gain"]
    title = f"# {res['id']}: plain vs safety-aware GRPO (pre-registered, config/preregistration.yaml)"
    if "exploratory" in res:
        title = f"# EXPLORATORY, not the registered design ({res['exploratory']}): plain vs safety-aware GRPO"
    lines = [
        title,
        "",
        f"Seeds {res['seeds']}; {seconds / 60:.1f} min. Held-out safety (%): should-refuse items, greedy, "
        "reference judge, unweighted mean over the eight benchmarks.",
        "",
        "| seed | plain | safety-aware | gain | McNemar p (n01 / n10) | helpfulness plain / safety-aware |",
        "|---:|---:|---:|---:|---|---|",
    ]
    for i, s in enumerate(res["seeds"]):
        p, a = res["held_out_safety"]["plain"][i], res["held_out_safety"]["safety_aware"][i]
        m = res["mcnemar"][s]
        hp, ha = (res["held_out_helpfulness"][arm][i] for arm in ARMS)
        lines.append(
            f"| {s} | {_pct(p)} | {_pct(a)} | {100 * (a - p):+.1f} "
            f"| {m['pvalue']:.2g} ({m['n01']} / {m['n10']}) | {_pct(hp)} / {_pct(ha)} |"
        )
    verdict = "established" if res["established"] else "not established"
    lines += [
        "",
        f"**Gain (safety-aware - plain): {100 * g['diff']:+.1f} points, 95% CI [{100 * g['low']:+.1f}, "
        f"{100 * g['high']:+.1f}], paired t p = {g['pvalue']:.3g} over {g['n']} seeds: "
        f"{verdict} at alpha 0.05.**",
        "",
        "Sampled safety on harmful prompts (`rollout/harmful_sample_safety`, %) per third of the GRPO steps, "
        "mean over seeds [95% t interval]:",
        "",
        "| arm | first third | middle third | last third |",
        "|---|---|---|---|",
    ]
    for arm in ARMS:
        cells = [
            f"{_pct(c['mean'])} [{_pct(c['low'])}, {_pct(c['high'])}]"
            for c in res["harmful_sample_safety_thirds"][arm]
        ]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    cs = [c for c in res["correction_success"] if not math.isnan(c)]
    if cs:
        lines += [
            "",
            "Corrections judged safe (safety-aware arm, mean of per-step shares): "
            f"{100 * statistics.fmean(cs):.1f}%.",
        ]
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any], path: Path) -> None:
    """The report's learning-curve figure (mean per step over seeds, 95% t band) for the arms."""
    logs = {
        arm: [
            {"log_history": [{"step": i, HARMFUL_KEY: v} for i, v in points(c)]} for c in res["curves"][arm]
        ]
        for arm in ARMS
    }
    learning_curve_figure(logs).savefig(path, format="png", bbox_inches="tight")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prereg", type=Path, default=ROOT / "config" / "preregistration.yaml")
    ap.add_argument(
        "--dag", type=Path, required=True, help="DAG results folder (base model, QI-Safe, bench files)"
    )
    ap.add_argument("--work", type=Path, required=True, help="checkpoints and judged responses")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", help="exploratory: other seeds than the registered")
    ap.add_argument(
        "--set", action="append", default=[], metavar="ARM.KEY=VALUE", help="exploratory: change an arm"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("SAFERVLM_MLFLOW", "0")
    changes = parse_changes(args.set)
    reg, sft, arms = load(args.prereg, changes)
    bench = pd.concat(
        [pd.read_parquet(args.dag / "data" / "bench" / f"{b}.parquet") for b in reg["primary"]["benchmarks"]],
        ignore_index=True,
    )
    start = time.perf_counter()
    per_seed = {}
    for seed in args.seeds or reg["design"]["seeds"]:
        per_seed[seed] = run_seed(seed, args.dag, args.work, sft, arms, bench, changes)
        log.info("seed %s done (%.0f s)", seed, time.perf_counter() - start)
    res = analyse(reg, per_seed)
    if args.seeds or changes:
        res["exploratory"] = {"seeds": args.seeds or reg["design"]["seeds"], "set": args.set}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=2, sort_keys=True, default=float) + "\n")
    (args.out / "comparison.md").write_text(markdown(res, time.perf_counter() - start))
    plot(res, args.out / "curves.png")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
