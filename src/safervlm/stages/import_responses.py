"""``safervlm import-responses``: released generations -> ``eval/{model}/{bench}/responses.parquet``.

A file in another tool's layout is read through a field mapping: ``--field id=question_id
--field response=text`` (our field = the file's), or ``--fields mapping.yaml`` (the same as
a YAML mapping); our fields are ``evaluate.released.TEXT_FIELDS``. Ids are read as strings
(an integer id ``17`` is sample ``"17"``). A question that matches several samples is
*ambiguous*: reported with the candidates' ids, never taken. Every error names the file and
the line (JSONL) or row (parquet).
"""

from __future__ import annotations

import argparse
import logging
import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from safervlm.errors import InputError, SafervlmError
from safervlm.evaluate.released import TEXT_FIELDS, Matched, bench_loader, match_responses, read_released
from safervlm.io import write_json, write_parquet

log = logging.getLogger(__name__)

RECORD = "_record"  # where a record is, as read_released notes it ("line N")


def field_mapping(items: list[str], file: str | None = None) -> dict[str, str]:
    """Our field -> the file's field, from ``OURS=THEIRS`` items and a YAML mapping file
    (the items win).

    Raises:
        SafervlmError: an item that is not ``OURS=THEIRS``, or names a field we do not read.
        InputError: a mapping file that is not a mapping of field names (naming the file).
    """
    mapping: dict[str, str] = {}
    if file:
        try:
            doc = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read the field mapping: {exc}", path=file) from exc
        if not isinstance(doc, dict) or any(not isinstance(v, str) or not v for v in doc.values()):
            raise InputError("a field mapping maps our field names to the file's (strings)", path=file)
        mapping.update({str(k): v for k, v in doc.items()})
    for item in items:
        ours, sep, theirs = item.partition("=")
        if not sep or not ours or not theirs:
            raise SafervlmError(f"--field expects OURS=THEIRS (e.g. id=question_id), got {item!r}")
        mapping[ours] = theirs
    unknown = sorted(set(mapping) - set(TEXT_FIELDS))
    if unknown:
        where = f" in {file}" if file else ""
        raise SafervlmError(f"field mapping{where}: {unknown} are not fields we read; ours are {TEXT_FIELDS}")
    return mapping


def _id(value: Any, path: Path, where: str) -> Any:
    """An id as a string: integers (and integral floats, as parquet stores them) read as text."""
    if isinstance(value, bool):
        raise InputError("id must be a string or an integer, got bool", path=path, record=where)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


def remap(records: list[dict[str, Any]], fields: dict[str, str], path: Path) -> list[dict[str, Any]]:
    """Records with our field names (``fields``: ours -> the file's) and ids as strings.

    Raises:
        InputError: naming the file and line of a record without a response field (its
            fields listed) or with an id that is neither text nor an integer.
    """
    out = []
    for n, rec in enumerate(records):
        where = str(rec.get(RECORD, f"row {n}"))
        theirs = set(fields.values())
        new = {k: v for k, v in rec.items() if k not in fields and k not in theirs or k == RECORD}
        new.update({ours: rec[src] for ours, src in fields.items() if src in rec})
        new[RECORD] = where
        if "response" not in new:
            src = fields.get("response", "response")
            have = sorted(k for k in rec if k != RECORD)
            hint = "" if "response" in fields else "; map one with --field response=FIELD"
            raise InputError(
                f"no field {src!r} for the response (fields: {have}){hint}", path=path, record=where
            )
        if new.get("id") is not None:
            new["id"] = _id(new["id"], path, where)
        out.append(new)
    return out


def _cached(load: Callable[[str], pd.DataFrame]) -> Callable[[str], pd.DataFrame]:
    cache: dict[str, pd.DataFrame] = {}

    def get(bench: str) -> pd.DataFrame:
        if bench not in cache:
            cache[bench] = load(bench)
        return cache[bench]

    return get


def _candidates(samples: pd.DataFrame, question: str, image: str) -> list[str]:
    """Ids of the samples a question (+ image file name) matches, as the matcher keys them."""
    name = Path(image).name if image else ""
    return [
        str(sid)
        for sid, q, img in zip(samples["id"], samples["question"], samples["image_path"], strict=True)
        if str(q).strip() == question.strip() and (not name or Path(str(img or "")).name == name)
    ]


