rule fixtures:
    input:
        code=code(
            "stages/data.py",
            "data/fixtures.py",
            "data/fixtures_common.py",
            "data/fixtures_json.py",
            "data/fixtures_parquet.py",
            "data/world.py",
        ),
    output:
        directory(FIXTURES),
    log:
        f"{R}/logs/fixtures.log",
    benchmark:
        f"{R}/benchmarks/fixtures.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        seed=config["seed"],
        n=config["fixtures"]["n_per_benchmark"],
        n_train=config["fixtures"]["n_train_per_source"],
    shell:
        "safervlm fixtures --out {output} --seed {params.seed} --n-per-benchmark {params.n}"
        " --n-train-per-source {params.n_train} > {log} 2>&1"


rule prepare:
    input:
        fixtures=lambda w: fixtures_if_needed("benchmarks", [w.bench]),
        code=lambda w: code(
            "stages/data.py",
            "data/base.py",
            "data/registry.py",
            *adapter_module(w.bench),
        ),
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
        root=lambda w: bench_root(w.bench),
        limit=lambda w: (
            f"--limit {config['benchmarks'][w.bench]['limit']}"
            if config["benchmarks"][w.bench]["limit"]
            else ""
        ),
        max_pixels=config["data"]["max_image_pixels"],
    shell:
        "safervlm prepare --benchmark {wildcards.bench} --root {params.root} --out {output.parquet}"
        " {params.limit} --max-image-pixels {params.max_pixels} > {log} 2>&1"


rule pool:
    input:
        fixtures=fixtures_if_needed("sources", list(config["sources"])),
        code=code(
            "stages/pool.py",
            "curate/pool.py",
            "data/sources.py",
            "data/base.py",
            "data/hf_parquet.py",
            "data/bench_beavertails_v.py",
            "data/bench_spa_vl.py",
            "data/bench_vlguard.py",
            "schema.py",
        ),
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
        sources=as_json(
            {n: {**e, "root": source_root(n)} for n, e in config["sources"].items()}
        ),
        curate=as_json(pick("curate", "taxonomy")),
        seed=config["seed"],
        max_pixels=config["data"]["max_image_pixels"],
    shell:
        "safervlm pool --sources '{params.sources}' --params '{params.curate}' --seed {params.seed}"
        " --out {output.pool} --max-image-pixels {params.max_pixels} > {log} 2>&1"


rule tiny_model:
    input:
        texts=f"{R}/data/pool.parquet",
        code=code("stages/data.py", "models/tiny.py", "models/processor.py"),
    output:
        directory(f"{R}/models/base"),
    log:
        f"{R}/logs/tiny_model.log",
    benchmark:
        f"{R}/benchmarks/tiny_model.tsv"
    conda:
        "../envs/safervlm.yaml"
    params:
        seed=config["seed"],
        dims=as_json(config["base_model"]["tiny"]),
    shell:
        "safervlm tiny-model --texts {input.texts} --out {output} --seed {params.seed}"
        " --dims '{params.dims}' > {log} 2>&1"
