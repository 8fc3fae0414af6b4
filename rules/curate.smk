rule decontaminate:
    input:
        pool=f"{R}/data/pool.parquet",
        evals=bench_parquet(sorted(config["benchmarks"])),
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
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("decontaminate"),
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
        "safervlm decontaminate --pool {input.pool:q} --eval {input.evals:q} --out {output.pool:q}"
        " --report {output.report:q} --params {params.curate:q} > {log:q} 2>&1"


rule qi_score:
    input:
        model=BASE,
        pool=f"{R}/data/pool.clean.parquet",
    output:
        scores=f"{SD}/data/qi_scores.parquet",
        samples=f"{SD}/data/qi_scores.samples.parquet",
    log:
        f"{SD}/logs/qi_score.log",
    benchmark:
        f"{SD}/benchmarks/qi_score.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        **judge_params("reward_judge"),
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("qi-score", *judge_module(config["reward_judge"]["name"])),
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
        reward=config["grpo"]["reward"],
        reward_params=as_json(config["grpo"]["reward_params"]),
        seed=seed_of,
    shell:
        "safervlm qi-score --model {input.model:q} --pool {input.pool:q} --out {output.scores:q}"
        " --samples {output.samples:q} --params {params.curate:q}"
        " --judge {params.judge:q} --judge-params {params.judge_params:q} --judge-cache {params.judge_cache:q}"
        " --reward {params.reward:q}"
        " --reward-params {params.reward_params:q} --seed {params.seed:q} > {log:q} 2>&1"


rule qi_select:
    input:
        scores=f"{SD}/data/qi_scores.parquet",
        pool=f"{R}/data/pool.clean.parquet",
        pool_summary=f"{R}/data/pool.summary.json",
        decontamination=f"{R}/data/decontamination.json",
    output:
        qi_safe=f"{SD}/data/qi_safe.parquet",
        datasheet=report(
            f"{SD}/data/qi_safe.datasheet.md",
            caption="../workflow/report/datasheet.rst",
            category="Data",
            subcategory="QI-Safe",
        ),
        datasheet_json=f"{SD}/data/qi_safe.datasheet.json",
        figure=report(
            f"{SD}/data/qi_safe.datasheet.png",
            caption="../workflow/report/datasheet_figure.rst",
            category="Data",
            subcategory="QI-Safe",
        ),
    log:
        f"{SD}/logs/qi_select.log",
    benchmark:
        f"{SD}/benchmarks/qi_select.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("qi-select"),
        curate=as_json(
            pick(
                "curate",
                "quality_range",
                "min_instability",
                "target_size",
                "allocation",
            )
        ),
        seed=seed_of,
    shell:
        "safervlm qi-select --scores {input.scores:q} --pool {input.pool:q}"
        " --pool-summary {input.pool_summary:q} --decontamination {input.decontamination:q}"
        " --out {output.qi_safe:q} --datasheet {output.datasheet:q}"
        " --datasheet-json {output.datasheet_json:q} --figure {output.figure:q}"
        " --params {params.curate:q} --seed {params.seed:q} > {log:q} 2>&1"
