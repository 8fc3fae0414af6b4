rule decontaminate:
    input:
        pool=f"{R}/data/pool.parquet",
        evals=bench_parquet(sorted(config["benchmarks"])),
        code=code("stages/curate.py", "curate/decontaminate.py"),
    output:
        pool=f"{R}/data/pool.clean.parquet",
        report=f"{R}/data/decontamination.json",
    log:
        f"{R}/logs/decontaminate.log",
    benchmark:
        f"{R}/benchmarks/decontaminate.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        curate=as_json(pick("curate", "ngram")),
    shell:
        "safervlm decontaminate --pool {input.pool} --eval {input.evals} --out {output.pool}"
        " --report {output.report} --params '{params.curate}' > {log} 2>&1"


rule qi_score:
    input:
        model=BASE,
        pool=f"{R}/data/pool.clean.parquet",
        code=code(
            "stages/curate.py",
            "curate/qi.py",
            "evaluate/generate.py",
            "rewards/structured.py",
            "judge/reference.py",
            "judge/markers.py",
        ),
    output:
        scores=f"{R}/data/qi_scores.parquet",
        samples=f"{R}/data/qi_scores.samples.parquet",
    log:
        f"{R}/logs/qi_score.log",
    benchmark:
        f"{R}/benchmarks/qi_score.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        curate=as_json(
            pick("curate", "k_samples", "temperature", "max_new_tokens", "batch_size")
        ),
        judge=config["judge"]["name"],
        judge_params=as_json(config["judge"]["params"]),
        seed=config["seed"],
    shell:
        "safervlm qi-score --model {input.model} --pool {input.pool} --out {output.scores}"
        " --params '{params.curate}' --judge {params.judge} --judge-params '{params.judge_params}'"
        " --seed {params.seed} > {log} 2>&1"


rule qi_select:
    input:
        scores=f"{R}/data/qi_scores.parquet",
        pool=f"{R}/data/pool.clean.parquet",
        code=code("stages/curate.py", "curate/qi.py"),
    output:
        qi_safe=f"{R}/data/qi_safe.parquet",
        datasheet=report(
            f"{R}/data/qi_safe.datasheet.md",
            caption="../workflow/report/datasheet.rst",
            category="Data",
        ),
    log:
        f"{R}/logs/qi_select.log",
    benchmark:
        f"{R}/benchmarks/qi_select.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        curate=as_json(config["curate"]),
        seed=config["seed"],
    shell:
        "safervlm qi-select --scores {input.scores} --pool {input.pool} --out {output.qi_safe}"
        " --datasheet {output.datasheet} --params '{params.curate}' --seed {params.seed} > {log} 2>&1"
