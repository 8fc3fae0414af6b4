"""Remove training-pool rows that duplicate or nearly duplicate any evaluation item.

A pool row is dropped when, checked in this order (the first hit is its reason):

1. ``exact_text``: its normalised question equals a normalised evaluation question
   (lowercase, punctuation replaced by spaces, whitespace collapsed);
2. ``near_text``: the Jaccard similarity of its question's character shingles with an
   evaluation question's is >= ``near_text_threshold`` (MinHash LSH candidates, exact
   Jaccard decides; see :mod:`safervlm.curate.near_dup`);
3. ``near_image``: the perceptual hashes of its image and an evaluation image differ in
   at most ``near_image_distance`` bits.

The report credits each removed row to the benchmark of the matched evaluation item
(for near matches the closest one), so counts per benchmark and reason add up to the
number removed.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from safervlm.config import DecontaminateParams
from safervlm.curate.near_dup import (
    ImageIndex,
    Key,
    Match,
    TextIndex,
    image_hash,
    normalise_question,
)
from safervlm.errors import InputError

logger = logging.getLogger(__name__)

REASONS = ("exact_text", "near_text", "near_image")


def _image_bytes(value: Any, *, path: str, record: object) -> bytes | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, dict):  # datasets-style {"bytes": ..., "path": ...}
        value = value.get("bytes")
    if not isinstance(value, bytes | bytearray):
        raise InputError(f"image is a {type(value).__name__}, expected bytes", path=path, record=record)
    return bytes(value)


def hash_images(frame: pd.DataFrame, params: DecontaminateParams, path: str) -> dict[int, np.ndarray]:
    """Perceptual hash of every row's image, keyed by position; undecodable bytes raise.

    Raises:
        InputError: naming ``path`` and the row's id when its image bytes do not decode.
    """
    out: dict[int, np.ndarray] = {}
    ids = frame["id"].astype(str).tolist()
    for pos, (rid, value) in enumerate(
        tqdm(zip(ids, frame["image"], strict=True), total=len(ids), desc="image hashes", leave=False)
    ):
        data = _image_bytes(value, path=path, record=rid)
        if data is None:
            continue
        try:
            out[pos] = image_hash(data, params.image_hash, params.image_hash_size)
        except Exception as exc:  # PIL raises several types for undecodable bytes
            raise InputError(f"cannot decode image bytes: {exc}", path=path, record=rid) from exc
    return out


def build_indexes(
    evals: dict[str, pd.DataFrame], params: DecontaminateParams, paths: dict[str, str]
) -> tuple[TextIndex, ImageIndex, dict[str, dict[str, int]]]:
    """Text and image indexes over every evaluation set, plus per-set sizes for the report."""
    texts: list[tuple[Key, str]] = []
    images: list[tuple[Key, np.ndarray]] = []
    sizes: dict[str, dict[str, int]] = {}
    for bench, frame in sorted(evals.items()):
        ids = frame["id"].astype(str).tolist()
        texts += [((bench, i), q) for i, q in zip(ids, frame["question"], strict=True)]
        hashes = hash_images(frame, params, paths.get(bench, bench))
        images += [((bench, ids[pos]), h) for pos, h in hashes.items()]
        sizes[bench] = {"n_rows": len(frame), "n_images": len(hashes)}
    text_index = TextIndex(params.shingle_size, params.near_text_threshold, params.minhash_perm)
    text_index.build(texts)
    image_index = ImageIndex(params.near_image_distance)
    image_index.build(images)
    return text_index, image_index, sizes


def _find(
    pool: pd.DataFrame, text: TextIndex, image: ImageIndex, params: DecontaminateParams, path: str
) -> list[tuple[str, Match] | None]:
    """The first (reason, match) of each pool row, or None when it is clean."""
    norms = [normalise_question(q) for q in pool["question"]]
    near = text.nearest(norms)
    hashes = hash_images(pool, params, path)
    positions = sorted(hashes)
    near_img: dict[int, Match | None] = {}
    if positions:
        found = image.nearest(np.stack([hashes[p] for p in positions]))
        near_img = dict(zip(positions, found, strict=True))
    hits: list[tuple[str, Match] | None] = []
    for pos, norm in enumerate(norms):
        exact = text.exact(norm)
        if exact is not None:
            hits.append(("exact_text", Match(exact, 1.0)))
        elif near[pos] is not None:
            hits.append(("near_text", near[pos]))  # type: ignore[arg-type]
        elif near_img.get(pos) is not None:
            hits.append(("near_image", near_img[pos]))  # type: ignore[arg-type]
        else:
            hits.append(None)
    return hits


def decontaminate(
    pool: pd.DataFrame,
    evals: dict[str, pd.DataFrame],
    params: DecontaminateParams | None = None,
    *,
    pool_path: str = "pool",
    eval_paths: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop pool rows duplicating any evaluation item; return the clean pool and a report.

    Args:
        pool: Training pool with ``id``, ``question``, ``image`` (bytes or None), ``source``.
        evals: Evaluation frames by benchmark name, each with ``id``, ``question``, ``image``.
        params: Thresholds and hash settings.
        pool_path: Named in errors about pool records.
        eval_paths: Files of the evaluation frames, named in errors about their records.

    Returns:
        ``(clean, report)``: ``clean`` keeps the pool's columns and order; ``report`` holds
        ``n_pool``, ``n_removed``, ``n_kept``, ``removed_by_reason``, ``removed_by_benchmark``
        (benchmark -> reason -> count, every benchmark and reason listed),
        ``removed_by_source``, ``eval_sets`` (sizes), ``removed`` (one entry per removed
        row: id, source, reason, benchmark, eval_id, value) and the parameters.

    Raises:
        InputError: an undecodable image (naming the file and record).
    """
    params = params or DecontaminateParams()
    text, image, sizes = build_indexes(evals, params, eval_paths or {})
    hits = _find(pool, text, image, params, pool_path)
    ids = pool["id"].astype(str).tolist()
    sources = pool["source"].astype(str).tolist() if "source" in pool.columns else ["?"] * len(pool)
    removed: list[dict[str, Any]] = []
    by_bench = {b: dict.fromkeys(REASONS, 0) for b in sorted(evals)}
    by_source: dict[str, Counter[str]] = {}
    for rid, src, hit in zip(ids, sources, hits, strict=True):
        if hit is None:
            continue
        reason, match = hit
        bench, eval_id = match.key
        value = round(match.value, 6)  # Jaccard for text, Hamming distance for images
        removed.append(
            {
                "id": rid,
                "source": src,
                "reason": reason,
                "benchmark": bench,
                "eval_id": eval_id,
                "value": value,
            }
        )
        by_bench[bench][reason] += 1
        by_source.setdefault(src, Counter())[reason] += 1
    reasons = Counter(r["reason"] for r in removed)
    keep = pd.Series([h is None for h in hits], index=pool.index, dtype=bool)
    report = {
        "params": params.model_dump(),
        "eval_sets": sizes,
        "n_eval_texts": len(text),
        "n_eval_images": len(image),
        "n_pool": len(pool),
        "n_removed": len(removed),
        "n_kept": int(keep.sum()),
        "removed_by_reason": {r: reasons.get(r, 0) for r in REASONS},
        "removed_by_benchmark": by_bench,
        "removed_by_source": {s: {r: c.get(r, 0) for r in REASONS} for s, c in sorted(by_source.items())},
        "removed": removed,
    }
    logger.info(
        "decontaminate: removed %d of %d pool rows %s", len(removed), len(pool), report["removed_by_reason"]
    )
    return pool[keep].copy(), report
