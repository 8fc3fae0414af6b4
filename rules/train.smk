rule sft:
    input:
        model=BASE,
        data=f"{R}/data/qi_safe.parquet",
        code=code(
            "train/sft.py", "train/common.py", "train/data.py", "models/processor.py"
        ),
    output:
        directory(MODEL_PATHS["sft"]),
    log:
        f"{R}/logs/sft.log",
    benchmark:
        f"{R}/benchmarks/sft.tsv"
    conda:
        "../envs/train.yaml"
    params:
        sft=lambda w: as_json(sft_section()),  # a function: the template holds braces
        seed=config["seed"],
    shell:
        train_launch("sft")
        + " --model {input.model} --data {input.data} --out {output}"
        " --params '{params.sft}' --seed {params.seed} > {log} 2>&1"


rule grpo:
    input:
        model=MODEL_PATHS["sft"],
        data=f"{R}/data/qi_safe.parquet",
        code=code(
            "train/grpo.py",
            "train/rollout.py",
            "train/resume.py",
            "train/common.py",
            "train/data.py",
            "rewards/structured.py",
            *judge_code("reward_judge"),
        ),
    output:
        directory(f"{R}/checkpoints/{{grpo_variant}}"),
    log:
        f"{R}/logs/{{grpo_variant}}.log",
    benchmark:
        f"{R}/benchmarks/{{grpo_variant}}.tsv"
    wildcard_constraints:
        grpo_variant="grpo|grpo_plain",
    conda:
        "../envs/train.yaml"
    params:
        grpo=lambda w: as_json(grpo_section(w.grpo_variant)),
        judge=judge_cli("reward_judge"),
        seed=config["seed"],
        # Checkpoints live outside the output: Snakemake deletes a failed job's outputs.
        state=f"{R}/checkpoints/{{grpo_variant}}.partial",
    shell:
        train_launch("grpo")
        + " --model {input.model} --data {input.data} --out {output}"
        " --params '{params.grpo}' {params.judge} --seed {params.seed}"
        " --state-dir {params.state} > {log} 2>&1"


rule grpo_compare:
    input:
        runs=[MODEL_PATHS["grpo_plain"], MODEL_PATHS["grpo"]],
        metrics=expand(
            f"{R}/eval/{{model}}/{{bench}}/metrics.json",
            model=["grpo_plain", "grpo"],
            bench=EVAL_BENCHMARKS,
        ),
        code=code("train/compare.py"),
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
    log:
        f"{R}/logs/grpo_compare.log",
    benchmark:
        f"{R}/benchmarks/grpo_compare.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        runs=lambda w, input: " ".join(
            f"{name}={path}" for name, path in zip(["grpo_plain", "grpo"], input.runs)
        ),
    shell:
        "safervlm grpo-compare --runs {params.runs} --metrics {input.metrics}"
        " --out-md {output.table} --out-png {output.figure} > {log} 2>&1"
