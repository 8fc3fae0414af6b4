import json
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from safervlm import prefork
from safervlm.layout import judge_suffix, judged_name, run_judges, run_seeds, seed_dir
from safervlm.served import model_section, preflight_errors
from safervlm.workflow_support import (
    benchmark_module,
    code_digest,
    fill_benchmarks,
    fixture_writer_module,
    judge_module,
    launcher_env,
    log_pending_runs,
    missing_paths,
    stage_module,
    tracking_env,
    tracking_server_error,
    validate_config,
)

# Snakemake's validate(), skipped when this exact config validated before (workflow_support).
validate_config(
    config,
    f"{workflow.basedir}/workflow/schemas/config.schema.yaml",
    validate,
    cache=".snakemake/safervlm-config.json",
)
# Benchmark lists left out follow the registry (benchmarks/catalog.py).
fill_benchmarks(config)

R = config["results"]
FIXTURES = f"{R}/fixtures"
# Folder names of the training sources inside the synthetic fixtures.
FIXTURE_SOURCE_DIRS = {
    "beavertails_v": "train/beavertails_v",
    "spa_vl": "train/spa_vl",
    "vlguard_train": "train/vlguard",
}
EVAL_BENCHMARKS = config["eval"]["benchmarks"]
EVAL_MODELS = config["eval"]["models"]
BASE = config["base_model"]["path"] or f"{R}/models/base"
# The seed and judge dimensions (safervlm.layout, which the audit reads runs back with):
# one seed keeps today's paths, several put each seed's curation, training and evaluation
# under results/seeds/{seed}/ (a wildcard); one judge keeps judgments.parquet, several write
# judgments.{judge}.parquet next to the responses they judged.
SEEDS = run_seeds(config)
MULTI_SEED = len(SEEDS) > 1
SD = seed_dir(R, SEEDS, "{seed}")
JUDGES = run_judges(config)
MULTI_JUDGE = len(JUDGES) > 1
JS = judge_suffix(JUDGES, "{judge}")
# Served models (generate.models.<name>.backend: openai) need no local folder.
SERVED = [
    m
    for m in EVAL_MODELS
    if config["generate"]["models"]
    .get(m, {})
    .get("backend", config["generate"]["backend"])
    == "openai"
    and m not in config["eval"]["model_paths"]
]
# Models the DAG builds, then any further model by local path (external baselines).
MODEL_PATHS = {
    "base": BASE,
    "sft": f"{SD}/checkpoints/sft",
    "grpo": f"{SD}/checkpoints/grpo",
    "grpo_plain": f"{SD}/checkpoints/grpo_plain",
    **{m: m for m in SERVED},
    **config["eval"]["model_paths"],
}
EVAL_PAIRS = [tuple(p) for p in config["eval"]["pairs"]]
# Model pairs compared item by item (b - a): each declared pair's base -> reasoning model,
# sft -> grpo and plain -> safety-aware GRPO, where both are evaluated.
COMPARE_PAIRS = [
    p
    for p in dict.fromkeys(
        [(b, a) for a, b in EVAL_PAIRS] + [("sft", "grpo"), ("grpo_plain", "grpo")]
    )
    if set(p) <= set(EVAL_MODELS)
]
# Both GRPO runs are compared when both are evaluated.
COMPARE_GRPO = {"grpo", "grpo_plain"} <= set(EVAL_MODELS)
# The package whose modules the jobs run (their digests are the rules' ``code`` params).
PY = f"{workflow.basedir}/src/safervlm"
# Parsed import lists by content hash: a no-op rerun parses no module (codegraph.py).
CODE_CACHE = ".snakemake/safervlm-imports.json"


def _check_config():
    """Fail at parse time with every missing path named, before any job is scheduled."""
    unknown = [b for b in EVAL_BENCHMARKS if b not in config["benchmarks"]]
    if unknown:
        raise WorkflowError(
            f"eval.benchmarks names {unknown}, which are not configured under 'benchmarks' "
            f"(configured: {sorted(config['benchmarks'])})"
        )
    unknown = [m for m in EVAL_MODELS if m not in MODEL_PATHS]
    if unknown:
        raise WorkflowError(
            f"eval.models names {unknown} with no path: add them to eval.model_paths "
            f"(known: {sorted(MODEL_PATHS)})"
        )
    unpaired = sorted({m for p in EVAL_PAIRS for m in p} - set(EVAL_MODELS))
    if unpaired:
        raise WorkflowError(
            f"eval.pairs names {unpaired}, which are not in eval.models"
        )
    missing = missing_paths(config) + [
        f"eval.model_paths.{name}: {path}"
        for name, path in config["eval"]["model_paths"].items()
        if name in EVAL_MODELS and not os.path.exists(path)
    ]
    if missing:
        raise WorkflowError(
            "missing input paths in the config:\n  "
            + "\n  ".join(missing)
            + "\nPoint them at local copies (see docs/guides/evaluate.md, 'Running on real models and benchmarks')."
        )


