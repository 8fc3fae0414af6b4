from snakemake.utils import min_version

min_version("9.0")


# Absolute so the workflow also runs with --directory elsewhere.
configfile: f"{workflow.basedir}/config/config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"


wildcard_constraints:
    bench="|".join(sorted(config["benchmarks"])),
    model="|".join(sorted(MODEL_PATHS)),
    seed="|".join(str(s) for s in SEEDS),
    judge="|".join(sorted(JUDGES)),


include: "rules/data.smk"
include: "rules/curate.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/audit.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
        rules.grpo_compare.output if COMPARE_GRPO else [],
        rules.mlflow_runs.output,
