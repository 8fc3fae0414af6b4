rule report:
    input:
        metrics=expand(
            f"{R}/eval/{{model}}/{{bench}}/metrics.json",
            model=EVAL_MODELS,
            bench=EVAL_BENCHMARKS,
        ),
        code=code("stages/evaluate.py", "report/tables.py", "report/figures.py"),
    output:
        table=report(
            f"{R}/report/table.md",
            caption="../workflow/report/table.rst",
            category="Results",
        ),
        csv=f"{R}/report/table.csv",
        tex=f"{R}/report/table.tex",
        figure=report(
            f"{R}/report/safety_helpfulness.png",
            caption="../workflow/report/figure.rst",
            category="Results",
        ),
    log:
        f"{R}/logs/report.log",
    benchmark:
        f"{R}/benchmarks/report.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        out_dir=lambda w, output: os.path.dirname(output.table),
    shell:
        "safervlm report --metrics {input.metrics} --out-dir {params.out_dir} > {log} 2>&1"
