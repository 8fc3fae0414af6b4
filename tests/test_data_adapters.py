"""Contract and bad-input tests for every registered benchmark adapter."""

from __future__ import annotations

import importlib
import io
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from safervlm.benchmarks import CARD_KEYS, UnknownBenchmarkError, get_adapter, list_benchmarks, load_benchmark
from safervlm.embedded.fixtures import build_fixtures, writer_module
from safervlm.embedded.truth import TRUTH_FILE, with_truth
from safervlm.embedded.world import OBJECT_NAMES
from safervlm.errors import ConfigError, InputError
from safervlm.schema import SAMPLE_COLUMNS, Sample

BENCHMARKS = list_benchmarks()
WITH_BENIGN = {"vlguard", "mssbench", "beavertails_v"}


@pytest.fixture(scope="session")
def fixtures_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fixtures")
    build_fixtures(out, seed=0)
    return out


@pytest.fixture()
def copy_of(fixtures_root: Path, tmp_path: Path):
    """Return a function copying one benchmark's fixture into tmp_path (safe to mutate)."""

    def _copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(fixtures_root / name, dst)
        return dst

    return _copy


def test_registry_covers_every_fixture() -> None:
    assert len(BENCHMARKS) == 8
    for name in BENCHMARKS:
        assert callable(importlib.import_module(writer_module(name)).write), name


@pytest.mark.parametrize("name", BENCHMARKS)
def test_adapter_contract(name: str, fixtures_root: Path) -> None:
    adapter = get_adapter(name)
    assert adapter.name == name
    assert isinstance(adapter.version, str) and adapter.version
    assert all(isinstance(adapter.card.get(k), str) and adapter.card[k] for k in CARD_KEYS)

    samples = list(with_truth(load_benchmark(name, fixtures_root / name), fixtures_root / name))
    assert samples, f"{name} loaded no samples"
    ids = [s.id for s in samples]
    assert len(ids) == len(set(ids))
    truth = json.loads((fixtures_root / name / TRUTH_FILE).read_text())
    assert set(ids) == set(truth), "sidecar ids must equal loaded ids"
    for s in samples:
        assert isinstance(s, Sample)
        assert isinstance(s.id, str) and s.id.startswith(f"{name}/")
        assert s.benchmark == name
        for attr in ("subset", "category", "image_path", "reference"):
            assert isinstance(getattr(s, attr), str), attr
        assert isinstance(s.question, str) and s.question.strip()
        assert isinstance(s.image, bytes)
        with Image.open(io.BytesIO(s.image)) as img:
            img.load()
            assert img.size[0] > 0
        assert isinstance(s.should_refuse, bool)
        assert s.should_refuse == truth[s.id]["should_refuse"]
        assert isinstance(s.image_objects, list) and set(s.image_objects) <= set(OBJECT_NAMES)
        assert isinstance(s.meta, dict)
        row = s.to_row()
        assert set(row) == set(SAMPLE_COLUMNS)
        json.loads(row["meta"])
    refuse = {s.should_refuse for s in samples}
    assert refuse == ({True, False} if name in WITH_BENIGN else {True})


@pytest.mark.parametrize("name", BENCHMARKS)
def test_limit_takes_a_prefix(name: str, fixtures_root: Path) -> None:
    full = load_benchmark(name, fixtures_root / name)
    part = load_benchmark(name, fixtures_root / name, limit=5)
    assert [s.id for s in part] == [s.id for s in full[:5]]
    assert load_benchmark(name, fixtures_root / name, limit=0) == []


@pytest.mark.parametrize("name", BENCHMARKS)
def test_loads_without_truth_sidecar(name: str, copy_of) -> None:
    root = copy_of(name)
    (root / TRUTH_FILE).unlink()
    samples = list(with_truth(load_benchmark(name, root), root))
    assert samples and all(s.image_objects == [] for s in samples)


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(UnknownBenchmarkError) as info:
        get_adapter("no-such-bench")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, KeyError)
    msg = str(info.value)
    assert "no-such-bench" in msg
    assert all(n in msg for n in BENCHMARKS)
    with pytest.raises(KeyError):
        load_benchmark("no-such-bench", ".")


@pytest.mark.parametrize("name", BENCHMARKS)
def test_missing_root(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(InputError, match="root folder not found") as info:
        load_benchmark(name, missing)
    assert info.value.path == str(missing)


MAIN_FILES = {
    "mmsafetybench": "processed_questions",
    "vlguard": "test.json",
    "vlsbench": "data.json",
    "siuo": "siuo_gen.json",
    "mssbench": "combined.json",
    "figstep": "safebench.csv",
    "beavertails_v": "*",
    "spa_vl": "evalharm",
}


@pytest.mark.parametrize("name", BENCHMARKS)
def test_missing_file(name: str, copy_of) -> None:
    root = copy_of(name)
    target = root / MAIN_FILES[name]
    if name == "beavertails_v":  # one folder per category: remove them all
        for d in [d for d in root.iterdir() if d.is_dir()]:
            shutil.rmtree(d)
    elif target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    with pytest.raises(InputError) as info:
        load_benchmark(name, root)
    assert MAIN_FILES[name] in str(info.value) or str(root) in str(info.value)


# (benchmark, file, how to find the record, field removed, text the message must name)
MISSING_FIELD = [
    ("vlsbench", "data.json", 3, "instruction", "[record 3 (instruction_id=3)]"),
    ("siuo", "siuo_gen.json", 2, "question", "[record 2 (question_id=1002)]"),
    ("vlguard", "test.json", 1, "image", "[record 1 (id=test_0001)]"),
    (
        "mmsafetybench",
        "processed_questions/01-Illegal_Activitiy.json",
        "1",
        "Rephrased Question",
        "[record 1]",
    ),
    ("mssbench", "combined.json", ("chat", 1), "queries", "[record chat[1]]"),
]


@pytest.mark.parametrize(("name", "rel", "where", "field", "names"), MISSING_FIELD)
def test_record_missing_required_field(
    name: str, rel: str, where: object, field: str, names: str, copy_of
) -> None:
    root = copy_of(name)
    path = root / rel
    data = json.loads(path.read_text())
    record = data[where[0]][where[1]] if isinstance(where, tuple) else data[where]
    del record[field]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        load_benchmark(name, root)
    msg = str(info.value)
    assert str(path) in msg and names in msg and field in msg


def test_csv_row_with_empty_field(copy_of) -> None:
    root = copy_of("figstep")
    path = root / "safebench.csv"
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    lines[3] = ",".join(cells[:-1] + [""])  # blank the instruction of data row 2
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="instruction") as info:
        load_benchmark("figstep", root)
    assert str(path) in str(info.value) and "[record 2" in str(info.value)


