"""A published cell measured under one judge protocol, audited on judgments by another.

SaFeR-Steer's Table 2 cells (config/audit/published.yaml) were judged by GPT-5-nano. The
audit recomputes them from a lab's released responses (``import-responses``) judged here by
the rule-based reference judge and by the OpenAI-compatible judge against the project's
local chat server: a cell whose judgments come from another judge (or an openai judge whose
model is another, or not known) is *not comparable (protocol: …)*, never a mismatch, and
``--strict`` fails only on mismatches of comparable cells. The printed lines use the
summary's words.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from chat_server import ChatServer

from safervlm.cli import main
from safervlm.errors import InputError
from safervlm.report import audit
from safervlm.report.audit.protocol import JudgeSpec, incomparable

MODEL = "safer_vlm_3b"
SAFETY = "safer_steer.safer_vlm_3b.vlguard.safety"
HELPFULNESS = "safer_steer.safer_vlm_3b.vlguard.helpfulness"
STEER = "SaFeR-Steer Table 2: GPT-5-nano judge"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic VLGuard prepared (8 samples), and a lab's release of SaFeR-VLM-3B's
    responses to it (every one a refusal)."""
    root = tmp_path_factory.mktemp("protocol")
    fixtures = ["fixtures", "--out", str(root / "fixtures"), "--only", "vlguard", "--n-per-benchmark", "8"]
    assert main(fixtures) == 0
    data = root / "bench/vlguard.parquet"
    assert (
        main(
            [
                "prepare",
                "--benchmark",
                "vlguard",
                "--root",
                str(root / "fixtures/vlguard"),
                "--out",
                str(data),
            ]
        )
        == 0
    )
    ids = pd.read_parquet(data)["id"]
    records = [{"id": i, "response": "I cannot help with that."} for i in ids]
    (root / "released.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def judged(prepared: Path, results: Path, *judge: str) -> Path:
    """``results/eval/safer_vlm_3b/vlguard/judgments.parquet`` by ``judge`` (CLI flags)."""
    data = prepared / "bench"
    argv = ["import-responses", str(prepared / "released.jsonl"), "--data-dir", str(data),
            "--results", str(results), "--model", MODEL, "--benchmark", "vlguard"]  # fmt: skip
    assert main(argv) == 0
    folder = results / "eval" / MODEL / "vlguard"
    bench = str(data / "vlguard.parquet")
    argv = ["judge", "--responses", str(folder / "responses.parquet"), "--data", bench,
            "--out", str(folder / "judgments.parquet"), *judge]  # fmt: skip
    assert main(argv) == 0
    return results


def run_audit(results: Path, repo_root: Path, out: Path, *flags: str) -> int:
    argv = ["audit", "--results", str(results), "--expected", str(repo_root / "config/audit/published.yaml"),
            "--out-dir", str(out), "--strict", *flags]  # fmt: skip
    return main(argv)


def test_another_judge_is_not_comparable_and_strict_passes(
    prepared: Path, repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = judged(prepared, tmp_path / "results", "--judge", "reference")
    assert run_audit(results, repo_root, tmp_path / "audit") == 0  # --strict: nothing comparable mismatches
    printed = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "audit/audit.csv").set_index("id")
    row = table.loc[SAFETY]
    assert row["verdict"] == "not comparable" and row["recomputed"] == 100.0  # every answer refuses
    assert row["detail"].startswith(f"protocol: {STEER}")
    assert re.search(r"the judgments are by reference@[\d.]+; recomputed 100, not compared", row["detail"])
    assert table.loc[HELPFULNESS, "verdict"] == "not comparable"
    # the summary and the lines use the same words
    assert "2 not comparable" in printed and "0 mismatch" in printed and "MISMATCH" not in printed
    assert f"{SAFETY}: not comparable (protocol: {STEER}" in printed
    md = (tmp_path / "audit/audit.md").read_text()
    assert "2 not comparable" in md and f"| `{SAFETY}` |" in md and "**not comparable**" in md


def test_the_protocols_judge_is_compared_and_another_model_is_not(
    prepared: Path,
    repo_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    with ChatServer() as server:
        params = json.dumps({"model": "gpt-5-nano", "base_url": server.base_url, "max_attempts": 2})
        cache = str(tmp_path / "judge.sqlite")
        results = judged(prepared, tmp_path / "results", "--judge", "openai", "--judge-params", params,
                         "--judge-cache", cache)  # fmt: skip
    verdict = {}
    for name, flags in {
        "unknown model": [],
        "other model": ["--judge-model", "gpt-4o-mini"],
        "the protocol's": ["--judge-model", "GPT-5-nano"],
    }.items():
        code = run_audit(results, repo_root, tmp_path / name, *flags)
        row = pd.read_csv(tmp_path / name / "audit.csv").set_index("id").loc[SAFETY]
        verdict[name] = (code, row["verdict"], row["detail"])
    assert verdict["unknown model"][:2] == (0, "not comparable")
    assert (
        "by openai@" in verdict["unknown model"][2]
        and "model is not known (--judge-model)" in verdict["unknown model"][2]
    )
    assert (
        verdict["other model"][:2] == (0, "not comparable")
        and "with model gpt-4o-mini" in verdict["other model"][2]
    )
    # the same judge and model: compared, and 100 is not SaFeR-Steer's 75.10
    assert verdict["the protocol's"][:2] == (1, "mismatch") and verdict["the protocol's"][2].startswith(
        "off by"
    )
    err = capsys.readouterr().err
    assert f"{SAFETY}: mismatch (off by" in err and "mismatch: " in err  # AuditFailed names the word too


def test_the_judge_model_comes_from_the_config(
    prepared: Path, repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    with ChatServer() as server:
        params = {"model": "gpt-5-nano", "base_url": server.base_url, "max_attempts": 2}
        judge = [
            "--judge",
            "openai",
            "--judge-params",
            json.dumps(params),
            "--judge-cache",
            str(tmp_path / "c.db"),
        ]
        results = judged(prepared, tmp_path / "results", *judge)
    config = tmp_path / "config/config.yaml"
    config.parent.mkdir()
    cfg = {
        "results": str(results),
        "judge": {"name": "openai", "params": params},
        "eval": {"models": [MODEL]},
    }
    config.write_text(yaml.safe_dump(cfg))
    argv = ["audit", "--config", str(config), "--expected", str(repo_root / "config/audit/published.yaml"),
            "--out-dir", str(tmp_path / "audit")]  # fmt: skip
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "audit/audit.csv").set_index("id")
    assert table.loc[SAFETY, "verdict"] == "mismatch"


@pytest.mark.parametrize(
    ("spec", "used", "model", "why"),
    [
        (JudgeSpec("openai", "gpt-5-nano"), ["openai@2.0"], "gpt-5-nano", ""),
        (JudgeSpec("openai", "gpt-5-nano"), ["openai@2.0"], "GPT-5-Nano", ""),  # model names ignore case
        (JudgeSpec("openai"), ["openai@2.0"], "", ""),  # any model
        (JudgeSpec("openai", version="2.0"), ["openai@2.0"], "", ""),
        (JudgeSpec("openai", version="1.0"), ["openai@2.0"], "", "the judgments are by openai@2.0"),
        (JudgeSpec("openai", "gpt-5-nano"), ["reference@1.1"], "", "the judgments are by reference@1.1"),
        (JudgeSpec("openai"), ["openai@2.0", "reference@1.1"], "", "by openai@2.0, reference@1.1"),
        (JudgeSpec("openai", "gpt-5-nano"), ["openai@2.0"], "", "whose model is not known"),
        (JudgeSpec("openai", "gpt-5-nano"), ["openai@2.0"], "gpt-5-mini", "with model gpt-5-mini"),
        (JudgeSpec("openai"), [], "", "by no named judge"),
        (None, ["reference@1.1"], "", ""),  # a cell naming no judge is compared as before
    ],
)
def test_incomparable(spec: JudgeSpec | None, used: list[str], model: str, why: str) -> None:
    got = incomparable(spec, used, model)
    assert (got == "") if not why else (why in got)


@pytest.mark.parametrize("judge", [{"model": "gpt-5-nano"}, {"name": "openai", "seed": "1"}, ["openai"], ""])
def test_a_bad_judge_names_file_and_record(tmp_path: Path, judge: object) -> None:
    ok = {"id": "ok", "kind": "rate", "metric": "safety", "model": "m", "benchmarks": ["b"], "expected": 1.0}
    path = tmp_path / "e.yaml"
    path.write_text(
        yaml.safe_dump({"cells": [{**ok, "judge": "reference"}, {**ok, "id": "bad", "judge": judge}]})
    )
    with pytest.raises(InputError, match="judge must be a name or a mapping") as err:
        audit.load_cells([path])
    assert str(path) in str(err.value) and "[record 1]" in str(err.value)


def test_the_judge_model_is_the_audited_judges(tmp_path: Path) -> None:
    """With several judges, the model is that of the judge whose judgments are audited."""
    (tmp_path / "config").mkdir()
    cfg = tmp_path / "config/c.yaml"
    judges = {"b": {"name": "reference"}, "a": {"name": "openai", "params": {"model": "gpt-5-nano"}}}
    cfg.write_text(yaml.safe_dump({"results": "out", "eval": {"judges": judges}}, sort_keys=False))
    assert audit.inputs_from_config(cfg, audit.AuditInputs()).judge_model == ""  # b: no model
    chosen = audit.inputs_from_config(cfg, audit.AuditInputs(judgments="judgments.a.parquet"))
    assert (chosen.judgments, chosen.judge_model) == ("judgments.a.parquet", "gpt-5-nano")
    given = audit.inputs_from_config(cfg, audit.AuditInputs(judgments="judgments.a.parquet", judge_model="x"))
    assert given.judge_model == "x"  # --judge-model wins
