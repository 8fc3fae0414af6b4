import json
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

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


wildcard_constraints:
    bench="|".join(sorted(config["benchmarks"])),
    model="base|sft|grpo",


def _check_config():
    """Fail at parse time with every missing path named, before any job is scheduled."""
    unknown = [b for b in EVAL_BENCHMARKS if b not in config["benchmarks"]]
    if unknown:
        raise WorkflowError(
            f"eval.benchmarks names {unknown}, which are not configured under 'benchmarks' "
            f"(configured: {sorted(config['benchmarks'])})"
        )
    missing = []
    for section in ("benchmarks", "sources"):
        for name, entry in config[section].items():
            root = entry["root"]
            if root is None and not config["fixtures"]["build"]:
                missing.append(
                    f"{section}.{name}.root is null and fixtures.build is false"
                )
            elif root is not None and not Path(root).exists():
                missing.append(f"{section}.{name}.root: {root}")
    path = config["base_model"]["path"]
    if path is not None and not Path(path).exists():
        missing.append(f"base_model.path: {path}")
    for stage in ("sft", "grpo"):
        ds = config[stage]["deepspeed"]
        if ds is not None and not Path(ds).exists():
            missing.append(f"{stage}.deepspeed: {ds}")
    if missing:
        raise WorkflowError(
            "missing input paths in the config:\n  "
            + "\n  ".join(missing)
            + "\nPoint them at local copies (see README: 'Running on real models and benchmarks')."
        )


_check_config()

# Tracking settings reach every job through the environment (not the shell command),
# so changing them does not invalidate results.
_uri = config["mlflow"]["tracking_uri"]
if _uri.startswith("sqlite:///") and not _uri.startswith("sqlite:////"):
    _db = Path(_uri[len("sqlite:///") :]).resolve()
    _db.parent.mkdir(parents=True, exist_ok=True)
    _uri = f"sqlite:///{_db}"
os.environ.setdefault("MLFLOW_TRACKING_URI", _uri)
os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", config["mlflow"]["experiment"])
os.environ.setdefault(
    "SAFERVLM_MLFLOW_ARTIFACTS",
    str(Path(config["mlflow"]["artifact_location"]).resolve()),
)
os.environ.setdefault("SAFERVLM_MLFLOW", "1" if config["mlflow"]["enabled"] else "0")
os.environ["SAFERVLM_CONFIG_HASH"] = (
    __import__("hashlib")
    .sha256(json.dumps(config, sort_keys=True, default=str).encode())
    .hexdigest()[:12]
)


def as_json(section):
    """A config section as a compact JSON argument (also the rule's params, so edits rerun it)."""
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def pick(section, *keys):
    """Only the keys a rule uses, so editing another key does not rerun it."""
    return {k: config[section][k] for k in keys}


def code(*modules):
    """Package modules a rule runs, as inputs: editing them reruns the rule."""
    return [f"{PY}/{m}" for m in ("cli.py", "io.py", "tracking.py", *modules)]


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
