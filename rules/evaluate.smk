rule generate:
    input:
        model=model_path,
        data=f"{R}/data/bench/{{bench}}.parquet",
        code=code("stages/evaluate.py", "evaluate/generate.py", "prompts.py", "text.py"),
    output:
        f"{R}/eval/{{model}}/{{bench}}/responses.parquet",
    log:
        f"{R}/logs/generate/{{model}}/{{bench}}.log",
    benchmark:
        f"{R}/benchmarks/generate/{{model}}/{{bench}}.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        generate=as_json(config["generate"]),
        seed=config["seed"],
    shell:
        "safervlm generate --model {input.model} --model-name {wildcards.model} --data {input.data}"
        " --out {output} --params '{params.generate}' --seed {params.seed} > {log} 2>&1"


rule judge:
    input:
        responses=f"{R}/eval/{{model}}/{{bench}}/responses.parquet",
        code=code(
            "stages/evaluate.py",
            "judge/reference.py",
            "judge/base.py",
            "judge/markers.py",
        ),
    output:
        f"{R}/eval/{{model}}/{{bench}}/judgments.parquet",
    log:
        f"{R}/logs/judge/{{model}}/{{bench}}.log",
    benchmark:
        f"{R}/benchmarks/judge/{{model}}/{{bench}}.tsv"
    conda:
        "../envs/safervlm.yaml"
    resources:
        gpu=judge_gpus(),
    params:
        judge=config["judge"]["name"],
        judge_params=as_json(config["judge"]["params"]),
    shell:
        "safervlm judge --responses {input.responses} --out {output} --judge {params.judge}"
        " --judge-params '{params.judge_params}' > {log} 2>&1"


rule score:
    input:
        judgments=f"{R}/eval/{{model}}/{{bench}}/judgments.parquet",
        code=code("stages/evaluate.py", "evaluate/score.py"),
    output:
        f"{R}/eval/{{model}}/{{bench}}/metrics.json",
    log:
        f"{R}/logs/score/{{model}}/{{bench}}.log",
    benchmark:
        f"{R}/benchmarks/score/{{model}}/{{bench}}.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        n_bootstrap=config["eval"]["n_bootstrap"],
        seed=config["seed"],
    shell:
        "safervlm score --judgments {input.judgments} --out {output} --n-bootstrap {params.n_bootstrap}"
        " --seed {params.seed} > {log} 2>&1"
