"""Turning per-sample parquet records into TRL datasets (prompt, completion, image)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from datasets import Dataset
from datasets import Image as ImageFeature
from PIL import Image

from safervlm.errors import InputError
from safervlm.prompts import build_prompt
from safervlm.schema import encode_image

log = logging.getLogger(__name__)

# Extra columns kept in the dataset: TRL passes them to reward functions as kwargs.
REWARD_COLUMNS = ["id", "question", "should_refuse", "image_objects", "reference", "category"]


def _blank_image(size: int = 112) -> bytes:
    return encode_image(Image.new("RGB", (size, size), (255, 255, 255)))


def _images(df: pd.DataFrame, path: str, blank_image: bool) -> list[dict[str, object] | None]:
    """The records' images; with ``blank_image`` a text-only record gets a blank one."""
    missing = df["image"].isna()
    if not blank_image:
        return [None if m else {"bytes": b, "path": None} for b, m in zip(df["image"], missing, strict=True)]
    if missing.any():
        # The model family's batches need an image per sample (Family.needs_image).
        log.warning("%s: %d records have no image; using a blank image", path, int(missing.sum()))
    blank = _blank_image()
    return [{"bytes": b if isinstance(b, bytes | bytearray) else blank, "path": None} for b in df["image"]]


def _prompts(df: pd.DataFrame, system_prompt: str | None, blank_image: bool) -> list[list[dict[str, Any]]]:
    """Conversational prompts; a text-only record's has no image part unless it gets a blank."""
    return [
        build_prompt(q, has_image=blank_image or not pd.isna(img), system_prompt=system_prompt)
        for q, img in zip(df["question"], df["image"], strict=True)
    ]


def correction_demos(
    df: pd.DataFrame, share: float, template: str, critique: str, seed: int = 0
) -> pd.DataFrame:
    """Records rewritten as correction demonstrations (question -> correction prompt).

    A seeded ``share`` of the should-refuse records; the question becomes
    ``template.format(question=..., critique=critique)``, the safe response stays the target.
    """
    if share <= 0:
        return df.iloc[:0]
    harmful = df[df["should_refuse"].fillna(False).astype(bool)] if "should_refuse" in df else df.iloc[:0]
    picked = harmful.sample(n=round(share * len(harmful)), random_state=seed).sort_index()
    out = picked.copy()
    out["question"] = [template.format(question=q, critique=critique) for q in picked["question"]]
    out["id"] = [f"{i}#correction" for i in picked["id"]]
    return out


def sft_dataset(
    df: pd.DataFrame,
    path: str,
    system_prompt: str | None = None,
    demos: pd.DataFrame | None = None,
    blank_image: bool = True,
) -> Dataset:
    """Prompt–completion conversational dataset for ``SFTTrainer``; needs a ``response`` column.

    ``demos`` (see :func:`correction_demos`) are appended after the records; ``blank_image``
    (the model family's ``needs_image``) gives text-only records a blank image.
    """
    bad = df.index[df["response"].fillna("").str.strip() == ""].tolist()
    if bad:
        raise InputError("empty reference response (SFT target)", path=path, record=df.loc[bad[0], "id"])
    if demos is not None and len(demos):
        df = pd.concat([df, demos], ignore_index=True)
    data = {
        "prompt": _prompts(df, system_prompt, blank_image),
        "completion": [
            [{"role": "assistant", "content": [{"type": "text", "text": r}]}] for r in df["response"]
        ],
        "image": _images(df, path, blank_image),
    }
    return Dataset.from_dict(data).cast_column("image", ImageFeature())


def prompt_dataset(
    df: pd.DataFrame, path: str, system_prompt: str | None = None, blank_image: bool = True
) -> Dataset:
    """Prompt-only dataset for ``GRPOTrainer``, keeping the ground-truth columns for rewards
    (``blank_image``: as :func:`sft_dataset`)."""
    data: dict[str, list[Any]] = {
        "prompt": _prompts(df, system_prompt, blank_image),
        "image": _images(df, path, blank_image),
    }
    for col in REWARD_COLUMNS:
        if col in df.columns:
            values = df[col].tolist()
            data[col] = (
                [None if v is None or v != v else v for v in values] if col == "should_refuse" else values
            )
    return Dataset.from_dict(data).cast_column("image", ImageFeature())
