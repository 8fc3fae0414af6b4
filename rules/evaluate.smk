rule attack:
    input:
        data=f"{R}/data/bench/{{bench}}.parquet",
    output:
        f"{R}/data/attack/{{bench}}.parquet",
    log:
        f"{R}/logs/attack/{{bench}}.log",
    benchmark:
        f"{R}/benchmarks/attack/{{bench}}.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("attack"),
        attacks=lambda w: ",".join(attacks_for(w.bench)),
        image_size=config["eval"]["attack_image_size"],
    shell:
        "safervlm attack --data {input.data:q} --out {output:q} --attacks {params.attacks:q}"
        " --image-size {params.image_size:q} > {log:q} 2>&1"


rule generate:
    input:
        model=model_path,
        data=eval_data,
    output:
        f"{R}/eval/{{model}}/{{bench}}/responses.parquet",
    log:
        f"{R}/logs/generate/{{model}}/{{bench}}.log",
    benchmark:
        f"{R}/benchmarks/generate/{{model}}/{{bench}}.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("generate"),
        generate=generate_params,
        seed=config["seed"],
    shell:
        "safervlm generate --model {input.model:q} --model-name {wildcards.model:q} --data {input.data:q}"
        " --out {output:q} --params {params.generate:q} --seed {params.seed:q} > {log:q} 2>&1"


rule judge:
    input:
        responses=f"{R}/eval/{{model}}/{{bench}}/responses.parquet",
        data=eval_data,
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
        **judge_params("judge"),
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("judge", *judge_module(config["judge"]["name"])),
    shell:
        "safervlm judge --responses {input.responses:q} --data {input.data:q} --out {output:q}"
        " --judge {params.judge:q} --judge-params {params.judge_params:q} --judge-cache {params.judge_cache:q} > {log:q} 2>&1"


rule score:
    input:
        judgments=f"{R}/eval/{{model}}/{{bench}}/judgments.parquet",
    output:
        f"{R}/eval/{{model}}/{{bench}}/metrics.json",
    log:
        f"{R}/logs/score/{{model}}/{{bench}}.log",
    benchmark:
        f"{R}/benchmarks/score/{{model}}/{{bench}}.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("score"),
        n_bootstrap=config["eval"]["n_bootstrap"],
        seed=config["seed"],
    shell:
        "safervlm score --judgments {input.judgments:q} --out {output:q} --n-bootstrap {params.n_bootstrap:q}"
        " --seed {params.seed:q} > {log:q} 2>&1"