_check_config()
os.environ.update(tracking_env(config, basedir=workflow.basedir))


# The pre-forked interpreter of a local run (onstart), stopped by onsuccess/onerror.
PREFORK = []


def served_to_check(jobs, served):
    """The served models among the ``generate`` jobs to run (each once, in order)."""
    wanted = [j.wildcards_dict.get("model") for j in jobs if j.rule.name == "generate"]
    return [m for m in dict.fromkeys(wanted) if m in served]


# A tracking server or a served model's endpoint that is down fails the run before any job
# computes anything. onstart: only when there are jobs to run, never in a dry run nor inside
# a job of a cluster run.
onstart:
    _why = tracking_server_error(dict(os.environ))
    if _why:
        raise WorkflowError(_why)
    # Every served model with a generate job to run: its endpoint answers, lists the model,
    # and its key variable is set (safervlm.served; `safervlm preflight` runs it by hand).
    _served = served_to_check(workflow.dag.needrun_jobs(), SERVED)
    _errors = preflight_errors(config["generate"], _served) if _served else []
    if _errors:
        raise WorkflowError("\n".join(_errors))
    # Local runs: one pre-forked interpreter imports torch, transformers, pandas … once and
    # forks each job's stage (safervlm.prefork; SAFERVLM_PREFORK=0 turns it off). Not worth
    # its own imports for a handful of jobs.
    if (
        workflow.local_exec
        and len(list(workflow.dag.needrun_jobs())) >= prefork.MIN_JOBS
    ):
        PREFORK.append(prefork.start(".snakemake/safervlm-prefork.log"))


# Light jobs leave MLflow run records; the mlflow_runs job logs them, and these hooks log any
# it did not reach (e.g. `snakemake audit`), also after a failure. A folder listing if none.
onsuccess:
    prefork.stop(PREFORK.pop() if PREFORK else None)
    _why = log_pending_runs(dict(os.environ))
    if _why:
        raise WorkflowError(_why)


onerror:
    prefork.stop(PREFORK.pop() if PREFORK else None)
    _why = log_pending_runs(dict(os.environ))
    if _why:
        print(_why, file=sys.stderr)


def as_json(section):
    """A config section as one compact JSON argument; as params, editing it reruns."""
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def pick(section, *keys):
    """Only the keys a job uses, so editing another key does not rerun it."""
    return {k: config[section][k] for k in keys}


def code(command, *plugins):
    """``{module: digest}`` of what ``safervlm <command>`` runs: the CLI, the stage module, the
    name-keyed plugins it loads (a judge, a benchmark) and everything they import.

    A param, so editing any of these modules reruns the job and nothing else does; where the
    checkout lives does not matter. tests/test_e2e.py checks it equals what each job loaded.
    """
    return code_digest(
        PY, ["cli.py", stage_module(command), *plugins], cache=CODE_CACHE
    )


def judge_cache():
    """The SQLite reply cache shared by model judges (keys include judge and rubric)."""
    return config["judge"]["cache"] or f"{R}/cache/judge.sqlite"


def judge_params(section="judge"):
    """Params ``judge``, ``judge_params`` (JSON), ``judge_cache`` for ``config[section]``."""
    return {
        "judge": config[section]["name"],
        "judge_params": as_json(config[section]["params"]),
        "judge_cache": judge_cache(),
    }


def adapter_module(bench):
    """The module of a benchmark (``benchmarks/<name>.py``), imported by name when loaded."""
    return [benchmark_module(bench)]


def bench_root(name):
    return config["benchmarks"][name]["root"] or f"{FIXTURES}/{name}"


def source_root(name):
    return config["sources"][name]["root"] or f"{FIXTURES}/{FIXTURE_SOURCE_DIRS[name]}"


def fixtures_if_needed(section, names):
    """The fixture roots of the entries that use fixtures (``root: null``)."""
    folder = {"benchmarks": lambda n: n, "sources": lambda n: FIXTURE_SOURCE_DIRS[n]}[
        section
    ]
    return [
        f"{FIXTURES}/{folder(n)}" for n in names if config[section][n]["root"] is None
    ]


# Fixture roots: every configured benchmark, and train/<folder> per training source.
FIXTURE_PATTERN = "|".join(
    [*sorted(config["benchmarks"]), *sorted(FIXTURE_SOURCE_DIRS.values())]
)


