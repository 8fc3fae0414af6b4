rule attack:
    input:
        data=f"{R}/data/bench/{{bench}}.parquet",
        code=code("stages/evaluate.py", "data/transforms.py"),
    output:
        f"{R}/data/attack/{{bench}}.parquet",
    log:
        f"{R}/logs/attack/{{bench}}.log",
    benchmark:
        f"{R}/benchmarks/attack/{{bench}}.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        attacks=lambda w: ",".join(attacks_for(w.bench)),
        image_size=config["eval"]["attack_image_size"],
    shell:
        "safervlm attack --data {input.data} --out {output} --attacks {params.attacks}"
        " --image-size {params.image_size} > {log} 2>&1"


rule generate:
    input:
        model=model_path,
        data=eval_data,
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
        generate=generate_params,
        seed=config["seed"],
    shell:
        "safervlm generate --model {input.model} --model-name {wildcards.model} --data {input.data}"
        " --out {output} --params '{params.generate}' --seed {params.seed} > {log} 2>&1"


rule judge:
    input:
        responses=f"{R}/eval/{{model}}/{{bench}}/responses.parquet",
        data=eval_data,
        code=code("stages/evaluate.py", *judge_code("judge")),
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
        judge=judge_cli("judge"),
    shell:
        "safervlm judge --responses {input.responses} --data {input.data} --out {output}"
        " {params.judge} > {log} 2>&1"


rule score:
    input:
        judgments=f"{R}/eval/{{model}}/{{bench}}/judgments.parquet",
        code=code("stages/evaluate.py", "evaluate/score.py", "data/transforms.py"),
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
