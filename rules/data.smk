# One job per synthetic benchmark or training source (`fixture`: a benchmark name or
# train/<source>): editing one benchmark's writer rebuilds that fixture alone.
rule fixtures:
    output:
        directory(f"{FIXTURES}/{{fixture}}"),
    log:
        f"{R}/logs/fixtures/{{fixture}}.log",
    benchmark:
        f"{R}/benchmarks/fixtures/{{fixture}}.tsv"
    wildcard_constraints:
        fixture=FIXTURE_PATTERN,
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=lambda w: code("fixtures", fixture_writer_module(w.fixture)),
        root=lambda w, output: output[0][: -len(w.fixture) - 1],
        seed=config["seed"],
        size=lambda w: fixture_size(w.fixture),
    shell:
        "safervlm fixtures --out {params.root:q} --only {wildcards.fixture:q} --seed {params.seed:q}"
        " {params.size:q} > {log:q} 2>&1"


rule prepare:
    input:
        fixtures=lambda w: fixtures_if_needed("benchmarks", [w.bench]),
    output:
        parquet=f"{R}/data/bench/{{bench}}.parquet",
        summary=f"{R}/data/bench/{{bench}}.summary.json",
    log:
        f"{R}/logs/prepare/{{bench}}.log",
    benchmark:
        f"{R}/benchmarks/prepare/{{bench}}.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=lambda w: code("prepare", *adapter_module(w.bench)),
        root=lambda w: bench_root(w.bench),
        limit=lambda w: (
            ["--limit", config["benchmarks"][w.bench]["limit"]]
            if config["benchmarks"][w.bench]["limit"]
            else []
        ),
        max_pixels=config["data"]["max_image_pixels"],
    shell:
        "safervlm prepare --benchmark {wildcards.bench:q} --root {params.root:q} --out {output.parquet:q}"
        " {params.limit:q} --max-image-pixels {params.max_pixels:q} > {log:q} 2>&1"


rule pool:
    input:
        fixtures=fixtures_if_needed("sources", list(config["sources"])),
    output:
        pool=f"{R}/data/pool.parquet",
        summary=f"{R}/data/pool.summary.json",
    log:
        f"{R}/logs/pool.log",
    benchmark:
        f"{R}/benchmarks/pool.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("pool"),
        sources=as_json(
            {n: {**e, "root": source_root(n)} for n, e in config["sources"].items()}
        ),
        curate=as_json(pick("curate", "taxonomy")),
        seed=config["seed"],
        max_pixels=config["data"]["max_image_pixels"],
    shell:
        "safervlm pool --sources {params.sources:q} --params {params.curate:q} --seed {params.seed:q}"
        " --out {output.pool:q} --max-image-pixels {params.max_pixels:q} > {log:q} 2>&1"


rule tiny_model:
    input:
        texts=f"{R}/data/pool.parquet",
    output:
        directory(f"{R}/models/base"),
    log:
        f"{R}/logs/tiny_model.log",
    benchmark:
        f"{R}/benchmarks/tiny_model.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        # The modules its job runs ({module: digest}): editing one reruns it.
        code=code("tiny-model"),
        seed=config["seed"],
        dims=as_json(config["base_model"]["tiny"]),
    shell:
        "safervlm tiny-model --texts {input.texts:q} --out {output:q} --seed {params.seed:q}"
        " --dims {params.dims:q} > {log:q} 2>&1"
