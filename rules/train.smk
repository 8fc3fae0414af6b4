rule sft:
    input:
        model=BASE,
        data=f"{SD}/data/qi_safe.parquet",
    output:
        directory(MODEL_PATHS["sft"]),
    log:
        f"{SD}/logs/sft.log",
    benchmark:
        f"{SD}/benchmarks/sft.tsv"
    conda:
        "../envs/train.yaml"
    threads: train_threads("sft")
    resources:
        **train_resources("sft"),
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("sft"),
        sft=lambda w: as_json(sft_section()),  # a function: the template holds braces
        launch=launch_args("sft"),
        seed=seed_of,
    shell:
        '"$SAFERVLM_TRAIN_LAUNCH" {params.launch:q} safervlm sft --model {input.model:q} --data {input.data:q} --out {output:q}'
        " --params {params.sft:q} --seed {params.seed:q} > {log:q} 2>&1"


rule grpo:
    input:
        model=MODEL_PATHS["sft"],
        data=f"{SD}/data/qi_safe.parquet",
    output:
        directory(f"{SD}/checkpoints/{{grpo_variant}}"),
    log:
        f"{SD}/logs/{{grpo_variant}}.log",
    benchmark:
        f"{SD}/benchmarks/{{grpo_variant}}.tsv"
    wildcard_constraints:
        grpo_variant="grpo|grpo_plain",
    conda:
        "../envs/train.yaml"
    threads: train_threads("grpo")
    resources:
        **train_resources("grpo"),
    params:
        **judge_params("reward_judge"),
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("grpo", *judge_module(config["reward_judge"]["name"])),
        grpo=lambda w: as_json(grpo_section(w.grpo_variant)),
        launch=launch_args("grpo"),
        seed=seed_of,
        # Checkpoints live outside the output: Snakemake deletes a failed job's outputs.
        state=f"{SD}/checkpoints/{{grpo_variant}}.partial",
    shell:
        '"$SAFERVLM_TRAIN_LAUNCH" {params.launch:q} safervlm grpo --model {input.model:q} --data {input.data:q} --out {output:q}'
        " --params {params.grpo:q}"
        " --judge {params.judge:q} --judge-params {params.judge_params:q} --judge-cache {params.judge_cache:q} --seed {params.seed:q}"
        " --state-dir {params.state:q} > {log:q} 2>&1"


rule grpo_compare:
    input:
        # Every seed's checkpoints (model-major, seeds in order): the learning curves over
        # seeds. The held-out table and its paired tests: the first seed and judge (the
        # report's seed and judge tables span all of them).
        runs=[seeded(MODEL_PATHS[m], s) for m in ("grpo_plain", "grpo") for s in SEEDS],
        metrics=expand(
            f"{seeded(SD, SEEDS[0])}/eval/{{model}}/{{bench}}/"
            + judged("metrics.json").replace("{judge}", next(iter(JUDGES))),
            model=["grpo_plain", "grpo"],
            bench=EVAL_BENCHMARKS,
        ),
        judgments=expand(
            f"{seeded(SD, SEEDS[0])}/eval/{{model}}/{{bench}}/"
            + judged("judgments.parquet").replace("{judge}", next(iter(JUDGES))),
            model=["grpo_plain", "grpo"],
            bench=EVAL_BENCHMARKS,
        ),
    output:
        table=report(
            f"{R}/report/grpo_comparison.md",
            caption="../workflow/report/grpo_comparison.rst",
            category="GRPO",
            subcategory="Plain vs safety-aware",
        ),
        figure=report(
            f"{R}/report/grpo_safety_per_step.png",
            caption="../workflow/report/grpo_safety_per_step.rst",
            category="GRPO",
            subcategory="Plain vs safety-aware",
        ),
        # grpo_comparison.md's "Learning curves over seeds" section on its own: the report
        # rule takes it as an input and appends it to seeds.md (--seeds-append).
        curves=f"{R}/report/grpo_learning_curves.md",
    log:
        f"{R}/logs/grpo_compare.log",
    benchmark:
        f"{R}/benchmarks/grpo_compare.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("grpo-compare"),
        # NAME=DIR once per seed, in input.runs' order (a name repeats per seed).
        runs=lambda w, input: [
            f"{name}={path}"
            for name, path in zip(
                [m for m in ("grpo_plain", "grpo") for s in SEEDS], input.runs
            )
        ],
        seeds=SEEDS,
    shell:
        "safervlm grpo-compare --runs {params.runs:q} --seeds {params.seeds:q}"
        " --metrics {input.metrics:q} --judgments {input.judgments:q}"
        " --out-md {output.table:q} --out-png {output.figure:q}"
        " --out-curves-md {output.curves:q} > {log:q} 2>&1"
