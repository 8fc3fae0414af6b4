"""Contract over every benchmark module, the tables derived from them, and the boundary
between real-data code and the synthetic world of the embedded default."""

from __future__ import annotations

import importlib
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from safervlm import benchmarks
from safervlm.benchmarks import CARD_KEYS, get_benchmark, list_benchmarks, load_benchmark
from safervlm.benchmarks.catalog import BENCHMARKS, OFFICIAL, OFFICIAL_RUBRICS
from safervlm.benchmarks.registry import Benchmark, build_registry
from safervlm.benchmarks.vlguard import VLGuard
from safervlm.data.adapter import BenchmarkAdapter
from safervlm.embedded.fixtures import fixture_names, writer_module
from safervlm.judge.http import OpenAIJudge
from safervlm.judge.rubrics import RUBRICS
from safervlm.metrics import outcomes

NAMES = list_benchmarks()


def test_every_table_derives_from_the_modules() -> None:
    assert sorted(BENCHMARKS) == NAMES and len(NAMES) == 8
    assert set(OFFICIAL) == set(OFFICIAL_RUBRICS) == set(NAMES)
    assert fixture_names()[: len(NAMES)] == NAMES
    for name, b in BENCHMARKS.items():
        assert OFFICIAL[name] == (b.metric, b.official)
        assert OFFICIAL_RUBRICS[name] == b.rubric_name
        assert get_benchmark(name) == b  # by name: the same record, that module imported alone
    assert outcomes.OFFICIAL is OFFICIAL  # the metrics read the same table, not a copy


@pytest.mark.parametrize("name", NAMES)
def test_module_declares_a_complete_benchmark(name: str) -> None:
    module = getattr(benchmarks, name)
    b = module.BENCHMARK
    assert isinstance(b, Benchmark) and b.name == name == b.adapter.name
    assert issubclass(b.adapter, BenchmarkAdapter)
    assert isinstance(b.adapter.version, str) and b.adapter.version
    assert all(isinstance(b.adapter.card.get(k), str) and b.adapter.card[k] for k in CARD_KEYS)
    assert b.rubric_name in RUBRICS, f"{name}: unknown rubric {b.rubric_name!r}"
    assert isinstance(b.metric, str) and b.metric
    unsafe = pd.Series({"benchmark": name, "should_refuse": True, "safety": 0.0, "helpfulness": 0.0,
                        "official_label": "", "response": "Sure, here is how."})  # fmt: skip
    safe = unsafe.copy()
    safe[["safety", "helpfulness", "response"]] = [1.0, 1.0, "I cannot help with that, sorry."]
    # On a should-refuse sample a complying and a refusing response differ under every protocol.
    assert not math.isnan(b.official(unsafe)) and b.official(unsafe) != b.official(safe)


@pytest.mark.parametrize("name", NAMES)
def test_fixture_writer_round_trips_through_the_adapter(name: str, tmp_path: Path) -> None:
    """The writer writes the official format; the adapter reads back every sample it promised."""
    write = importlib.import_module(writer_module(name)).write
    truth = write(tmp_path, random.Random(f"contract/{name}"), 6)
    samples = load_benchmark(name, tmp_path)
    assert samples and {s.id for s in samples} == set(truth)
    assert all(s.question.strip() and s.image for s in samples)
    json.dumps(truth)  # the sidecar must be serialisable


def test_build_registry_rejects_incomplete_or_duplicate_entries() -> None:
    good = BENCHMARKS["vlguard"]
    with pytest.raises(ValueError, match="declared twice"):
        build_registry([good, good])

    class NoCard(VLGuard):
        name = "nocard"
        card = {"source": "x"}

    with pytest.raises(ValueError, match="card lacks keys"):
        build_registry([Benchmark(NoCard, "saferv", "asr", good.official)])

    class NoName(VLGuard):
        name = ""

    with pytest.raises(ValueError, match="has no name"):
        build_registry([Benchmark(NoName, "saferv", "asr", good.official)])


def test_official_rubrics_option_of_model_judges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFERVLM_TEST_KEY", "x")
    judge = OpenAIJudge(
        model="m", base_url="http://127.0.0.1:9", api_key_env="SAFERVLM_TEST_KEY", rubrics="official"
    )
    assert {b: r.name for b, r in judge.rubrics.items()} == OFFICIAL_RUBRICS
    assert judge.rubric_for({"benchmark": "siuo"}).name == "siuo"
    assert judge.rubric_for({"benchmark": "unknown"}).name == judge.default_rubric.name


def _loaded_modules(*modules: str) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


REAL_DATA_MODULES = (
    "safervlm.benchmarks",
    *(f"safervlm.benchmarks.{n}" for n in NAMES),
    "safervlm.sources",
    "safervlm.stages.prepare",
    "safervlm.stages.pool",
    "safervlm.metrics.outcomes",
    "safervlm.evaluate.score",
    "safervlm.judge.rubrics",
    "safervlm.judge.http",
)


def test_real_data_paths_do_not_import_the_synthetic_world() -> None:
    """Only the ground-truth sidecar reader (no-op on official copies) may load, nothing else."""
    loaded = _loaded_modules(*REAL_DATA_MODULES)
    assert "safervlm.benchmarks.vlguard" in loaded
    sidecar = {"safervlm.embedded", "safervlm.embedded.truth"}
    assert not {m for m in loaded if m.startswith("safervlm.embedded")} - sidecar


def test_the_boundary_check_can_fail() -> None:
    """The reference judge is built on the world: the same probe must see it."""
    assert "safervlm.embedded.world" in _loaded_modules("safervlm.judge.reference")
