"""Remove training-pool rows that overlap any evaluation set (text or image).

A pool row is dropped when, checked in this order (the first hit is its reason):

1. ``exact_question``: its normalised question equals a normalised eval question
   (lowercase, punctuation replaced by spaces, whitespace collapsed);
2. ``ngram_overlap``: it shares a word n-gram of length ``ngram`` with an eval question
   (questions shorter than ``ngram`` words have no n-grams, so only rule 1 applies);
3. ``image_hash``: its image bytes have the same sha256 as an eval image.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

REASONS = ("exact_question", "ngram_overlap", "image_hash")
_PUNCT_RE = re.compile(r"[^\w\s]|_")
_N_EXAMPLES = 5


def normalise_question(text: Any) -> str:
    """Lowercase, replace punctuation by spaces and collapse whitespace."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    return " ".join(_PUNCT_RE.sub(" ", str(text).lower()).split())


def word_ngrams(norm: str, n: int) -> set[tuple[str, ...]]:
    """The set of word n-grams of an already normalised string (empty if it is shorter)."""
    words = norm.split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def image_sha256(data: Any) -> str | None:
    """sha256 hex digest of image bytes, or None when there is no image."""
    if data is None or isinstance(data, float):
        return None
    if isinstance(data, dict):  # datasets-style {"bytes": ..., "path": ...}
        data = data.get("bytes")
        if data is None:
            return None
    return hashlib.sha256(bytes(data)).hexdigest()


def _eval_index(eval_sets: list[pd.DataFrame], ngram: int) -> tuple[set[str], set[tuple[str, ...]], set[str]]:
    questions: set[str] = set()
    grams: set[tuple[str, ...]] = set()
    hashes: set[str] = set()
    for frame in eval_sets:
        for q in frame.get("question", pd.Series(dtype=object)):
            norm = normalise_question(q)
            if norm:
                questions.add(norm)
                grams |= word_ngrams(norm, ngram)
        for img in frame.get("image", pd.Series(dtype=object)):
            h = image_sha256(img)
            if h:
                hashes.add(h)
    return questions, grams, hashes


def _reason(row: dict[str, Any], index: tuple[set[str], set[tuple[str, ...]], set[str]], ngram: int) -> str:
    questions, grams, hashes = index
    norm = normalise_question(row.get("question"))
    if norm and norm in questions:
        return "exact_question"
    if norm and not word_ngrams(norm, ngram).isdisjoint(grams):
        return "ngram_overlap"
    h = image_sha256(row.get("image"))
    if h and h in hashes:
        return "image_hash"
    return ""


def decontaminate(
    pool: pd.DataFrame, eval_sets: list[pd.DataFrame], ngram: int = 8
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop pool rows overlapping any eval set; return the clean pool and a report.

    Args:
        pool: Training pool with ``id``, ``question`` and optionally ``image`` and ``source``.
        eval_sets: Evaluation frames with ``question`` and optionally ``image``.
        ngram: Word n-gram length for the overlap rule (>= 1).

    Returns:
        ``(clean, report)``: ``clean`` keeps the pool's columns and order; ``report`` holds
        ``n_pool``, ``n_removed``, ``n_kept``, ``removed_by_reason``, ``removed_by_source``
        (source → reason → count), ``examples`` (reason → up to 5 ids) and the parameters.
    """
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    index = _eval_index(eval_sets, ngram)
    reasons = [_reason({str(k): v for k, v in row.items()}, index, ngram) for row in pool.to_dict("records")]
    mask = pd.Series([r == "" for r in reasons], index=pool.index)
    ids = pool["id"].astype(str).tolist() if "id" in pool.columns else [str(i) for i in pool.index]
    sources = pool["source"].astype(str).tolist() if "source" in pool.columns else ["(unknown)"] * len(pool)
    by_source: dict[str, Counter[str]] = {}
    examples: dict[str, list[str]] = {r: [] for r in REASONS}
    for rid, src, reason in zip(ids, sources, reasons, strict=True):
        if not reason:
            continue
        by_source.setdefault(src, Counter())[reason] += 1
        if len(examples[reason]) < _N_EXAMPLES:
            examples[reason].append(rid)
    counts = Counter(r for r in reasons if r)
    report = {
        "ngram": ngram,
        "n_eval_sets": len(eval_sets),
        "n_eval_questions": len(index[0]),
        "n_eval_images": len(index[2]),
        "n_pool": len(pool),
        "n_removed": int((~mask).sum()),
        "n_kept": int(mask.sum()),
        "removed_by_reason": {r: counts.get(r, 0) for r in REASONS},
        "removed_by_source": {s: dict(sorted(c.items())) for s, c in sorted(by_source.items())},
        "examples": examples,
    }
    logger.info(
        "decontaminate: removed %d of %d pool rows %s",
        report["n_removed"],
        len(pool),
        report["removed_by_reason"],
    )
    return pool[mask].copy(), report