def fixture_size(name):
    """``--n-per-benchmark N`` or ``--n-train-per-source N``: only the size that fixture uses."""
    if name.startswith("train/"):
        return ["--n-train-per-source", config["fixtures"]["n_train_per_source"]]
    return ["--n-per-benchmark", config["fixtures"]["n_per_benchmark"]]


def bench_parquet(names):
    return [f"{R}/data/bench/{b}.parquet" for b in names]


# Keys only the safety-aware rollout reads: editing them does not rerun grpo_plain.
ROLLOUT_ONLY_KEYS = (
    "correction_mode",
    "correction_slots",
    "reflection_template",
    "correction_template",
    "reflection_max_tokens",
    "critique_and_correction",
    "continuation_template",
)


# The launcher's and the job's keys of a training section (launch_args, train_resources), not
# the stage's: a job shape or a memory request never reruns training.
LAUNCH_KEYS = ("processes", "nodes", "job")


def without_launch_keys(section):
    """A training section without LAUNCH_KEYS."""
    return {k: v for k, v in section.items() if k not in LAUNCH_KEYS}


def sft_section():
    """The ``sft`` section; with correction demonstrations, grpo's correction template too."""
    section = without_launch_keys(config["sft"])
    if section["correction_demos"] > 0:
        section["correction_template"] = config["grpo"]["correction_template"]
    return section


def grpo_section(variant):
    """The ``grpo`` config section for a GRPO model: ``grpo_plain`` turns the safety-aware rollout off."""
    section = without_launch_keys(config["grpo"])
    if variant == "grpo_plain":
        section["safety_aware"] = False
        for key in ROLLOUT_ONLY_KEYS:
            section.pop(key, None)
    return section


def seed_of(wildcards):
    """The seed of a job: its ``{seed}`` wildcard, or the one seed."""
    return int(wildcards.seed) if MULTI_SEED else SEEDS[0]


def seeded(path, seed):
    """A per-seed path pattern with the seed filled in."""
    return path.replace("{seed}", str(seed))


def judge_of(wildcards):
    """The judge label of a job: its ``{judge}`` wildcard, or the one judge."""
    return wildcards.judge if MULTI_JUDGE else next(iter(JUDGES))


def eval_judge_params(wildcards):
    """``--judge`` and ``--judge-params`` of one judge of the judge dimension."""
    spec = JUDGES[judge_of(wildcards)]
    return [spec["name"], as_json(spec["params"])]


def judge_code(wildcards):
    """The judge job's modules: the stage and that judge's plugin."""
    return code("judge", *judge_module(JUDGES[judge_of(wildcards)]["name"]))


def model_path(wildcards):
    """The local folder of a model (none for a served model: generate calls its endpoint)."""
    if wildcards.model in SERVED:
        return []
    return seeded(MODEL_PATHS[wildcards.model], seed_of(wildcards))


def model_arg(wildcards):
    """``--model``: the folder (with the seed) or a served model's name."""
    return seeded(MODEL_PATHS[wildcards.model], seed_of(wildcards))


def generate_params(wildcards):
    """The generate section for one model: shared keys, then that model's overrides."""
    return as_json(model_section(config["generate"], wildcards.model))


def attacks_for(bench):
    """The jailbreak transforms applied to one benchmark."""
    return config["eval"]["benchmark_attacks"].get(bench, config["eval"]["attacks"])


def judged(name):
    """``judgments.parquet`` or ``metrics.json`` of a judge: ``.{judge}`` before the suffix
    when there are several."""
    return judged_name(name, JUDGES, "{judge}")


def eval_outputs(name, seeds=None, judges=None):
    """``eval/{model}/{bench}/<name>`` for every evaluated model and benchmark, per seed and
    (for judged files) judge; by default the first seed and judge (the main tables)."""
    seeds = SEEDS[:1] if seeds is None else seeds
    judges = list(JUDGES)[:1] if judges is None else judges
    pattern = f"{SD}/eval/{{model}}/{{bench}}/" + (
        name if name.startswith("responses") else judged(name)
    )
    return expand(
        pattern,
        model=EVAL_MODELS,
        bench=EVAL_BENCHMARKS,
        seed=seeds,
        judge=judges,
        allow_missing=True,
    )


def run_args(name):
    """``SEED:JUDGE=path`` for every seed, judge, model and benchmark (the robustness stage)."""
    return [
        f"{seed}:{judge}={path}"
        for seed in SEEDS
        for judge in JUDGES
        for path in eval_outputs(name, [seed], [judge])
    ]


