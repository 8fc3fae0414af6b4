"""A lab's released generations as our ``responses.parquet`` (``safervlm import-responses``).

A released file (JSONL, one object a line, or parquet) has per record: ``id`` (the
benchmark sample's id) or ``question`` (with ``image``, the image's file name, where
questions repeat), ``benchmark``, ``model``, ``response``; optionally ``reasoning`` and
``answer`` (else split from the response as generation does, ``text.split_response``).
Each record is matched to the prepared benchmark (``data/bench/{bench}.parquet``) by id,
else by question + image file name; the rows take the sample's columns, so judge, score,
report and audit run on them exactly as on our own generations. Their generation columns
say what a release cannot: ``finish_reason`` "", ``truncated`` False, token counts -1, and
``reasoning_source`` ``markers`` (reasoning split from ``<think>`` in the response),
``field`` (given apart) or ``none`` (``schema.with_generation_columns``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm.errors import InputError
from safervlm.io import read_parquet
from safervlm.schema import RESPONSE_COLUMNS, SAMPLE_COLUMNS, with_generation_columns
from safervlm.text import split_response

# A model or benchmark name becomes a folder name: no separators, no leading dot.
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
TEXT_FIELDS = ("id", "question", "image", "benchmark", "model", "response", "reasoning", "answer")


@dataclass
class Matched:
    """Responses per (model, benchmark) and the records that matched no sample."""

    responses: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    unmatched: list[dict[str, Any]] = field(default_factory=list)  # {record, benchmark, key, reason}
    uncovered: dict[tuple[str, str], int] = field(default_factory=dict)  # samples with no response


def read_released(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL or parquet file, as dicts."""
    if not path.is_file():
        raise InputError("file not found", path=path)
    if path.suffix == ".parquet":
        return [{str(k): v for k, v in r.items()} for r in read_parquet(path).to_dict("records")]
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"unreadable: {exc}", path=path) from exc
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON: {exc}", path=path, record=f"line {i}") from exc
        if not isinstance(rec, dict):
            raise InputError("expected a JSON object", path=path, record=f"line {i}")
        records.append({**rec, "_record": f"line {i}"})
    return records


def _clean(rec: dict[str, Any], path: Path, where: str, defaults: dict[str, str | None]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in TEXT_FIELDS:
        value = rec.get(key)
        if value is None or (isinstance(value, float) and pd.isna(value)):
            value = defaults.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{key} must be a string, got {type(value).__name__}", path=path, record=where)
        out[key] = value or ""
    for key in ("model", "benchmark"):
        if not out[key]:
            raise InputError(f"no {key} (give --{key})", path=path, record=where)
        if not NAME.match(out[key]):
            raise InputError(f"{key} {out[key]!r} is not a plain name", path=path, record=where)
    if "response" not in rec or not isinstance(rec["response"], str):
        raise InputError("response must be a string", path=path, record=where)
    if not out["id"] and not out["question"]:
        raise InputError("needs an id or a question", path=path, record=where)
    return out


def _keys(samples: pd.DataFrame) -> tuple[dict[str, int], dict[tuple[str, str], list[int]]]:
    by_id = {str(s): i for i, s in enumerate(samples["id"])}
    by_question: dict[tuple[str, str], list[int]] = {}
    for i, (q, img) in enumerate(zip(samples["question"], samples["image_path"], strict=True)):
        name = Path(str(img or "")).name
        for key in ((str(q).strip(), name), (str(q).strip(), "")):
            by_question.setdefault(key, []).append(i)
    return by_id, by_question


def match_responses(
    records: list[dict[str, Any]],
    path: Path,
    load_bench: Callable[[str], pd.DataFrame],
    defaults: dict[str, str | None],
) -> Matched:
    """Match every record to its benchmark's samples; one response per (model, sample).

    Raises:
        InputError: naming the file and record of a malformed record or of a second response
            of one model to one sample.
    """
    out = Matched()
    benches: dict[str, tuple[pd.DataFrame, dict[str, int], dict[tuple[str, str], list[int]]]] = {}
    rows: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for n, rec in enumerate(records):
        where = str(rec.get("_record", f"row {n}"))
        r = _clean(rec, path, where, defaults)
        if r["benchmark"] not in benches:
            try:
                samples = load_bench(r["benchmark"])
            except InputError as exc:
                raise InputError(
                    f"benchmark {r['benchmark']!r} is not prepared: {exc}", path=path, record=where
                ) from exc
            benches[r["benchmark"]] = (samples, *_keys(samples))
        samples, by_id, by_question = benches[r["benchmark"]]
        if r["id"]:
            hits, key = ([by_id[r["id"]]] if r["id"] in by_id else []), f"id {r['id']!r}"
        else:
            hits = by_question.get((r["question"].strip(), Path(r["image"]).name), [])
            key = f"question {r['question'][:60]!r}" + (
                f" + image {Path(r['image']).name!r}" if r["image"] else ""
            )
        if len(hits) != 1:
            reason = "no such sample" if not hits else f"{len(hits)} samples match (give an id or the image)"
            out.unmatched.append({"record": where, "benchmark": r["benchmark"], "key": key, "reason": reason})
            continue
        slot = rows.setdefault((r["model"], r["benchmark"]), {})
        if hits[0] in slot:
            raise InputError(
                f"a second response of {r['model']} to sample {samples['id'].iloc[hits[0]]!r}",
                path=path,
                record=where,
            )
        reasoning, answer = split_response(rec["response"])
        if r["reasoning"] or r["answer"]:
            reasoning, answer = r["reasoning"], r["answer"]
        slot[hits[0]] = {
            "model": r["model"],
            "response": rec["response"],
            "reasoning": reasoning,
            "answer": answer,
        }
    for (model, bench), slot in rows.items():
        samples = benches[bench][0]
        order = sorted(slot)
        df = samples.iloc[order].drop(columns=["image"]).reset_index(drop=True)
        for col in ("model", "response", "reasoning", "answer"):
            df[col] = [slot[i][col] for i in order]
        out.responses[(model, bench)] = with_generation_columns(df)[RESPONSE_COLUMNS]
        out.uncovered[(model, bench)] = len(samples) - len(order)
    return out


def bench_loader(data_dir: Path) -> Callable[[str], pd.DataFrame]:
    """Reads ``data_dir/{bench}.parquet`` (a prepared benchmark), failing with its path."""

    def load(bench: str) -> pd.DataFrame:
        return read_parquet(data_dir / f"{bench}.parquet", required=SAMPLE_COLUMNS)

    return load
