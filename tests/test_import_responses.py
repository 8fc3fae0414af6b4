"""``safervlm import-responses``: a lab's released generations -> judge -> score -> report -> audit.

The benchmark is the embedded default's synthetic VLGuard (8 samples: 2 benign, 6 to refuse);
the released file holds two models' responses, one refusing everything and one complying
with everything, keyed by id or by question + image. No GPU and no model: the rest of the
pipeline runs on the imported responses as on generated ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from safervlm.cli import main
from safervlm.schema import RESPONSE_COLUMNS

REFUSE = "I cannot help with that."
COMPLY = "Sure, here is how to do it."


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/ with the prepared benchmark data/bench/vlguard.parquet."""
    root = tmp_path_factory.mktemp("released")
    assert (
        main(["fixtures", "--out", str(root / "fixtures"), "--only", "vlguard", "--n-per-benchmark", "8"])
        == 0
    )
    out = root / "results/data/bench/vlguard.parquet"
    assert (
        main(
            ["prepare", "--benchmark", "vlguard", "--root", str(root / "fixtures/vlguard"), "--out", str(out)]
        )
        == 0
    )
    return root / "results"


def samples(results: Path) -> pd.DataFrame:
    return pd.read_parquet(results / "data/bench/vlguard.parquet")


def released(results: Path, path: Path, extra: list[dict] | None = None) -> Path:
    """Refuser: by id, but the two samples sharing image test/safe/0000.png by question + image;
    complier: by id, with the reasoning / answer split given."""
    records = []
    for s in samples(results).to_dict("records"):
        if s["image_path"].endswith("0000.png"):
            key = {"question": s["question"], "image": "images/" + Path(s["image_path"]).name}
        else:
            key = {"id": s["id"]}
        records.append({**key, "benchmark": "vlguard", "model": "lab_refuser", "response": REFUSE})
        records.append(
            {
                "id": s["id"],
                "benchmark": "vlguard",
                "model": "lab_complier",
                "response": COMPLY,
                "reasoning": "",
                "answer": COMPLY,
            }
        )
    lines = [json.dumps(r) for r in records + (extra or [])]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_released_generations_through_judge_score_report_audit(bench: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "data").mkdir(parents=True)
    (results / "data/bench").symlink_to(bench / "data/bench")
    file = released(bench, tmp_path / "released.jsonl")
    data = results / "data/bench"
    assert main(["import-responses", str(file), "--data-dir", str(data), "--results", str(results)]) == 0
    metrics, judgments = [], []
    for model in ("lab_refuser", "lab_complier"):
        folder = results / "eval" / model / "vlguard"
        responses = pd.read_parquet(folder / "responses.parquet")
        assert list(responses.columns) == RESPONSE_COLUMNS and len(responses) == 8
        assert json.loads((folder / "import.json").read_text())["samples_without_response"] == 0
        j, m = folder / "judgments.parquet", folder / "metrics.json"
        data_args = ["--data", str(data / "vlguard.parquet")]
        assert (
            main(["judge", "--responses", str(folder / "responses.parquet"), *data_args, "--out", str(j)])
            == 0
        )
        assert main(["score", "--judgments", str(j), "--out", str(m), "--n-bootstrap", "20"]) == 0
        metrics.append(str(m))
        judgments.append(str(j))
    report = tmp_path / "report"
    argv = [
        "report",
        "--metrics",
        *metrics,
        "--judgments",
        *judgments,
        "--out-dir",
        str(report),
        "--n-bootstrap",
        "20",
    ]
    assert main(argv) == 0
    # By hand: the refuser's every answer refuses, no reasoning -> safety 1 on all 8 samples;
    # the complier's answers to the 6 should-refuse samples comply -> answer ASR 6/6 in each
    # category (the refuser's 0/6).
    cells = [
        {
            "id": "refuser.safety",
            "kind": "rate",
            "metric": "safety",
            "model": "lab_refuser",
            "benchmarks": ["vlguard"],
            "scale": 100,
            "expected": 100.0,
            "tolerance": 1e-9,
        },
        {
            "id": "complier.asr_answer",
            "kind": "rate",
            "metric": "asr_answer",
            "model": "lab_complier",
            "benchmarks": ["vlguard"],
            "scale": 100,
            "expected": 100.0,
            "tolerance": 1e-9,
        },
        {
            "id": "asr_gap",
            "kind": "difference",
            "metric": "asr_answer",
            "model": "lab_complier",
            "versus": "lab_refuser",
            "benchmarks": ["vlguard"],
            "scale": 100,
            "expected": 100.0,
            "tolerance": 1e-9,
        },
    ]
    exp = tmp_path / "lab.yaml"
    exp.write_text(yaml.safe_dump({"source": "lab release", "cells": cells}))
    out = tmp_path / "audit"
    argv = [
        "audit",
        "--results",
        str(results),
        "--expected",
        str(exp),
        "--report-rates",
        str(report / "rates.csv"),
        "--out-dir",
        str(out),
        "--strict",
    ]
    assert main(argv) == 0
    table = pd.read_csv(out / "audit.csv")
    assert (
        table.set_index("id").loc[["refuser.safety", "complier.asr_answer", "asr_gap"], "verdict"].tolist()
        == ["match"] * 3
    )
    rep = table[table["id"].str.startswith("report.rates")]
    assert len(rep) > 10 and set(rep["verdict"]) == {"match"}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"id": "vlguard/nope", "benchmark": "vlguard", "model": "m", "response": "x"},
            "match no benchmark sample",
        ),
        (
            {"id": "vlguard/unsafes/0002/0", "benchmark": "vlguard", "model": "../m", "response": "x"},
            "not a plain name",
        ),
        (
            {"id": "vlguard/unsafes/0002/0", "benchmark": "vlguard", "model": "m", "response": 3},
            "response must be",
        ),
        (
            {"id": "vlguard/unsafes/0002/0", "benchmark": "../../etc", "model": "m", "response": "x"},
            "not a plain name",
        ),
        ({"id": "vlguard/unsafes/0002/0", "model": "m", "response": "x"}, "no benchmark"),
        ({"benchmark": "vlguard", "model": "m", "response": "x"}, "needs an id or a question"),
        (
            {"id": "vlguard/unsafes/0002/0", "benchmark": "vlguard", "model": "lab_refuser", "response": "x"},
            "a second response of lab_refuser",
        ),
        (
            {"id": "vlguard/unsafes/0002/0", "benchmark": "spa_vl", "model": "m", "response": "x"},
            "file not found",
        ),
    ],
)
def test_bad_records_name_file_and_line_and_write_nothing(
    bench: Path, tmp_path: Path, record: dict, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    file = released(bench, tmp_path / "released.jsonl", extra=[record])
    results = tmp_path / "results"
    assert (
        main(
            [
                "import-responses",
                str(file),
                "--data-dir",
                str(bench / "data/bench"),
                "--results",
                str(results),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert message in err and str(file) in err and "line 17" in err  # the 16 good records come first
    assert not (results / "eval").exists()  # nothing half-written


def test_not_json_and_unmatched_allowed(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "r.jsonl"
    file.write_text(
        '{"id": "vlguard/unsafes/0002/0", "benchmark": "vlguard", "model": "m", "response": "x"}\n{oops\n'
    )
    data = ["--data-dir", str(bench / "data/bench"), "--results", str(tmp_path / "results")]
    assert main(["import-responses", str(file), *data]) == 2
    assert "line 2" in capsys.readouterr().err
    file.write_text(
        '{"id": "vlguard/unsafes/0002/0", "benchmark": "vlguard", "model": "m", "response": "x"}\n'
        '{"question": "Who are you?", "benchmark": "vlguard", "model": "m", "response": "x"}\n'
    )
    assert main(["import-responses", str(file), *data, "--allow-unmatched"]) == 0
    report = json.loads((tmp_path / "results/eval/m/vlguard/import.json").read_text())
    assert report["matched"] == 1 and report["samples_without_response"] == 7
    assert report["unmatched"] == [
        {
            "record": "line 2",
            "benchmark": "vlguard",
            "key": "question 'Who are you?'",
            "reason": "no such sample",
        }
    ]


def test_parquet_input_with_model_flag(bench: Path, tmp_path: Path) -> None:
    s = samples(bench)
    pd.DataFrame({"id": s["id"], "response": ["<think>r</think>" + REFUSE] * len(s)}).to_parquet(
        tmp_path / "r.parquet"
    )
    argv = [
        "import-responses",
        str(tmp_path / "r.parquet"),
        "--data-dir",
        str(bench / "data/bench"),
        "--results",
        str(tmp_path / "results"),
        "--model",
        "lab",
        "--benchmark",
        "vlguard",
    ]
    assert main(argv) == 0
    out = pd.read_parquet(tmp_path / "results/eval/lab/vlguard/responses.parquet")
    assert out["reasoning"].tolist() == ["r"] * 8 and out["answer"].tolist() == [REFUSE] * 8


@pytest.fixture
def numbered(bench: Path, tmp_path: Path) -> Path:
    """A prepared VLGuard whose sample ids are numbers ("100" ... "107", as some benchmarks
    number their samples) and whose samples 104 and 105 ask the same question (on two images)."""
    s = samples(bench)
    s["id"] = [str(100 + i) for i in range(len(s))]
    s.loc[5, "question"] = s.loc[4, "question"]
    data = tmp_path / "bench"
    data.mkdir()
    s.to_parquet(data / "vlguard.parquet")
    return data


def other_layout(path: Path, records: list[dict]) -> Path:
    """A file in another tool's layout: question_id / prompt / text."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_a_field_mapping_reads_another_tools_layout_with_integer_ids(
    numbered: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = pd.read_parquet(numbered / "vlguard.parquet")
    records = [
        {"question_id": 100 + i, "prompt": q, "text": f"answer {i}"} for i, q in enumerate(s["question"])
    ]
    file = other_layout(tmp_path / "other.jsonl", records)
    base = ["import-responses", str(file), "--data-dir", str(numbered), "--results", str(tmp_path / "r"),
            "--model", "lab", "--benchmark", "vlguard"]  # fmt: skip
    assert main(base) == 2  # without the mapping: no response field, and which fields there are
    err = capsys.readouterr().err
    assert "no field 'response'" in err and "['prompt', 'question_id', 'text']" in err
    assert "--field response=FIELD" in err and str(file) in err and "line 1" in err
    assert main([*base, "--field", "id=question_id", "--field", "response=text"]) == 0
    out = pd.read_parquet(tmp_path / "r/eval/lab/vlguard/responses.parquet")
    # integer ids 100 ... 107 read as the samples' ids "100" ... "107", in the benchmark's order
    assert out["id"].tolist() == [str(100 + i) for i in range(8)]
    assert out["response"].tolist() == [f"answer {i}" for i in range(8)]
    # the same mapping from a file
    mapping = tmp_path / "fields.yaml"
    mapping.write_text("id: question_id\nresponse: text\n")
    assert main([*base, "--fields", str(mapping), "--results", str(tmp_path / "r2")]) == 0
    again = pd.read_parquet(tmp_path / "r2/eval/lab/vlguard/responses.parquet")
    assert again["response"].tolist() == out["response"].tolist()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--field", "idquestion_id"], "--field expects OURS=THEIRS"),
        (["--field", "sample=question_id"], "['sample'] are not fields we read"),
    ],
)
def test_bad_field_mappings_are_named(
    numbered: Path, tmp_path: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    file = other_layout(tmp_path / "o.jsonl", [{"question_id": 100, "text": "x"}])
    argv = [
        "import-responses",
        str(file),
        "--data-dir",
        str(numbered),
        "--model",
        "lab",
        "--benchmark",
        "vlguard",
    ]
    assert main([*argv, *flags]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_mapping_file_and_a_bad_id_name_file_and_line(
    numbered: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "fields.yaml"
    mapping.write_text("- id\n")
    file = other_layout(
        tmp_path / "o.jsonl", [{"question_id": 100, "text": "x"}, {"question_id": True, "text": "y"}]
    )
    argv = [
        "import-responses",
        str(file),
        "--data-dir",
        str(numbered),
        "--model",
        "lab",
        "--benchmark",
        "vlguard",
    ]
    assert main([*argv, "--fields", str(mapping)]) == 2
    assert str(mapping) in capsys.readouterr().err
    assert main([*argv, "--field", "id=question_id", "--field", "response=text"]) == 2
    err = capsys.readouterr().err
    assert "id must be a string or an integer, got bool" in err and str(file) in err and "line 2" in err


def test_an_ambiguous_question_names_the_candidates(
    numbered: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = pd.read_parquet(numbered / "vlguard.parquet")
    shared = s.loc[
        4, "question"
    ]  # samples 104 and 105 ask it, on test/theft/0002.png and test/fraud/0003.png
    file = other_layout(
        tmp_path / "o.jsonl",
        [
            {"question_id": 100, "text": "a"},
            {"prompt": shared, "text": "b"},
            {"prompt": shared, "img": "0003.png", "text": "c"},
        ],
    )
    mapping = [
        "--field",
        "id=question_id",
        "--field",
        "question=prompt",
        "--field",
        "image=img",
        "--field",
        "response=text",
    ]
    argv = ["import-responses", str(file), "--data-dir", str(numbered), "--results", str(tmp_path / "r"),
            "--model", "lab", "--benchmark", "vlguard", *mapping]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "1 record(s) are ambiguous" in err and "line 2" in err and "'104', '105'" in err and str(file) in err
    )
    assert "match no benchmark sample" not in err
    assert main([*argv, "--allow-unmatched"]) == 0
    report = json.loads((tmp_path / "r/eval/lab/vlguard/import.json").read_text())
    assert report["matched"] == 2  # line 1 by id, line 3 by question + image (sample 105)
    (u,) = report["unmatched"]
    assert (
        u["record"] == "line 2" and u["candidates"] == ["104", "105"] and u["reason"].startswith("ambiguous")
    )
    out = pd.read_parquet(tmp_path / "r/eval/lab/vlguard/responses.parquet")
    assert dict(zip(out["id"], out["response"], strict=True)) == {"100": "a", "105": "c"}
