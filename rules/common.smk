import json
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from safervlm.workflow_support import missing_paths, tracking_env

validate(config, "../workflow/schemas/config.schema.yaml", set_default=True)

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
MODEL_PATHS = {
    "base": BASE,
    "sft": f"{R}/checkpoints/sft",
    "grpo": f"{R}/checkpoints/grpo",
}
# Absolute, so the workflow also runs with --directory elsewhere (tests do).
PY = f"{workflow.basedir}/src/safervlm"


def _check_config():
    """Fail at parse time with every missing path named, before any job is scheduled."""
    unknown = [b for b in EVAL_BENCHMARKS if b not in config["benchmarks"]]
    if unknown:
        raise WorkflowError(
            f"eval.benchmarks names {unknown}, which are not configured under 'benchmarks' "
            f"(configured: {sorted(config['benchmarks'])})"
        )
    missing = missing_paths(config)
    if missing:
        raise WorkflowError(
            "missing input paths in the config:\n  "
            + "\n  ".join(missing)
            + "\nPoint them at local copies (see README: 'Running on real models and benchmarks')."
        )


_check_config()
os.environ.update(tracking_env(config))


def as_json(section):
    """A config section as one compact JSON argument; as params, editing it reruns."""
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def pick(section, *keys):
    """Only the keys a job uses, so editing another key does not rerun it."""
    return {k: config[section][k] for k in keys}


def code(*modules):
    """Package modules a job runs, as inputs; editing them reruns the job."""
    return [f"{PY}/{m}" for m in ("cli.py", "io.py", "tracking.py", *modules)]


def adapter_module(bench):
    """The adapter module of a benchmark, where it follows the bench_<name>.py convention."""
    path = f"data/bench_{bench}.py"
    return [path] if os.path.exists(f"{PY}/{path}") else []


def bench_root(name):
    return config["benchmarks"][name]["root"] or f"{FIXTURES}/{name}"


def source_root(name):
    return config["sources"][name]["root"] or f"{FIXTURES}/{FIXTURE_SOURCE_DIRS[name]}"


def fixtures_if_needed(section, names):
    """The fixture folder when any of these entries uses fixtures, else nothing."""
    uses = any(config[section][n]["root"] is None for n in names)
    return [FIXTURES] if uses else []


def bench_parquet(names):
    return [f"{R}/data/bench/{b}.parquet" for b in names]


def model_path(wildcards):
    return MODEL_PATHS[wildcards.model]


# Launch lines and resources for clusters (issue #8: Slurm, multi-GPU) ---------------
TRAIN_LAUNCH = f"{workflow.basedir}/workflow/scripts/train-launch"
# Judges that load a model inside the job (not an HTTP endpoint, not rules) need a GPU.
LOCAL_MODEL_JUDGES = ("hf",)


def train_launch(stage):
    """`safervlm <stage>` on every GPU of the job (accelerate), or one plain process."""
    ds = config[stage]["deepspeed"]
    return f"{TRAIN_LAUNCH} {f'--deepspeed {ds} ' if ds else ''}safervlm {stage}"


def judge_gpus():
    """GPUs a judge job requests: 1 when the configured judge runs a local model."""
    return int(config["judge"]["name"] in LOCAL_MODEL_JUDGES)
