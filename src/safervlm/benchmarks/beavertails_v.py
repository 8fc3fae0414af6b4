"""BeaverTails-V adapter (Ji et al., Safe RLHF-V, 2025).

Local layout (a snapshot of ``saferlhf-v/BeaverTails-V``, one folder per harm-category
config)::

    {root}/{category}/{split}-*.parquet      # e.g. animal_abuse/evaluation-00000-of-00001.parquet
    {root}/{category}/{split}/*.parquet      # also accepted (parquet-converter layout)
    {root}/{category}/{split}/               # or a datasets.save_to_disk folder

Splits: ``evaluation`` (the benchmark) and ``train`` (a training source). Rows carry
``question``, ``image`` ({bytes, path} struct), ``category``, ``image_severity`` and
responses, in either of two schemas: the released pairwise one (``response_1``,
``response_2``, ``is_response_1_safe``, ``is_response_2_safe``, ``safer_response_id``,
...) or a flattened one (``response``, ``is_response_safe``). reference = a response
marked safe (the safer one first), else "".

should_refuse: True when ``image_severity`` > 0; False when it is 0; True when the
column is absent or null (every BeaverTails-V config is a harm category).
subset = category config folder; category = the ``category`` column (folder if null).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from safervlm.benchmarks import official
from safervlm.benchmarks.registry import Benchmark
from safervlm.data.adapter import BenchmarkAdapter
from safervlm.data.hf_parquet import find_shards, is_saved_dataset, iter_split_rows
from safervlm.data.readers import get_field, image_from_struct, is_non_finite, optional_text
from safervlm.errors import ConfigError, InputError
from safervlm.schema import Sample

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("evaluation", "train")
REQUIRED: tuple[str, ...] = ("question", "image")
_YES = {"yes", "true", "1", "safe"}
_NO = {"no", "false", "0", "unsafe"}


def truthy(value: Any) -> bool | None:
    """Parse a safety flag stored as bool, int or a yes/no string; None when unknown."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    return True if text in _YES else False if text in _NO else None


def safe_response(record: Mapping[str, Any]) -> str:
    """The record's response marked safe (the safer one first), or "" if none is."""
    if optional_text(record, "response"):
        return optional_text(record, "response") if truthy(record.get("is_response_safe")) else ""
    safer = str(record.get("safer_response_id") or "").strip()
    for rid in [safer] + [i for i in ("1", "2") if i != safer]:
        text = optional_text(record, f"response_{rid}")
        if text and truthy(record.get(f"is_response_{rid}_safe")):
            return text
    return ""


def sample_id(split: str, category: str, index: int) -> str:
    """The id of row ``index`` (running over the category's shards) of ``category``/``split``."""
    return f"beavertails_v/{split}/{category}/{index:05d}"


def split_patterns(split: str) -> tuple[str, ...]:
    """Shard globs for ``split`` within a category folder."""
    return (f"{split}-*.parquet", f"{split}/*.parquet", f"{split}.parquet")


class BeaverTailsV(BenchmarkAdapter):
    """Reads one split of every (or the chosen) harm-category config."""

    name = "beavertails_v"
    version = "1"
    card = {
        "source": "https://huggingface.co/datasets/saferlhf-v/BeaverTails-V",
        "license": "CC BY-NC 4.0",
        "size": "20 harm categories; evaluation split ~30 rows per category, train ~1.5k per category",
        "metric": "harmlessness / helpfulness rates (and win rates) judged by a reward/cost model or GPT-4o",
        "paper": "Ji et al., Safe RLHF-V: Safe Reinforcement Learning from Multi-modal Human Feedback, "
        "arXiv:2503.17682",
    }

    def __init__(self, split: str = "evaluation", categories: Sequence[str] | None = None) -> None:
        """Configure the adapter.

        Args:
            split: ``evaluation`` or ``train``.
            categories: Category config folders to read; all that hold the split when None.
        """
        if split not in SPLITS:
            raise ConfigError(f"beavertails_v split must be one of {SPLITS}, got {split!r}")
        self.split = split
        self.categories = tuple(categories) if categories is not None else None

    def _categories(self, root: Path) -> list[str]:
        if self.categories is not None:
            return list(self.categories)
        found = [
            d.name
            for d in sorted(root.iterdir())
            if d.is_dir()
            and not d.name.startswith(".")
            and (find_shards(d, split_patterns(self.split)) or is_saved_dataset(d / self.split))
        ]
        if not found:
            raise InputError(f"no category folders holding split {self.split!r}", path=root)
        return found

    def iter_records(self, root: Path) -> Iterator[tuple[Any, object, Path]]:
        """Yield ``(row, "category/index", shard)`` over categories in name order."""
        for cat in self._categories(root):
            folder = root / cat
            if not folder.is_dir():
                raise InputError("category folder not found", path=folder)
            rows = iter_split_rows(folder, split_patterns(self.split), (self.split,), REQUIRED)
            for i, (row, _, shard) in enumerate(rows):
                yield row, f"{cat}/{i}", shard

    def record_to_sample(
        self, record: Any, root: Path, index: object, source: Path | None = None
    ) -> list[Sample]:
        """Normalise one parquet row to one sample."""
        cat, _, pos_s = str(index).partition("/")
        pos = int(pos_s)
        source = source or root / cat
        label = f"{cat}/{pos}"
        question = get_field(record, "question", path=source, record_id=label, allow_empty=True)
        image, name = image_from_struct(
            record.get("image"), root=root, base=source.parent, path=source, record=label
        )
        severity = record.get("image_severity")
        try:
            should_refuse = True if severity is None else int(severity) > 0
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"image_severity {severity!r} is not an integer", path=source, record=label
            ) from exc
        meta = {
            k: None if is_non_finite(v) else v
            for k, v in record.items()
            if k not in ("image", "question") and (v is None or isinstance(v, str | int | float | bool))
        }
        meta["split"] = self.split
        return [
            Sample(
                id=sample_id(self.split, cat, pos),
                benchmark=self.name,
                question=question,
                image=image,
                subset=cat,
                category=optional_text(record, "category") or cat,
                image_path=name or f"{source.relative_to(root).as_posix()}#{pos}",
                should_refuse=should_refuse,
                reference=safe_response(record),
                meta=meta,
            )
        ]


# Official protocol: harmlessness judged by a cost model or GPT-4o (no rubric of its own).
BENCHMARK = Benchmark(adapter=BeaverTailsV, rubric="saferv", metric="harmless_rate", official=official.safety)
