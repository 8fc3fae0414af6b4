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
        train_launch("sft")
        + " --model {input.model} --data {input.data} --out {output}"
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
            "judge/reference.py",
            "judge/markers.py",
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
        judge=config["judge"]["name"],
        judge_params=as_json(config["judge"]["params"]),
        seed=config["seed"],
    shell:
        train_launch("grpo")
        + " --model {input.model} --data {input.data} --out {output}"
        " --params '{params.grpo}' --judge {params.judge} --judge-params '{params.judge_params}'"
        " --seed {params.seed} > {log} 2>&1"
