"""Near-duplicate indexes over evaluation items: text by MinHash, images by perceptual hash.

Text: questions are normalised (lowercase, punctuation replaced by spaces, whitespace
collapsed) and cut into character ``shingle_size``-grams. ``datasketch``'s MinHash LSH
proposes candidates at a threshold ``_LSH_MARGIN`` below the configured one (so MinHash's
estimation error does not lose true matches); the exact Jaccard similarity of the shingle
sets then decides, so a pair is a near duplicate iff its Jaccard is >= the threshold.

Images: ``imagehash`` computes a perceptual hash of ``hash_size`` x ``hash_size`` bits;
an image is a near duplicate of an evaluation image when the Hamming distance of their
hashes is <= ``max_distance`` (distance 0 includes byte-identical images).

Ties (equal similarity or distance) go to the smallest ``(benchmark, id)`` key.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import imagehash
import numpy as np
from datasketch import MinHash, MinHashLSH
from PIL import Image

Key = tuple[str, str]  # (benchmark, evaluation item id)

_PUNCT_RE = re.compile(r"[^\w\s]|_")
_LSH_MARGIN = 0.15
_MINHASH_SEED = 1
# Compare at most this many pool x eval hash bytes at once (bounds memory).
_CHUNK_BYTES = 1 << 25
IMAGE_HASHES: dict[str, Callable[..., imagehash.ImageHash]] = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
}


def normalise_question(text: Any) -> str:
    """Lowercase, replace punctuation by spaces and collapse whitespace (None/NaN -> "")."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    return " ".join(_PUNCT_RE.sub(" ", str(text).lower()).split())


def shingles(norm: str, k: int) -> set[str]:
    """Character ``k``-grams of a normalised string (the string itself when shorter)."""
    if len(norm) <= k:
        return {norm} if norm else set()
    return {norm[i : i + k] for i in range(len(norm) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


@dataclass(frozen=True)
class Match:
    """The closest evaluation item: its key, and similarity (text) or distance (image)."""

    key: Key
    value: float


class TextIndex:
    """Exact and near-duplicate lookup of normalised questions among evaluation questions."""

    def __init__(self, shingle_size: int, threshold: float, num_perm: int) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-text threshold must be in (0, 1], got {threshold}")
        self.k, self.threshold, self.num_perm = shingle_size, threshold, num_perm
        self._keys: dict[str, Key] = {}  # normalised text -> smallest key holding it
        self._shingles: dict[str, set[str]] = {}
        self._lsh = MinHashLSH(threshold=max(0.05, threshold - _LSH_MARGIN), num_perm=num_perm)

    def __len__(self) -> int:
        return len(self._keys)

    def _minhashes(self, sets: Sequence[set[str]]) -> list[MinHash]:
        encoded = [sorted(s.encode() for s in sh) for sh in sets]
        return MinHash.bulk(encoded, num_perm=self.num_perm, seed=_MINHASH_SEED)

    def build(self, items: Sequence[tuple[Key, str]]) -> None:
        """Index evaluation questions (keys are ``(benchmark, id)``)."""
        for key, text in sorted(items):
            norm = normalise_question(text)
            if norm and norm not in self._keys:
                self._keys[norm] = key
        norms = list(self._keys)
        sets = [shingles(n, self.k) for n in norms]
        for norm, sh, mh in zip(norms, sets, self._minhashes(sets), strict=True):
            self._shingles[norm] = sh
            self._lsh.insert(norm, mh, check_duplication=False)

    def exact(self, norm: str) -> Key | None:
        """The key of an evaluation question equal to ``norm`` after normalisation."""
        return self._keys.get(norm) if norm else None

    def nearest(self, norms: Sequence[str]) -> list[Match | None]:
        """For each normalised text, the most similar indexed question with Jaccard >= threshold."""
        sets = [shingles(n, self.k) for n in norms]
        out: list[Match | None] = []
        for sh, mh in zip(sets, self._minhashes(sets), strict=True):
            best: Match | None = None
            if sh:
                for cand in self._lsh.query(mh):
                    sim = jaccard(sh, self._shingles[cand])
                    m = Match(self._keys[cand], sim)
                    if sim >= self.threshold and (best is None or (-sim, m.key) < (-best.value, best.key)):
                        best = m
            out.append(best)
        return out


def image_hash(data: bytes, algorithm: str, hash_size: int) -> np.ndarray:
    """The packed bits (uint8) of the perceptual hash of image bytes.

    Raises:
        ValueError: unknown algorithm. PIL errors (``OSError`` and others) propagate
        for bytes that do not decode; callers name the file and record.
    """
    if algorithm not in IMAGE_HASHES:
        raise ValueError(f"unknown image hash {algorithm!r}; known: {sorted(IMAGE_HASHES)}")
    with Image.open(io.BytesIO(data)) as img:
        h = IMAGE_HASHES[algorithm](img.convert("RGB"), hash_size=hash_size)
    return np.packbits(np.asarray(h.hash, dtype=bool).ravel())


class ImageIndex:
    """Near-duplicate lookup of perceptual hashes among evaluation-image hashes."""

    def __init__(self, max_distance: int) -> None:
        self.max_distance = max_distance
        self._keys: list[Key] = []
        self._hashes = np.zeros((0, 0), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self._keys)

    def build(self, items: Sequence[tuple[Key, np.ndarray]]) -> None:
        """Index evaluation-image hashes; identical hashes keep the smallest key."""
        first: dict[bytes, Key] = {}
        for key, bits in sorted(items, key=lambda t: t[0]):
            first.setdefault(bits.tobytes(), key)
        self._keys = list(first.values())
        self._hashes = np.array([np.frombuffer(b, dtype=np.uint8) for b in first], dtype=np.uint8)

    def nearest(self, hashes: np.ndarray) -> list[Match | None]:
        """For each hash row, the closest indexed image within ``max_distance`` bits."""
        if not len(self._keys) or not len(hashes):
            return [None] * len(hashes)
        chunk = max(1, _CHUNK_BYTES // max(1, self._hashes.size))
        out: list[Match | None] = []
        for start in range(0, len(hashes), chunk):
            block = hashes[start : start + chunk]
            dist = np.bitwise_count(block[:, None, :] ^ self._hashes[None, :, :]).sum(axis=2, dtype=np.int64)
            for row in dist:
                # Equal distances: the first index, i.e. the smallest key (build() sorted them).
                j = int(np.argmin(row))
                out.append(Match(self._keys[j], float(row[j])) if row[j] <= self.max_distance else None)
        return out
