# The audit: every number recomputed from the per-sample judgments and compared with the
# published and pinned numbers of config/audit/. Not part of `all`: an auditor asks for it
# (`snakemake audit`), after `dvc pull` restored the pinned artifacts.


rule audit:
    input:
        judgments=eval_outputs("judgments.parquet"),
        rates=f"{R}/report/rates.csv",
        expected=audit_expected(),
        code=code(
            "audit.py",
            "evaluate/outcomes.py",
            "evaluate/safemlrm.py",
            "schema.py",
            "text.py",
        ),
    output:
        md=f"{R}/audit/audit.md",
        csv=f"{R}/audit/audit.csv",
        json=f"{R}/audit/audit.json",
    log:
        f"{R}/logs/audit.log",
    conda:
        "../envs/safervlm.yaml"
    params:
        pairs=pair_args(EVAL_PAIRS),
        audit_pairs=pair_args(config["audit"]["pairs"]),
        threshold=config["eval"]["safemlrm"]["threshold"],
        missing=config["eval"]["safemlrm"]["missing"],
        strict="--strict" if config["audit"]["strict"] else "",
        dvc_lock=f"{workflow.basedir}/dvc.lock",
        out_dir=lambda w, output: os.path.dirname(output.md),
        results=lambda w, output: os.path.dirname(os.path.dirname(output.md)),
    shell:
        "safervlm audit --results {params.results} --expected {input.expected} --report-rates {input.rates}"
        " --pair {params.pairs} --audit-pair {params.audit_pairs} --threshold {params.threshold}"
        " --missing {params.missing} --dvc-lock {params.dvc_lock} --out-dir {params.out_dir} {params.strict}"
        " > {log} 2>&1"