def mark_ambiguous(
    matched: Matched, records: list[dict[str, Any]], load: Callable[[str], pd.DataFrame]
) -> None:
    """Records whose question matched several samples: reason ``ambiguous`` and the
    candidates' ids (in place)."""
    by_where = {str(r[RECORD]): r for r in records}
    for u in matched.unmatched:
        rec = by_where.get(str(u["record"]))
        if rec is None or u["reason"] == "no such sample" or rec.get("id"):
            continue
        ids = _candidates(load(u["benchmark"]), str(rec.get("question") or ""), str(rec.get("image") or ""))
        u["reason"] = f"ambiguous: {len(ids)} samples match (give an id or the image)"
        u["candidates"] = ids


def _refusal(matched: Matched, path: Path) -> InputError:
    """The error for records that matched no sample or several (the first few named)."""
    ambiguous = [u for u in matched.unmatched if u.get("candidates")]
    none = [u for u in matched.unmatched if not u.get("candidates")]
    parts = []
    if none:
        first = "; ".join(f"{u['record']}: {u['key']} ({u['reason']})" for u in none[:5])
        parts.append(f"{len(none)} record(s) match no benchmark sample: {first}")
    if ambiguous:
        first = "; ".join(
            f"{u['record']}: {u['key']} matches samples {', '.join(map(repr, u['candidates']))}"
            for u in ambiguous[:5]
        )
        parts.append(f"{len(ambiguous)} record(s) are ambiguous (give an id or the image): {first}")
    return InputError("; ".join(parts), path=path)


def import_responses_stage(
    file: str,
    data_dir: str,
    results: str,
    model: str | None,
    benchmark: str | None,
    allow_unmatched: bool,
    fields: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Match a released generations file to the prepared benchmarks and write responses.

    ``fields`` maps our field names to the file's. Nothing is written unless every record
    is valid, and (without ``allow_unmatched``) every record matched exactly one sample;
    then ``responses.parquet`` and ``import.json`` (what matched, what did not and why,
    with an ambiguous record's candidates, samples left without a response) per (model,
    benchmark).
    """
    path = Path(file)
    records = remap(read_released(path), fields or {}, path)
    if not records:
        raise InputError("no records", path=path)
    load = _cached(bench_loader(Path(data_dir)))
    matched = match_responses(records, path, load, {"model": model, "benchmark": benchmark})
    mark_ambiguous(matched, records, load)
    for u in matched.unmatched:
        log.warning("%s %s: %s, %s: %s", path, u["record"], u["key"], u["benchmark"], u["reason"])
    if matched.unmatched and not allow_unmatched:
        raise _refusal(matched, path)
    return _write(matched, path, Path(results), len(records))


def _write(matched: Matched, path: Path, results: Path, n_records: int) -> dict[str, Any]:
    """``responses.parquet`` and ``import.json`` per (model, benchmark); the summary."""
    summary: dict[str, Any] = {"file": str(path), "records": n_records, "unmatched": matched.unmatched}
    summary["written"] = {}
    for (m, bench), df in matched.responses.items():
        out = results / "eval" / m / bench
        write_parquet(df, out / "responses.parquet")
        report = {
            "file": str(path),
            "matched": len(df),
            "samples_without_response": matched.uncovered[(m, bench)],
            "unmatched": [u for u in matched.unmatched if u["benchmark"] == bench],
        }
        write_json(report, out / "import.json")
        summary["written"][f"{m}/{bench}"] = len(df)
    print(
        f"imported {sum(summary['written'].values())} responses: {summary['written']}; "
        f"unmatched records: {len(matched.unmatched)}"
    )
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm import-responses`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument("file", help="JSONL or parquet: id or question (+ image), benchmark, model, response")
    p.add_argument(
        "--data-dir", required=True, help="prepared benchmarks (results/data/bench/{bench}.parquet)"
    )
    p.add_argument("--results", default="results", help="write eval/{model}/{bench}/responses.parquet here")
    p.add_argument("--model", default=None, help="model name when the file has no model column")
    p.add_argument("--benchmark", default=None, help="benchmark name when the file has no benchmark column")
    p.add_argument(
        "--allow-unmatched", action="store_true", help="drop records matching no sample or several (listed)"
    )
    p.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="OURS=THEIRS",
        help="read our field from the file's, e.g. --field id=question_id --field response=text",
    )
    p.add_argument("--fields", help="YAML mapping of our field names to the file's (--field wins)")


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    fields = field_mapping(a.field, a.fields)
    return import_responses_stage(
        a.file, a.data_dir, a.results, a.model, a.benchmark, a.allow_unmatched, fields
    )
