# Any two models compared item by item (eval.compare: paired tests only), after the
# declared (reasoning, base) pairs and the GRPO runs (COMPARE_PAIRS).
_unknown = sorted(
    {m for p in config["eval"].get("compare", []) for m in p} - set(EVAL_MODELS)
)
if _unknown:
    raise WorkflowError(f"eval.compare names {_unknown}, which are not in eval.models")
REPORT_COMPARE = list(
    dict.fromkeys(COMPARE_PAIRS + [tuple(p) for p in config["eval"].get("compare", [])])
)


# The figures a degenerate dimension leaves out (their tables say why): blind spots need a
# (reasoning, base) pair, the seed figure two seeds, the agreement figure two judges.
REPORT_FIGURES = {
    key: report(
        f"{R}/report/{key}.png",
        caption=f"../workflow/report/{key}.rst",
        category=category,
        subcategory=sub,
    )
    for key, drawn, category, sub in (
        ("blind_spots", bool(EVAL_PAIRS), "SafeMLRM", "Blind spots"),
        ("safety_seeds", len(SEEDS) > 1, "Robustness", "Seeds"),
        ("judge_agreement", len(JUDGES) > 1, "Robustness", "Judges"),
    )
    if drawn
}


rule report:
    input:
        metrics=eval_outputs("metrics.json"),
        judgments=eval_outputs("judgments.parquet"),
        # Every seed and judge: the seed, judge and paired tables.
        run_metrics=eval_outputs("metrics.json", SEEDS, list(JUDGES)),
        run_judgments=eval_outputs("judgments.parquet", SEEDS, list(JUDGES)),
        # With both GRPO runs: grpo_compare's learning curves over seeds, which the stage
        # appends to seeds.md (--seeds-append), so seeds.md shows them too.
        curves=rules.grpo_compare.output.curves if COMPARE_GRPO else [],
    output:
        # blind_spots.png, safety_seeds.png, judge_agreement.png where they apply
        **REPORT_FIGURES,
        table=report(
            f"{R}/report/table.md",
            caption="../workflow/report/table.rst",
            category="Results",
            subcategory="Safety and helpfulness",
        ),
        csv=f"{R}/report/table.csv",
        tex=f"{R}/report/table.tex",
        figure=report(
            f"{R}/report/safety_helpfulness.png",
            caption="../workflow/report/figure.rst",
            category="Results",
            subcategory="Safety and helpfulness",
        ),
        asr=report(
            f"{R}/report/asr.md",
            caption="../workflow/report/asr.rst",
            category="SafeMLRM",
            subcategory="Attack success rate",
        ),
        tax=report(
            f"{R}/report/tax.md",
            caption="../workflow/report/tax.rst",
            category="SafeMLRM",
            subcategory="Reasoning Tax",
        ),
        scatter=report(
            f"{R}/report/safety_vs_helpfulness.png",
            caption="../workflow/report/scatter.rst",
            category="Results",
            subcategory="Safety and helpfulness",
        ),
        blind_spots_table=report(
            f"{R}/report/blind_spots.md",
            caption="../workflow/report/blind_spots_table.rst",
            category="SafeMLRM",
            subcategory="Blind spots",
        ),
        self_correction=report(
            f"{R}/report/self_correction.md",
            caption="../workflow/report/self_correction.rst",
            category="SafeMLRM",
            subcategory="Self-correction",
        ),
        official=report(
            f"{R}/report/official.md",
            caption="../workflow/report/official.rst",
            category="SafeMLRM",
            subcategory="Official metrics",
        ),
        counts=report(
            f"{R}/report/counts.md",
            caption="../workflow/report/counts.rst",
            category="SafeMLRM",
            subcategory="Counts",
        ),
        seeds=report(
            f"{R}/report/seeds.md",
            caption="../workflow/report/seeds.rst",
            category="Robustness",
            subcategory="Seeds",
        ),
        judges=report(
            f"{R}/report/judges.md",
            caption="../workflow/report/judges.rst",
            category="Robustness",
            subcategory="Judges",
        ),
        judge_sensitivity=report(
            f"{R}/report/judge_sensitivity.md",
            caption="../workflow/report/judge_sensitivity.rst",
            category="Robustness",
            subcategory="Judges",
        ),
        paired=report(
            f"{R}/report/paired.md",
            caption="../workflow/report/paired.rst",
            category="Robustness",
            subcategory="Paired tests",
        ),
        tables=multiext(
            f"{R}/report/",
            "seeds.csv",
            "seed_tests.csv",
            "judges.csv",
            "agreement.csv",
            "paired.csv",
            "asr.csv",
            "asr.tex",
            "tax.csv",
            "tax.tex",
            "blind_spots.csv",
            "self_correction.csv",
            "official.csv",
            "rates.csv",
            "counts.csv",
        ),
    log:
        f"{R}/logs/report.log",
    benchmark:
        f"{R}/benchmarks/report.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("report"),
        out_dir=lambda w, output: os.path.dirname(output.table),
        pairs=pair_args(EVAL_PAIRS),
        compare=pair_args(REPORT_COMPARE),
        run_metrics=run_args("metrics.json"),
        run_judgments=run_args("judgments.parquet"),
        n_bootstrap=config["eval"]["n_bootstrap"],
        seed=config["seed"],
        threshold=config["eval"]["safemlrm"]["threshold"],
        missing=config["eval"]["safemlrm"]["missing"],
    shell:
        "safervlm report --metrics {input.metrics:q} --judgments {input.judgments:q}"
        " --out-dir {params.out_dir:q} --pair {params.pairs:q} --n-bootstrap {params.n_bootstrap:q}"
        " --seed {params.seed:q} --threshold {params.threshold:q} --missing {params.missing:q}"
        " --run-metrics {params.run_metrics:q} --run-judgments {params.run_judgments:q}"
        " --seeds-append {input.curves:q} --compare {params.compare:q} > {log:q} 2>&1"


# After every stage of the DAG (its inputs are the targets of `all`): reruns whenever they do.
rule mlflow_runs:
    input:
        rules.report.output,
        rules.grpo_compare.output if COMPARE_GRPO else [],
    output:
        md=report(
            f"{R}/report/mlflow_runs.md",
            caption="../workflow/report/mlflow_runs.rst",
            category="Provenance",
            subcategory="MLflow runs",
        ),
        csv=f"{R}/report/mlflow_runs.csv",
    log:
        f"{R}/logs/mlflow_runs.log",
    benchmark:
        f"{R}/benchmarks/mlflow_runs.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("mlflow-runs"),
    shell:
        "safervlm mlflow-runs --out {output.md:q} --csv {output.csv:q} > {log:q} 2>&1"
