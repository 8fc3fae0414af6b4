"""The training pool: seeded per-source caps, BeaverTails-V configs, one taxonomy, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from safervlm.config import SourceSpec
from safervlm.curate.pool import build_pool, map_category, parse_sources
from safervlm.embedded.fixtures import build_fixtures
from safervlm.errors import ConfigError
from safervlm.sources import load_source

TAXONOMY = ["benign", "cybercrime", "fraud", "privacy", "property_crime", "theft", "violence"]
DIRS = {"beavertails_v": "beavertails_v", "spa_vl": "spa_vl", "vlguard_train": "vlguard"}


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fx")
    build_fixtures(root, seed=2, n_per_benchmark=4, n_train_per_source=30)
    return root


def sources(fx: Path, **overrides: dict) -> dict:
    return {n: {"root": str(fx / "train" / d), **overrides.get(n, {})} for n, d in DIRS.items()}


def test_cap_is_a_seeded_sample_in_file_order(fx: Path):
    root = fx / "train" / "spa_vl"
    everything = [r["id"] for r in load_source("spa_vl", root)]
    a = [r["id"] for r in load_source("spa_vl", root, 10, seed=1)]
    assert len(a) == 10 and a == [r["id"] for r in load_source("spa_vl", root, 10, seed=1)]
    assert a == sorted(a, key=everything.index)  # file order
    assert a != everything[:10]  # a sample, not the head of the first files
    assert len({tuple(r["id"] for r in load_source("spa_vl", root, 10, seed=s)) for s in range(4)}) > 1
    assert len(load_source("spa_vl", root, 10_000)) == len(everything)
    with pytest.raises(ConfigError, match="cap"):
        load_source("spa_vl", root, 0)


def test_beavertails_configs(fx: Path):
    root = fx / "train" / "beavertails_v"
    rows = load_source("beavertails_v", root, configs=["theft", "fraud"])
    assert rows and {r["subset"] for r in rows} == {"theft", "fraud"}
    with pytest.raises(ConfigError, match="no dataset configs"):
        load_source("spa_vl", fx / "train" / "spa_vl", configs=["x"])


def test_map_category_rules():
    spec = SourceSpec(root="x", category_map={"Malicious Use": "cybercrime", "theft": "property_crime"})
    tax = set(TAXONOMY)
    assert map_category("Malicious Use", True, spec, tax) == "cybercrime"
    assert map_category("theft", True, spec, tax) == "property_crime"  # the map wins over identity
    assert map_category("fraud", True, spec, tax) == "fraud"
    assert map_category("", False, spec, tax) == "benign"
    assert map_category("", True, spec, tax) == "other"
    assert map_category("Socioeconomic Harms", None, spec, tax) == "other"


def test_build_pool_maps_to_one_taxonomy(fx: Path, caplog):
    cfg = sources(fx, beavertails_v={"cap": 12}, spa_vl={"category_map": {"theft": "property_crime"}})
    specs = parse_sources(cfg, TAXONOMY)
    pool, summary = build_pool(specs, ["benign", "fraud", "privacy", "property_crime", "theft"], seed=0)
    assert summary["by_source"]["beavertails_v"] == 12 and summary["n"] == len(pool)
    assert set(pool["category"]) <= {"benign", "fraud", "privacy", "property_crime", "theft", "other"}
    spa = pool[pool["source"] == "spa_vl"]
    meta = spa["meta"].map(json.loads)
    was_theft = meta.map(lambda m: m["source_category"] == "theft")
    assert (spa.loc[was_theft, "category"] == "property_crime").all()
    # cybercrime and violence are not in this taxonomy: counted as unmapped, sent to "other"
    unmapped = summary["unmapped"]
    assert unmapped and set().union(*(set(v) for v in unmapped.values())) <= {"cybercrime", "violence"}
    n_other = sum(sum(v.values()) for v in unmapped.values())
    assert summary["by_category"]["other"] == n_other and "go to 'other'" in caplog.text


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"nope": {"root": "x"}}, "unknown training source 'nope'"),
        ({"spa_vl": {"root": "x", "category_map": {"a": "weapons"}}}, "maps 'a' to 'weapons'"),
        ({"spa_vl": {"root": "x", "limit": 3}}, "unknown keys \\['limit'\\]"),
        ({"spa_vl": {"root": None}}, "sources.spa_vl.root is not set"),
        ({}, "lists no training source"),
    ],
)
def test_bad_sources_config(cfg, match):
    with pytest.raises(ConfigError, match=match):
        parse_sources(cfg, TAXONOMY)


def run_pool(cfg: dict, out: Path) -> subprocess.CompletedProcess[str]:
    args = ["pool", "--sources", json.dumps(cfg), "--params", json.dumps({"taxonomy": TAXONOMY})]
    return subprocess.run(
        [sys.executable, "-m", "safervlm.cli", *args, "--out", str(out)], capture_output=True, text=True
    )


def no_leftovers(out: Path) -> None:
    assert not out.exists() and not out.with_suffix(".summary.json").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary files left"


def test_pool_cli_writes_pool_and_summary(fx: Path, tmp_path: Path):
    out = tmp_path / "pool.parquet"
    r = run_pool(sources(fx), out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["by_source"] == {n: 30 for n in DIRS} and summary["unmapped"] == {}
    assert len(pd.read_parquet(out)) == 90


def test_pool_cli_source_missing_a_column(fx: Path, tmp_path: Path):
    root = tmp_path / "spa_vl"
    shutil.copytree(fx / "train" / "spa_vl", root)
    shard = root / "data" / "train-00000-of-00001.parquet"
    pq.write_table(pq.read_table(shard).drop(["chosen"]), shard)
    out = tmp_path / "out" / "pool.parquet"
    out.parent.mkdir()
    r = run_pool({"spa_vl": {"root": str(root)}}, out)
    assert r.returncode == 2
    assert str(shard) in r.stderr and "missing required columns ['chosen']" in r.stderr
    no_leftovers(out)


def test_pool_cli_undecodable_image(fx: Path, tmp_path: Path):
    root = tmp_path / "beavertails_v"
    shutil.copytree(fx / "train" / "beavertails_v", root)
    shard = sorted(root.glob("*/train-*.parquet"))[0]
    table = pq.read_table(shard).to_pylist()
    table[1]["image"] = {"bytes": b"definitely not a png", "path": "broken.png"}
    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(shard)), shard)
    out = tmp_path / "out" / "pool.parquet"
    out.parent.mkdir()
    r = run_pool({"beavertails_v": {"root": str(root)}}, out)
    assert r.returncode == 2
    assert f"{shard}:image(broken.png) [record {shard.parent.name}/1]: cannot decode image" in r.stderr
    no_leftovers(out)
