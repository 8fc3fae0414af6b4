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
        sft=as_json(config["sft"]),
        seed=config["seed"],
    shell:
        "safervlm sft --model {input.model} --data {input.data} --out {output}"
        " --params '{params.sft}' --seed {params.seed} > {log} 2>&1"


rule grpo:
    input:
        model=MODEL_PATHS["sft"],
        data=f"{R}/data/qi_safe.parquet",
        code=code(
            "train/grpo.py",
            "train/common.py",
            "train/data.py",
            "rewards/structured.py",
            *judge_code("reward_judge"),
        ),
    output:
        directory(MODEL_PATHS["grpo"]),
    log:
        f"{R}/logs/grpo.log",
    benchmark:
        f"{R}/benchmarks/grpo.tsv"
    conda:
        "../envs/train.yaml"
    params:
        grpo=as_json(config["grpo"]),
        judge=judge_cli("reward_judge"),
        seed=config["seed"],
    shell:
        "safervlm grpo --model {input.model} --data {input.data} --out {output}"
        " --params '{params.grpo}' {params.judge} --seed {params.seed} > {log} 2>&1"
