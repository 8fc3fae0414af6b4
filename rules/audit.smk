# The audit: every number recomputed from the per-sample judgments and compared with the
# published and pinned numbers of config/audit/, and the cells that name an imported
# third-party release (audit.artifacts, pinned by `safervlm import-artifact`, i.e.
# `dvc import`) recomputed under every definition variant. Not part of `all`: an auditor
# asks for it (`snakemake audit`), after `dvc pull` restored the pinned artifacts.


rule audit:
    input:
        judgments=eval_outputs("judgments.parquet"),
        rates=f"{R}/report/rates.csv",
        expected=audit_expected(),
        releases=audit_release_pins(),
    output:
        md=report(
            f"{R}/audit/audit.md",
            caption="../workflow/report/audit.rst",
            category="Audit",
            subcategory="Published and pinned numbers",
        ),
        csv=report(
            f"{R}/audit/audit.csv",
            caption="../workflow/report/audit_csv.rst",
            category="Audit",
            subcategory="Published and pinned numbers",
        ),
        json=f"{R}/audit/audit.json",
        variants=report(
            f"{R}/audit/audit_variants.csv",
            caption="../workflow/report/audit_variants.rst",
            category="Audit",
            subcategory="Definition variants",
        ),
    log:
        f"{R}/logs/audit.log",
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("audit"),
        pairs=pair_args(EVAL_PAIRS),
        audit_pairs=pair_args(config["audit"]["pairs"]),
        artifacts=audit_artifacts(),
        threshold=config["eval"]["safemlrm"]["threshold"],
        missing=config["eval"]["safemlrm"]["missing"],
        strict=["--strict"] if config["audit"]["strict"] else [],
        dvc_lock=os.path.relpath(f"{workflow.basedir}/dvc.lock"),
        out_dir=lambda w, output: os.path.dirname(output.md),
        # The main tables' run: the first seed's folder and the first judge's judgments.
        # (<results>/eval/<model>/<bench>/<judgments>: the folder above eval/).
        results=lambda w, input: os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.dirname(input.judgments[0])))
        ),
        judgments_name=judged("judgments.parquet").replace(
            "{judge}", next(iter(JUDGES))
        ),
        # The audited judge's model: a cell that names its protocol's judge is compared
        # with it (not comparable when another or unknown).
        judge_model=judge_model_args(),
    shell:
        "safervlm audit --results {params.results:q} --judgments-name {params.judgments_name:q}"
        " --expected {input.expected:q} --report-rates {input.rates:q}"
        " --pair {params.pairs:q} --audit-pair {params.audit_pairs:q} --artifact {params.artifacts:q}"
        " --threshold {params.threshold:q} --missing {params.missing:q} --dvc-lock {params.dvc_lock:q}"
        " {params.judge_model:q} --out-dir {params.out_dir:q} {params.strict:q} > {log:q} 2>&1"