def eval_data(wildcards):
    """The benchmark a model is evaluated on: attacked when the benchmark has attacks."""
    if attacks_for(wildcards.bench) == ["none"]:
        return f"{R}/data/bench/{wildcards.bench}.parquet"
    return f"{R}/data/attack/{wildcards.bench}.parquet"


# Launch lines and resources for clusters (issue #8: Slurm, multi-GPU) ---------------
# $SAFERVLM_TRAIN_LAUNCH runs `safervlm <stage>` on every GPU of the job (accelerate), or as one
# plain process. Through the environment, not the shell command: where the checkout lives must
# not rerun training.
os.environ.update(launcher_env(workflow.basedir))
# Judges that load a model inside the job (not an HTTP endpoint, not rules) need a GPU.
LOCAL_MODEL_JUDGES = ("hf",)


def launch_args(stage):
    """The launcher's options for a training stage: its DeepSpeed config and its process count.

    Only what differs from the defaults, so a 1-process job's command line stays as it was.
    """
    ds, processes = config[stage]["deepspeed"], config[stage].get("processes", 1)
    return (["--deepspeed", ds] if ds else []) + (
        ["--processes", str(processes)] if processes > 1 else []
    )


def train_job(stage):
    """A training stage's ``job`` keys over their defaults, its processes and its nodes."""
    section = config[stage]
    job = {"device": "gpu", "cpus_per_process": 8, "mem_mb": 64000, "runtime": 720}
    job.update(section.get("job") or {})
    return job, section.get("processes", 1), section.get("nodes", 1)


def train_threads(stage):
    """A training job's threads: the CPUs its node's processes request (``job.cpus_per_process``
    each). Snakemake exports them (OMP_NUM_THREADS ...) so torch uses the CPUs the job holds;
    a local run caps them at ``--cores`` (the local profile sets 2)."""
    job, processes, nodes = train_job(stage)
    return job["cpus_per_process"] * max(1, processes // nodes)


def train_resources(stage):
    """What a training job requests (the slurm plugin's resources), from the stage's config:
    one GPU per process (``processes`` over ``nodes``), or CPU processes on one node.

    Memory and runtime grow with each retry (``attempt``). Local runs ignore all but mem_mb.
    """
    job, processes, nodes = train_job(stage)
    grow = {
        "mem_mb": lambda wildcards, attempt: job["mem_mb"] * attempt,
        "runtime": lambda wildcards, attempt: job["runtime"] * attempt,
    }
    if job["device"] == "cpu":
        return {"cpus_per_task": processes * job["cpus_per_process"], **grow}
    if nodes == 1:
        return {"gpu": processes, "cpus_per_gpu": job["cpus_per_process"], **grow}
    # One launcher per node through srun (workflow/scripts/train-launch); `gres` per node, as
    # `gpu` would be the job's total; tasks_per_gpu 0 keeps the plugin from adding
    # --ntasks-per-gpu.
    return {
        "nodes": nodes,
        "gres": f"gpu:{processes // nodes}",
        "mpi": "srun",
        "tasks": nodes,
        "tasks_per_gpu": 0,
        "cpus_per_gpu": job["cpus_per_process"],
        **grow,
    }


def judge_model_args():
    """``--judge-model M`` for the audit: the first judge's model, when it names one."""
    model = (next(iter(JUDGES.values())).get("params") or {}).get("model")
    return ["--judge-model", str(model)] if model else []


def judge_gpus(wildcards):
    """GPUs a judge job requests: 1 when its judge runs a local model."""
    return int(JUDGES[judge_of(wildcards)]["name"] in LOCAL_MODEL_JUDGES)


# The audit (rules/audit.smk) ------------------------------------------------------


def audit_expected():
    """Expectation files, relative to the working directory (a moved checkout plans nothing)."""
    return [
        os.path.relpath(f"{workflow.basedir}/{p}") for p in config["audit"]["expected"]
    ]


def audit_artifacts():
    """NAME=FOLDER of every configured release (relative to the working directory)."""
    return [
        f"{name}={os.path.relpath(f'{workflow.basedir}/{folder}')}"
        for name, folder in config["audit"]["artifacts"].items()
    ]


def audit_release_pins():
    """The .dvc files of the releases imported so far: a `dvc update` reruns the audit."""
    pins = [
        f"{workflow.basedir}/{f}.dvc" for f in config["audit"]["artifacts"].values()
    ]
    return [os.path.relpath(p) for p in pins if os.path.isfile(p)]


def pair_args(pairs):
    """``REASONING=BASE`` items, one shell word each."""
    return [f"{a}={b}" for a, b in pairs]
