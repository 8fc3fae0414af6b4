rule decontaminate:
    input:
        pool=f"{R}/data/pool.parquet",
        evals=bench_parquet(sorted(config["benchmarks"])),
        code=code("stages/curate.py", "curate/decontaminate.py", "curate/near_dup.py"),
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
        curate=as_json(
            pick(
                "curate",
                "shingle_size",
                "near_text_threshold",
                "minhash_perm",
                "image_hash",
                "image_hash_size",
                "near_image_distance",
            )
        ),
    shell:
        "safervlm decontaminate --pool {input.pool} --eval {input.evals} --out {output.pool}"
        " --report {output.report} --params '{params.curate}' > {log} 2>&1"


rule qi_score:
    input:
        model=BASE,
        pool=f"{R}/data/pool.clean.parquet",
        code=code(
            "stages/curate.py",
            "curate/scoring.py",
            "evaluate/generate.py",
            "prompts.py",
            "text.py",
            "rewards/structured.py",
            *judge_code("reward_judge"),
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
            pick(
                "curate",
                "k_samples",
                "temperature",
                "max_new_tokens",
                "batch_size",
                "score",
            )
        ),
        judge=judge_cli("reward_judge"),
        reward=config["grpo"]["reward"],
        reward_params=as_json(config["grpo"]["reward_params"]),
        seed=config["seed"],
    shell:
        "safervlm qi-score --model {input.model} --pool {input.pool} --out {output.scores}"
        " --samples {output.samples} --params '{params.curate}' {params.judge}"
        " --reward {params.reward}"
        " --reward-params '{params.reward_params}' --seed {params.seed} > {log} 2>&1"


rule qi_select:
    input:
        scores=f"{R}/data/qi_scores.parquet",
        pool=f"{R}/data/pool.clean.parquet",
        pool_summary=f"{R}/data/pool.summary.json",
        decontamination=f"{R}/data/decontamination.json",
        code=code("stages/qi_select.py", "curate/qi.py", "curate/datasheet.py"),
    output:
        qi_safe=f"{R}/data/qi_safe.parquet",
        datasheet=report(
            f"{R}/data/qi_safe.datasheet.md",
            caption="../workflow/report/datasheet.rst",
            category="Data",
            subcategory="QI-Safe",
        ),
        datasheet_json=f"{R}/data/qi_safe.datasheet.json",
        figure=report(
            f"{R}/data/qi_safe.datasheet.png",
            caption="../workflow/report/datasheet_figure.rst",
            category="Data",
            subcategory="QI-Safe",
        ),
    log:
        f"{R}/logs/qi_select.log",
    benchmark:
        f"{R}/benchmarks/qi_select.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        curate=as_json(
            pick(
                "curate",
                "quality_range",
                "min_instability",
                "target_size",
                "allocation",
            )
        ),
        seed=config["seed"],
    shell:
        "safervlm qi-select --scores {input.scores} --pool {input.pool}"
        " --pool-summary {input.pool_summary} --decontamination {input.decontamination}"
        " --out {output.qi_safe} --datasheet {output.datasheet}"
        " --datasheet-json {output.datasheet_json} --figure {output.figure}"
        " --params '{params.curate}' --seed {params.seed} > {log} 2>&1"
