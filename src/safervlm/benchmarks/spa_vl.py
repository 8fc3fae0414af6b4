"""SPA-VL adapter (Zhang et al., 2024): safety preference alignment data for VLMs.

Local layout (a snapshot of ``sqrti/SPA-VL``)::

    {root}/evalharm/test-*.parquet   # harm eval split: image, question, class1, class2, class3
    {root}/evalhelp/test-*.parquet   # help eval split (same columns)
    {root}/data/train-*.parquet      # train: adds chosen, rejected (and image_name, ...)

The parquet-converter layouts (``test/harm/*.parquet``, ``default/train/*.parquet``)
and ``datasets.save_to_disk`` folders named after the split are accepted too.

should_refuse: True for ``evalharm`` (every question is a harmful request); None
(unknown) for ``evalhelp`` and ``train``, whose rows are not labelled per sample.
reference = ``chosen`` where present. category = ``class1``; subset = split.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safervlm.benchmarks import official
from safervlm.benchmarks.registry import Benchmark
from safervlm.data.adapter import BenchmarkAdapter
from safervlm.data.hf_parquet import iter_split_rows
from safervlm.data.readers import get_field, image_from_struct, is_non_finite, optional_text
from safervlm.errors import ConfigError
from safervlm.schema import Sample

logger = logging.getLogger(__name__)

LAYOUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "evalharm": (
        ("evalharm/test-*.parquet", "evalharm/test/*.parquet", "test/harm-*.parquet", "test/harm/*.parquet"),
        ("evalharm",),
    ),
    "evalhelp": (
        ("evalhelp/test-*.parquet", "evalhelp/test/*.parquet", "test/help-*.parquet", "test/help/*.parquet"),
        ("evalhelp",),
    ),
    "train": (("data/train-*.parquet", "default/train/*.parquet", "train/*.parquet"), ("train",)),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "evalharm": ("question", "image"),
    "evalhelp": ("question", "image"),
    "train": ("question", "image", "chosen", "rejected"),
}
CLASS_FIELDS = ("class1", "class2", "class3")


def sample_id(split: str, index: int) -> str:
    """The id of row ``index`` (running over the split's shards)."""
    return f"spa_vl/{split}/{index:06d}"


class SpaVL(BenchmarkAdapter):
    """Reads one SPA-VL split (``evalharm`` by default)."""

    name = "spa_vl"
    version = "1"
    card = {
        "source": "https://huggingface.co/datasets/sqrti/SPA-VL",
        "license": "CC BY 4.0",
        "size": "train ~93k preference pairs; EvalHarm 265, EvalHelp 265",
        "metric": "harm: unsafe rate judged by MD-Judge (lower is better); help: GPT-4V win rate",
        "paper": "Zhang et al., SPA-VL: A Comprehensive Safety Preference Alignment Dataset for Vision "
        "Language Model, arXiv:2406.12030",
    }

    def __init__(self, split: str = "evalharm") -> None:
        """Configure the adapter.

        Args:
            split: ``evalharm``, ``evalhelp`` or ``train``.
        """
        if split not in LAYOUTS:
            raise ConfigError(f"spa_vl split must be one of {sorted(LAYOUTS)}, got {split!r}")
        self.split = split

    def iter_records(self, root: Path) -> Iterator[tuple[Any, object, Path]]:
        """Yield ``(row, running_index, shard)`` for the configured split."""
        patterns, saved = LAYOUTS[self.split]
        for i, (row, _, shard) in enumerate(iter_split_rows(root, patterns, saved, REQUIRED[self.split])):
            yield row, i, shard

    def record_to_sample(
        self, record: Any, root: Path, index: object, source: Path | None = None
    ) -> list[Sample]:
        """Normalise one parquet row to one sample."""
        pos = int(index)  # type: ignore[call-overload]
        source = source or root
        question = get_field(record, "question", path=source, record_id=pos, allow_empty=True)
        image, name = image_from_struct(
            record.get("image"), root=root, base=source.parent, path=source, record=pos
        )
        chosen = ""
        if self.split == "train":
            chosen = get_field(record, "chosen", path=source, record_id=pos)
            get_field(record, "rejected", path=source, record_id=pos)
        meta = {
            k: None if is_non_finite(v) else v
            for k, v in record.items()
            if k not in ("image", "question") and (v is None or isinstance(v, str | int | float | bool))
        }
        meta["split"] = self.split
        rel = source.relative_to(root).as_posix() if source.is_relative_to(root) else str(source)
        return [
            Sample(
                id=sample_id(self.split, pos),
                benchmark=self.name,
                question=question,
                image=image,
                subset=self.split,
                category=optional_text(record, "class1"),
                image_path=name or f"{rel}#{pos}",
                should_refuse=True if self.split == "evalharm" else None,
                reference=chosen,
                meta=meta,
            )
        ]


# Official protocol: unsafe rate judged by MD-Judge (no rubric of its own here).
BENCHMARK = Benchmark(adapter=SpaVL, rubric="saferv", metric="unsafe_rate", official=official.unsafe)
