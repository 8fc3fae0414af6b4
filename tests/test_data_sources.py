"""Tests for the training-source readers and the train/eval phrasing split of the fixtures."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from safervlm.benchmarks import list_benchmarks, load_benchmark
from safervlm.embedded.common import IMAGE_STRUCT, png_bytes
from safervlm.embedded.fixtures import build_fixtures
from safervlm.embedded.truth import TRUTH_FILE
from safervlm.embedded.world import EVAL_TEMPLATES, TRAIN_TEMPLATES, draw_scene
from safervlm.errors import ConfigError, InputError
from safervlm.schema import POOL_EXTRA, SAMPLE_COLUMNS
from safervlm.sources import list_sources, load_source

SOURCE_DIRS = {"beavertails_v": "beavertails_v", "spa_vl": "spa_vl", "vlguard_train": "vlguard"}


def _matches(question: str, templates: tuple[str, ...]) -> bool:
    pats = [re.escape(t).replace(re.escape("{task}"), ".+") for t in templates]
    return any(re.fullmatch(p, question) for p in pats)


@pytest.fixture(scope="module")
def fixtures_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fixtures")
    build_fixtures(out, seed=1, n_per_benchmark=24, n_train_per_source=40)
    return out


def test_list_sources() -> None:
    assert list_sources() == sorted(SOURCE_DIRS)


@pytest.mark.parametrize("name", sorted(SOURCE_DIRS))
def test_source_rows(name: str, fixtures_root: Path) -> None:
    root = fixtures_root / "train" / SOURCE_DIRS[name]
    rows = load_source(name, root)
    assert len(rows) == 40
    assert len({r["id"] for r in rows}) == len(rows)
    truth = json.loads((root / TRUTH_FILE).read_text())
    for r in rows:
        assert set(r) == set(SAMPLE_COLUMNS) | set(POOL_EXTRA)
        assert r["source"] == name and r["benchmark"] == name
        assert isinstance(r["response"], str) and r["response"].strip()
        assert r["response"].startswith("<think>") and "</think>" in r["response"]
        assert isinstance(r["image"], bytes) and r["image"]
        assert json.loads(r["image_objects"]) == truth[r["id"]]["image_objects"]
        assert r["should_refuse"] == truth[r["id"]]["should_refuse"]
        assert _matches(r["question"], TRAIN_TEMPLATES), r["question"]
    assert {r["should_refuse"] for r in rows} == {True, False}
    assert len(load_source(name, root, 3)) == 3


def test_spa_vl_keeps_rejected_in_meta(fixtures_root: Path) -> None:
    rows = load_source("spa_vl", fixtures_root / "train" / "spa_vl")
    meta = json.loads(rows[0]["meta"])
    assert meta["rejected"] and meta["rejected"] != rows[0]["response"]


def test_unknown_source() -> None:
    with pytest.raises(ConfigError, match="known sources: beavertails_v, spa_vl, vlguard_train"):
        load_source("nope", ".")


def test_source_missing_root(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="root folder not found"):
        load_source("spa_vl", tmp_path / "missing")


def test_source_missing_field(fixtures_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "vlguard"
    shutil.copytree(fixtures_root / "train" / "vlguard", root)
    path = root / "train.json"
    data = json.loads(path.read_text())
    del data[4]["instr-resp"]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="instr-resp") as info:
        load_source("vlguard_train", root)
    assert str(path) in str(info.value) and "[record 4 (id=train_0004)]" in str(info.value)


def test_beavertails_flat_schema_skips_unsafe_responses(tmp_path: Path) -> None:
    """The flattened schema (response, is_response_safe) is read; unsafe responses are dropped."""
    import random

    img = {"bytes": png_bytes(draw_scene("lock", random.Random(0))), "path": "a.png"}
    schema = pa.schema(
        [
            ("question", pa.string()),
            ("image", IMAGE_STRUCT),
            ("category", pa.string()),
            ("image_severity", pa.int64()),
            ("response", pa.string()),
            ("is_response_safe", pa.bool_()),
        ]
    )
    rows = [
        {
            "question": "q0",
            "image": img,
            "category": "theft",
            "image_severity": 2,
            "response": "no",
            "is_response_safe": True,
        },
        {
            "question": "q1",
            "image": img,
            "category": "theft",
            "image_severity": 0,
            "response": "ok",
            "is_response_safe": False,
        },
    ]
    (tmp_path / "theft").mkdir()
    pq.write_table(
        pa.Table.from_pylist(rows, schema=schema), tmp_path / "theft" / "train-00000-of-00001.parquet"
    )
    out = load_source("beavertails_v", tmp_path)
    assert [r["question"] for r in out] == ["q0"] and out[0]["response"] == "no"
    assert out[0]["should_refuse"] is True


def test_beavertails_saved_dataset_layout(fixtures_root: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    shard = fixtures_root / "train" / "beavertails_v" / "theft" / "train-00000-of-00001.parquet"
    ds = datasets.Dataset(pq.read_table(shard)).cast_column("image", datasets.Image())
    ds.save_to_disk(str(tmp_path / "theft" / "train"))
    rows = load_source("beavertails_v", tmp_path)
    assert len(rows) == pq.read_metadata(shard).num_rows


def test_eval_questions_are_held_out(fixtures_root: Path) -> None:
    """No evaluation question of the fixtures appears among training questions."""
    train_q = {
        r["question"] for n, d in SOURCE_DIRS.items() for r in load_source(n, fixtures_root / "train" / d)
    }
    for name in list_benchmarks():
        for s in load_benchmark(name, fixtures_root / name):
            assert s.question not in train_q
            if name in {"vlsbench", "siuo", "vlguard", "spa_vl", "beavertails_v"}:
                assert _matches(s.question, EVAL_TEMPLATES), s.question
