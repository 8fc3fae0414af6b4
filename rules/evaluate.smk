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
        f"{SD}/eval/{{model}}/{{bench}}/responses.parquet",
    log:
        f"{SD}/logs/generate/{{model}}/{{bench}}.log",
    benchmark:
        f"{SD}/benchmarks/generate/{{model}}/{{bench}}.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("generate"),
        model=model_arg,
        generate=generate_params,
        seed=seed_of,
    shell:
        "safervlm generate --model {params.model:q} --model-name {wildcards.model:q} --data {input.data:q}"
        " --out {output:q} --params {params.generate:q} --seed {params.seed:q} > {log:q} 2>&1"


rule judge:
    input:
        responses=f"{SD}/eval/{{model}}/{{bench}}/responses.parquet",
        data=eval_data,
    output:
        f"{SD}/eval/{{model}}/{{bench}}/judgments{JS}.parquet",
    log:
        f"{SD}/logs/judge/{{model}}/{{bench}}{JS}.log",
    benchmark:
        f"{SD}/benchmarks/judge/{{model}}/{{bench}}{JS}.tsv"
    conda:
        "../envs/safervlm.yaml"
    resources:
        gpu=judge_gpus,
    params:
        judge=eval_judge_params,
        judge_cache=judge_cache(),
        # The modules its job runs ({module: digest}): the stage and this judge's plugin.
        code=judge_code,
    shell:
        "safervlm judge --responses {input.responses:q} --data {input.data:q} --out {output:q}"
        " --judge {params.judge[0]:q} --judge-params {params.judge[1]:q} --judge-cache {params.judge_cache:q} > {log:q} 2>&1"


rule score:
    input:
        judgments=f"{SD}/eval/{{model}}/{{bench}}/judgments{JS}.parquet",
    output:
        f"{SD}/eval/{{model}}/{{bench}}/metrics{JS}.json",
    log:
        f"{SD}/logs/score/{{model}}/{{bench}}{JS}.log",
    benchmark:
        f"{SD}/benchmarks/score/{{model}}/{{bench}}{JS}.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("score"),
        n_bootstrap=config["eval"]["n_bootstrap"],
        seed=seed_of,
    shell:
        "safervlm score --judgments {input.judgments:q} --out {output:q} --n-bootstrap {params.n_bootstrap:q}"
        " --seed {params.seed:q} > {log:q} 2>&1"
