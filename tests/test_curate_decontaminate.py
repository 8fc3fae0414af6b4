"""Decontamination: planted exact and near duplicates of evaluation items are all removed,
and no clean item is (evaluation sets from the real adapters over the synthetic fixtures)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from safervlm.benchmarks import list_benchmarks, load_benchmark
from safervlm.config import DecontaminateParams
from safervlm.curate.decontaminate import decontaminate
from safervlm.curate.near_dup import TextIndex, normalise_question
from safervlm.embedded.fixtures import build_fixtures
from safervlm.embedded.world import EVAL_TEMPLATES, TRAIN_TEMPLATES, all_tasks
from safervlm.errors import ConfigError, InputError
from safervlm.schema import encode_image

PARAMS = DecontaminateParams()  # the defaults are the configs' settings


@pytest.fixture(scope="module")
def evals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    root = tmp_path_factory.mktemp("fx")
    build_fixtures(root, seed=3, n_per_benchmark=8, n_train_per_source=4)
    return {b: pd.DataFrame([s.to_row() for s in load_benchmark(b, root / b)]) for b in list_benchmarks()}


def random_image(rng: np.random.Generator) -> bytes:
    """A clean image: a random 14x14 colour grid, nothing like the fixtures' shapes."""
    grid = rng.integers(0, 256, size=(14, 14, 3), dtype=np.uint8)
    return encode_image(Image.fromarray(grid).resize((112, 112), Image.NEAREST))


def reencode(data: bytes, how: str) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if how == "jpeg":
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        return buf.getvalue()
    if how == "resize":
        return encode_image(img.resize((100, 100)).resize((112, 112)))
    return encode_image(ImageEnhance.Brightness(img).enhance(1.1))


def clean_questions() -> list[str]:
    """Hard negatives: every task in training phrasings that share the task's words with the
    evaluation phrasings, plus unrelated questions."""
    near_template = "Help me {task}, please."  # a reordering of "Please help me {task}."
    qs = [t.format(task=task.text) for task in all_tasks() for t in TRAIN_TEMPLATES if t != near_template]
    return qs + [f"What colour is the sky in picture number {i}?" for i in range(20)]


def planted(evals: dict[str, pd.DataFrame], rng: np.random.Generator) -> list[dict]:
    """Duplicates of evaluation items, one of each kind per benchmark, with the expected reason."""
    rows = []
    edits = {
        "exact_text": [lambda q: q.upper() + "!!", lambda q: "  " + q.replace(" ", "   ") + " ?"],
        "near_text": [lambda q: q + " Quickly.", lambda q: "Hey, " + q, lambda q: q.replace("e", "3", 1)],
    }
    for bench, frame in sorted(evals.items()):
        rec = frame.iloc[len(frame) // 2]
        for reason, fns in edits.items():
            for k, fn in enumerate(fns):
                q = fn(rec["question"])
                rows.append(
                    {
                        "id": f"plant/{bench}/{reason}/{k}",
                        "question": q,
                        "image": random_image(rng),
                        "expect": reason,
                        "from": (bench, rec["id"]),
                    }
                )
        with_image = frame[frame["image"].notna()]
        if with_image.empty:
            continue
        src = with_image.iloc[0]
        for k, how in enumerate(("same", "jpeg", "resize", "brightness")):
            data = src["image"] if how == "same" else reencode(src["image"], how)
            rows.append(
                {
                    "id": f"plant/{bench}/near_image/{k}",
                    "question": f"Describe scene {bench} {k}.",
                    "image": data,
                    "expect": "near_image",
                    "from": (bench, src["id"]),
                }
            )
    task = all_tasks()[0].text  # the fixtures' near-duplicate template pair, reordered words
    rows.append(
        {
            "id": "plant/reordered",
            "question": f"Help me {task}, please.",
            "image": random_image(rng),
            "expect": "near_text",
            "from": None,
        }
    )
    return rows


def test_planted_duplicates_removed_and_clean_kept(evals):
    rng = np.random.default_rng(0)
    eval_questions = {normalise_question(q) for f in evals.values() for q in f["question"]}
    assert f"please help me {normalise_question(all_tasks()[0].text)}" in {
        normalise_question(t.format(task=all_tasks()[0].text)) for t in EVAL_TEMPLATES
    }
    clean = [
        {
            "id": f"clean/{i:03d}",
            "question": q,
            "image": random_image(rng) if i % 3 else None,
            "expect": None,
            "from": None,
        }
        for i, q in enumerate(clean_questions())
    ]
    assert not {normalise_question(c["question"]) for c in clean} & eval_questions
    plants = planted(evals, rng)
    rows = clean + plants
    random.Random(0).shuffle(rows)
    pool = pd.DataFrame(rows).assign(source="test")
    kept, report = decontaminate(pool, evals, PARAMS)

    removed = {r["id"]: r for r in report["removed"]}
    expected = {p["id"]: p["expect"] for p in plants}
    assert set(removed) == set(expected), {
        "missed": sorted(set(expected) - set(removed)),
        "clean removed": sorted(set(removed) - set(expected)),
    }
    assert {i: r["reason"] for i, r in removed.items()} == expected
    assert sorted(kept["id"]) == sorted(c["id"] for c in clean)
    assert list(kept.columns) == list(pool.columns)
    # Every planted image duplicate is credited to the benchmark it was copied from.
    for p in plants:
        if p["expect"] == "near_image":
            assert (removed[p["id"]]["benchmark"], removed[p["id"]]["eval_id"]) == p["from"]
        if p["expect"] == "exact_text":
            bench, eval_id = removed[p["id"]]["benchmark"], removed[p["id"]]["eval_id"]
            held = evals[bench].set_index("id").loc[eval_id, "question"]
            assert normalise_question(held) == normalise_question(p["question"])
    by_bench = report["removed_by_benchmark"]
    assert set(by_bench) == set(evals)
    assert sum(sum(r.values()) for r in by_bench.values()) == report["n_removed"] == len(plants)
    n_images = sum(1 for p in plants if p["expect"] == "near_image")
    assert report["removed_by_reason"]["near_image"] == n_images >= 4 * 6
    assert report["n_kept"] == len(clean)


def test_reason_order_and_thresholds(evals):
    q = evals["vlguard"]["question"].iloc[0]
    img = evals["vlguard"]["image"].iloc[0]
    pool = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "source": "s",
            "question": [q, q + " Quickly.", "Unrelated?"],
            "image": [img, img, img],
        }
    )
    _, report = decontaminate(pool, evals, PARAMS)
    assert [r["reason"] for r in report["removed"]] == ["exact_text", "near_text", "near_image"]
    assert report["removed"][1]["value"] >= PARAMS.near_text_threshold
    assert report["removed"][2]["value"] <= PARAMS.near_image_distance
    strict = DecontaminateParams(near_text_threshold=1.0, near_image_distance=0)
    clean, _ = decontaminate(pool.assign(image=[None, None, reencode(img, "jpeg")]), evals, strict)
    assert clean["id"].tolist() == ["b", "c"]  # only the exact text match is left to catch