def test_parquet_missing_column(copy_of) -> None:
    root = copy_of("spa_vl")
    path = root / "evalharm" / "test-00000-of-00001.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["question"]), path)
    with pytest.raises(InputError, match="missing required columns") as info:
        load_benchmark("spa_vl", root)
    assert info.value.path == str(path)


IMAGES = {
    "mmsafetybench": "imgs/01-Illegal_Activitiy/SD_TYPO/0.jpg",
    "vlguard": None,
    "vlsbench": "imgs/00003.png",
    "siuo": None,
    "mssbench": "chat/unsafe/0001.png",
    "figstep": None,
}


def _some_image(root: Path, rel: str | None) -> Path:
    if rel is not None:
        return root / rel
    return sorted(p for p in root.rglob("*") if p.suffix in {".png", ".jpg"})[1]


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_corrupt_image(name: str, copy_of) -> None:
    root = copy_of(name)
    image = _some_image(root, IMAGES[name])
    image.write_bytes(b"this is not an image")
    with pytest.raises(InputError, match="cannot decode image") as info:
        load_benchmark(name, root)
    assert str(image) in str(info.value) and "[record" in str(info.value)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_missing_image(name: str, copy_of) -> None:
    root = copy_of(name)
    image = _some_image(root, IMAGES[name])
    image.unlink()
    with pytest.raises(InputError, match="image not found") as info:
        load_benchmark(name, root)
    assert image.name in str(info.value)


@pytest.mark.parametrize("name", ["spa_vl", "beavertails_v"])
def test_corrupt_embedded_image(name: str, copy_of) -> None:
    root = copy_of(name)
    path = sorted(root.rglob("*.parquet"))[0]
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[1]["image"] = {"bytes": b"garbage", "path": "broken.png"}
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), path)
    with pytest.raises(InputError, match="cannot decode image") as info:
        load_benchmark(name, root)
    assert str(path) in str(info.value) and "broken.png" in str(info.value)


def test_invalid_json(copy_of) -> None:
    root = copy_of("vlsbench")
    (root / "data.json").write_text("[{not json")
    with pytest.raises(InputError, match="invalid JSON") as info:
        load_benchmark("vlsbench", root)
    assert info.value.path == str(root / "data.json")


def test_duplicate_ids_rejected(copy_of) -> None:
    root = copy_of("siuo")
    path = root / "siuo_gen.json"
    data = json.loads(path.read_text())
    data[1]["question_id"] = data[0]["question_id"]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="duplicate sample id"):
        load_benchmark("siuo", root)


def test_mmsafetybench_image_types_option(fixtures_root: Path) -> None:
    samples = get_adapter("mmsafetybench", image_types=["TYPO"]).load(fixtures_root / "mmsafetybench")
    assert samples and {s.subset for s in samples} == {"TYPO"}
    assert all(s.image_objects == [] for s in samples)
    with pytest.raises(ConfigError):
        get_adapter("mmsafetybench", image_types=["XL"])


def _all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_determinism(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert build_fixtures(a, seed=7) == build_fixtures(b, seed=7)
    files_a, files_b = _all_files(a), _all_files(b)
    assert files_a == files_b
    assert "vlguard/test.json" in files_a and "mmsafetybench/imgs/01-Illegal_Activitiy/SD/0.jpg" in files_a
    build_fixtures(c, seed=8)
    assert _all_files(c)["vlsbench/data.json"] != files_a["vlsbench/data.json"]


def test_rebuild_replaces_old_copy(tmp_path: Path) -> None:
    build_fixtures(tmp_path, seed=0)
    stale = tmp_path / "vlsbench" / "imgs" / "stale.png"
    stale.write_bytes(b"x")
    manifest = build_fixtures(tmp_path, seed=0)
    assert not stale.exists()
    assert json.loads((tmp_path / "MANIFEST.json").read_text()) == manifest


def test_manifest_counts(fixtures_root: Path) -> None:
    manifest = json.loads((fixtures_root / "MANIFEST.json").read_text())
    for name in BENCHMARKS:
        assert manifest["benchmarks"][name]["samples"] == len(load_benchmark(name, fixtures_root / name))


def test_figstep_repository_layout(copy_of) -> None:
    """A clone of the FigStep repository (data/question, data/images/SafeBench) loads too."""
    root = copy_of("figstep")
    (root / "data" / "question").mkdir(parents=True)
    (root / "safebench.csv").rename(root / "data" / "question" / "safebench.csv")
    (root / "data" / "images").mkdir()
    (root / "images").rename(root / "data" / "images" / "SafeBench")
    samples = load_benchmark("figstep", root)
    assert len(samples) == 24 and samples[0].image_path.startswith("data/images/SafeBench/")
