"""Import OpenSafeMLRM's published results into outcome rows for the SafeMLRM analysis.

Two file kinds, found anywhere under the import folder (``*.json``):

* per-sample judged files, ``[{attack}/]{model}/{scenario}.json``:
  ``{id: {question, original_prompt, model_response, reasoning_score, answer_score,
  full_response_score}}``;
* histograms, ``statistic_results/{baseline|jailbreak_method}/{model}/{scenario}.json``:
  ``{"reasoning_score": {"5": n, ..., "0": n, "-1": n}, "answer_score": ..., "full_response_score": ...}``.

Scores are 1-5 (5 = full compliance), 0 for a keyword refusal (scored, safe), -1 for an
empty part (``empty``); a missing or unreadable score is ``unscored``. With
``refused="exclude"`` a keyword refusal is no verdict either (NaN, status ``refused``), so
the ``exclude`` missing policy drops it from the denominators (the audit's definition
variants); by default it is a scored, safe part. Histograms carry
no per-sample pairs, so self-correction is reported as not computable for them; where a
per-sample file and a histogram describe the same (attack, model, scenario), the
per-sample file wins.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safervlm.errors import InputError
from safervlm.metrics.asr import ASR_THRESHOLD, PARTS, attack_success
from safervlm.metrics.safemlrm import OUTCOME_COLUMNS

logger = logging.getLogger(__name__)

SCORE_KEYS = {"reasoning": "reasoning_score", "answer": "answer_score", "full": "full_response_score"}
DEFAULT_ATTACK = "baseline"
HISTOGRAM_ROOT = "statistic_results"
REFUSED_POLICIES = ("count", "exclude")


def _score(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    try:
        f = float(value)
    except (TypeError, ValueError):
        return math.nan
    return f if f in (-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0) else math.nan


def _part(score: float, threshold: float, refused: str = "count") -> tuple[float, str]:
    """(attack-success indicator, status) of one part's score."""
    if math.isnan(score):
        return math.nan, "unscored"
    if score == -1.0:
        return math.nan, "empty"
    if score == 0.0 and refused == "exclude":
        return math.nan, "refused"
    # A published score is a harm score: no unified-safety fallback (safety = NaN).
    success = attack_success(np.array([score]), np.array([math.nan]), threshold)
    return float(success[0]), "scored"


def _row(
    model: str,
    bench: str,
    attack: str,
    scenario: str,
    sid: str,
    paired: bool,
    scores: dict[str, float],
    threshold: float,
    refused: str = "count",
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "model": model,
        "benchmark": bench,
        "attack": attack,
        "category": scenario,
        "id": sid,
        "paired": paired,
        "safety": math.nan,
        "helpfulness": math.nan,
        "official": math.nan,
    }
    for p in PARTS:
        row[f"unsafe_{p}"], row[f"status_{p}"] = _part(scores[p], threshold, refused)
    return row


def _is_histogram(data: dict[str, Any]) -> bool:
    return set(SCORE_KEYS.values()) <= set(data) and all(
        isinstance(data[k], dict) for k in SCORE_KEYS.values()
    )


def _per_sample_rows(
    data: dict[str, Any], path: Path, key: tuple[str, str, str], bench: str, threshold: float, refused: str
) -> list[dict[str, Any]]:
    attack, model, scenario = key
    rows = []
    for sid, rec in data.items():
        if not isinstance(rec, dict):
            raise InputError("expected an object per sample id", path=path, record=sid)
        scores = {p: _score(rec.get(k)) for p, k in SCORE_KEYS.items()}
        rows.append(
            _row(model, bench, attack, scenario, f"{scenario}/{sid}", True, scores, threshold, refused)
        )
    return rows


def _histogram_rows(
    data: dict[str, Any], path: Path, key: tuple[str, str, str], bench: str, threshold: float, refused: str
) -> list[dict[str, Any]]:
    attack, model, scenario = key
    columns: dict[str, np.ndarray] = {}
    for p, k in SCORE_KEYS.items():
        values = []
        for score, count in data[k].items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise InputError(f"{k}[{score!r}] must be a count, got {count!r}", path=path)
            values += [_score(score)] * count
        columns[p] = np.array(values, dtype=float)
    sizes = {p: v.size for p, v in columns.items()}
    if len(set(sizes.values())) != 1:
        raise InputError(f"histograms of one file must have equal totals, got {sizes}", path=path)
    return [
        _row(
            model,
            bench,
            attack,
            scenario,
            f"{scenario}/h{i}",
            False,
            {p: columns[p][i] for p in PARTS},
            threshold,
            refused,
        )
        for i in range(sizes["full"])
    ]


def _key(path: Path, root: Path) -> tuple[str, str, str]:
    parts = [p for p in path.relative_to(root).parts[:-1] if p != HISTOGRAM_ROOT]
    model = parts[-1] if parts else root.name
    attack = parts[-2] if len(parts) >= 2 else DEFAULT_ATTACK
    return attack, model, path.stem


def import_opensafemlrm(
    root: str | Path,
    benchmark: str = "opensafemlrm",
    threshold: float = ASR_THRESHOLD,
    refused: str = "count",
) -> pd.DataFrame:
    """Read every OpenSafeMLRM file under ``root`` into ``safemlrm.OUTCOME_COLUMNS`` rows.

    Raises:
        InputError: naming the file (and record) that does not follow either format, or a
            file that resolves outside ``root`` (a link out of the release).
    """
    if refused not in REFUSED_POLICIES:
        raise ValueError(f"refused must be one of {REFUSED_POLICIES}, got {refused!r}")
    root = Path(root)
    files = sorted(root.rglob("*.json"))
    inside = root.resolve()
    for path in files:
        if not path.resolve().is_relative_to(inside):
            raise InputError(f"resolves outside the release folder {root}", path=path)
    if not files:
        raise InputError("no OpenSafeMLRM *.json files found", path=root)
    per_sample: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    histograms: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"unreadable JSON: {exc}", path=path) from exc
        if not isinstance(data, dict):
            raise InputError("expected a JSON object", path=path)
        key = _key(path, root)
        if _is_histogram(data):
            histograms[key] = _histogram_rows(data, path, key, benchmark, threshold, refused)
        else:
            per_sample[key] = _per_sample_rows(data, path, key, benchmark, threshold, refused)
    rows = [r for k in sorted(per_sample) for r in per_sample[k]]
    rows += [r for k in sorted(histograms) if k not in per_sample for r in histograms[k]]
    logger.info(
        "imported %d per-sample files and %d histograms (%d rows) from %s",
        len(per_sample),
        len(set(histograms) - set(per_sample)),
        len(rows),
        root,
    )
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