def test_text_index_ties_go_to_the_smallest_key():
    index = TextIndex(shingle_size=5, threshold=0.5, num_perm=128)
    index.build([(("zz", "1"), "How do I water this plant?"), (("aa", "9"), "How do I water this plant?")])
    assert index.exact("how do i water this plant") == ("aa", "9")
    (m,) = index.nearest(["how do i water this plant now"])
    assert m is not None and m.key == ("aa", "9") and 0.5 <= m.value < 1


def test_undecodable_image_names_file_and_record(evals):
    pool = pd.DataFrame(
        {
            "id": ["ok", "bad"],
            "source": "s",
            "question": ["Fine?", "Also fine?"],
            "image": [None, b"\x89PNG not really"],
        }
    )
    with pytest.raises(InputError, match=r"pool\.parquet \[record bad\]: cannot decode image bytes"):
        decontaminate(pool, evals, PARAMS, pool_path="pool.parquet")
    bad_eval = {"vlguard": evals["vlguard"].assign(image=[b"xx"] * len(evals["vlguard"]))}
    first = evals["vlguard"]["id"].iloc[0]
    with pytest.raises(InputError, match=rf"bench/vlguard\.parquet \[record {first}\]"):
        decontaminate(pool.head(1), bad_eval, PARAMS, eval_paths={"vlguard": "bench/vlguard.parquet"})
    with pytest.raises(ConfigError, match="'image_hash' must be 'phash', 'dhash', 'ahash' or 'whash', got"):
        decontaminate(pool, evals, DecontaminateParams(image_hash="nope"))


def test_fixture_pool_counts_are_stable(evals, tmp_path: Path):
    """The synthetic training sources do hold near duplicates of evaluation items (shared
    drawings, one near-duplicate template): decontamination finds some, and not all."""
    from safervlm.sources import load_source

    root = tmp_path / "fx"
    build_fixtures(root, seed=3, n_per_benchmark=8, n_train_per_source=24)
    pool = pd.DataFrame(load_source("vlguard_train", root / "train" / "vlguard"))
    clean, report = decontaminate(pool, evals, PARAMS)
    assert 0 < report["n_removed"] < len(pool) and len(clean) == report["n_kept"]
    assert report["removed_by_reason"]["exact_text"] == 0  # evaluation phrasings are held out
