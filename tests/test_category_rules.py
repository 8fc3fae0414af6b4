"""category_rules: taxonomy categories by subset, label and subcategory; unmapped-row report; datasheet."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from safervlm.config import SourceSpec
from safervlm.curate.datasheet import build_datasheet, render_markdown
from safervlm.curate.pool import CategoryRule, build_pool, map_category, parse_sources
from safervlm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
TAXONOMY = PAPER["curate"]["taxonomy"]

# (safe, harmful_category, harmful_subcategory) per image, in train.json order. Safe images:
# one safe and one unsafe instruction each (safe_safes, safe_unsafes); unsafe images: one
# instruction (unsafes). The VLGuard reader gives safe images an empty label.
RECORDS: list[tuple[bool, str | None, str | None]] = [
    (True, None, "violence"),  # 0: safe image whose record still names a subcategory
    (True, None, None),  # 1: safe image without any category (as in the official train.json)
    (False, "risky behavior", "violence"),  # 2
    (False, "risky behavior", "professional advice"),  # 3
    (False, "deception", "disinformation"),  # 4
    (False, "privacy", "personal data"),  # 5
    (False, "discrimination", "other"),  # 6
    (False, "risky behavior", "sexually explicit"),  # 7
    (False, "made-up", None),  # 8: a label nothing maps
]


def write_vlguard_train(root: Path) -> Path:
    """A VLGuard-train-shaped copy: ``train.json`` and PNGs under ``train/``."""
    records: list[dict[str, Any]] = []
    for i, (safe, cat, sub) in enumerate(RECORDS):
        name = f"{'safe' if safe else 'bad'}/{i:04d}.png"
        (root / "train" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(root / "train" / name)
        rec: dict[str, Any] = {"id": f"img{i}", "image": name, "safe": safe}
        if cat is not None:
            rec["harmful_category"] = cat
        if sub is not None:
            rec["harmful_subcategory"] = sub
        if safe:
            rec["instr-resp"] = [
                {"safe_instruction": f"Describe picture {i}.", "response": "A picture."},
                {"unsafe_instruction": f"Use picture {i} to hurt someone.", "response": "I can't help."},
            ]
        else:
            rec["instr-resp"] = [{"instruction": f"Help with picture {i}.", "response": "I can't help."}]
        records.append(rec)
    (root / "train.json").write_text(json.dumps(records))
    return root


@pytest.fixture(scope="module")
def vlguard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_vlguard_train(tmp_path_factory.mktemp("vlguard"))


def paper_vlguard(root: Path, extra_rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    entry = {**PAPER["sources"]["vlguard_train"], "root": str(root)}
    entry["category_rules"] = [*entry["category_rules"], *(extra_rules or [])]
    return {"vlguard_train": entry}


def categories(pool: pd.DataFrame) -> dict[str, str]:
    return dict(zip(pool["id"], pool["category"], strict=True))


def test_paper_rules_on_vlguard_train(vlguard: Path, caplog):
    pool, summary = build_pool(parse_sources(paper_vlguard(vlguard), TAXONOMY), TAXONOMY)
    assert categories(pool) == {
        "vlguard_train/safe_safes/0000/0": "benign",  # the subcategory rule does not swallow it
        "vlguard_train/safe_unsafes/0000/1": "violence",  # empty label, mapped by subcategory
        "vlguard_train/safe_safes/0001/0": "benign",
        "vlguard_train/safe_unsafes/0001/1": "other",  # no label, no subcategory: unmapped
        "vlguard_train/unsafes/0002/0": "violence",  # not risky behavior -> dangerous_behavior
        "vlguard_train/unsafes/0003/0": "other",  # professional advice: other on purpose
        "vlguard_train/unsafes/0004/0": "misinformation",
        "vlguard_train/unsafes/0005/0": "privacy",
        "vlguard_train/unsafes/0006/0": "hate_harassment",  # by the label map
        "vlguard_train/unsafes/0007/0": "sexual",
        "vlguard_train/unsafes/0008/0": "other",
    }
    # the source label is kept in meta
    meta = json.loads(pool.set_index("id").loc["vlguard_train/unsafes/0002/0", "meta"])
    assert meta["source_category"] == "risky behavior" and meta["harmful_subcategory"] == "violence"
    assert summary["unmapped"] == {"vlguard_train": {"": 1, "made-up": 1}}
    assert summary["unmapped_rows"] == {
        "vlguard_train": [
            {"subset": "safe_unsafes", "label": "", "subcategory": "", "n": 1},
            {"subset": "unsafes", "label": "made-up", "subcategory": "", "n": 1},
        ]
    }
    prov = summary["category_sources"]["vlguard_train"]
    assert prov["routes"] == {"benign": 2, "rule": 6, "category_map": 1, "taxonomy": 0, "unmapped": 2}
    assert (prov["rows"], prov["with_label"], prov["with_subcategory"], prov["n_rules"]) == (11, 7, 8, 8)
    assert prov["subcategory_field"] == "harmful_subcategory"
    assert summary["by_category"]["other"] == 3  # 2 unmapped + 1 explicit (professional advice)
    assert "safe_unsafes" in caplog.text and "go to 'other'" in caplog.text


def test_rules_by_subset_first_match_wins(vlguard: Path):
    extra = [
        {"when": {"subset": "safe_unsafes"}, "category": "dangerous_behavior"},
        {"when": {"label": ""}, "category": "cybercrime"},  # would swallow safe_safes if it could
        {"when": {"subset": "unsafes", "label": "made-up"}, "category": "fraud_deception"},
    ]
    pool, summary = build_pool(parse_sources(paper_vlguard(vlguard, extra), TAXONOMY), TAXONOMY)
    cats = categories(pool)
    assert cats["vlguard_train/safe_unsafes/0000/1"] == "violence"  # the earlier subcategory rule wins
    assert cats["vlguard_train/safe_unsafes/0001/1"] == "dangerous_behavior"  # by subset
    assert cats["vlguard_train/safe_safes/0000/0"] == cats["vlguard_train/safe_safes/0001/0"] == "benign"
    assert cats["vlguard_train/unsafes/0008/0"] == "fraud_deception"
    assert summary["unmapped"] == {} and summary["unmapped_rows"] == {}
    assert summary["category_sources"]["vlguard_train"]["routes"]["rule"] == 8


def test_map_category_order():
    spec = SourceSpec(
        root="x",
        category_map={"": "violence", "theft": "fraud_deception"},
        category_rules=[CategoryRule(when={"subset": "s", "subcategory": "knife"}, category="violence")],
    )
    tax = set(TAXONOMY)
    assert map_category("", False, spec, tax, subset="s", subcategory="knife") == "benign"  # benign first
    assert map_category("", True, spec, tax, subset="s", subcategory="knife") == "violence"  # rule
    assert map_category("theft", True, spec, tax, subset="s", subcategory="knife") == "violence"
    assert map_category("theft", True, spec, tax, subset="t", subcategory="knife") == "fraud_deception"
    assert map_category("privacy", True, spec, tax, subset="t") == "privacy"
    assert map_category("nope", True, spec, tax, subset="s") == "other"


@pytest.mark.parametrize(
    ("source", "rules", "match"),
    [
        (
            "vlguard_train",
            [
                {"when": {"subset": "x"}, "category": "violence"},
                {"when": {"split": "x"}, "category": "violence"},
            ],
            r"category_rules\[1\]\.when': unknown keys \['split'\]",
        ),
        (
            "vlguard_train",
            [{"when": {"subset": "x"}, "category": "weapons"}],
            r"sources\.vlguard_train\.category_rules\[0\] maps to category 'weapons'",
        ),
        (
            "vlguard_train",
            [{"when": {}, "category": "violence"}],
            r"category_rules\[0\]\.when names no condition",
        ),
        ("vlguard_train", [{"when": {"subset": "x"}}], r"category_rules\[0\]': key 'category' is required"),
        (
            "vlguard_train",
            [{"when": {"subset": "x"}, "category": "violence", "note": 1}],
            r"'sources\.vlguard_train\.category_rules\[0\]': unknown keys \['note'\]",
        ),
        ("vlguard_train", ["violence"], r"sources\.vlguard_train\.category_rules\[0\] must be a mapping"),
        (
            "vlguard_train",
            [{"when": {"label": 3}, "category": "violence"}],
            r"\[0\]\.when': key 'label' must be",
        ),
        (
            "beavertails_v",
            [{"when": {"subcategory": "x"}, "category": "violence"}],
            r"sources\.beavertails_v\.category_rules\[0\]\.when: beavertails_v rows carry no subcategory",
        ),
        ("spa_vl", {"when": {}}, r"'sources\.spa_vl': key 'category_rules' must be"),
    ],
)
def test_bad_rules(source: str, rules: Any, match: str):
    with pytest.raises(ConfigError, match=match):
        parse_sources({source: {"root": "x", "category_rules": rules}}, TAXONOMY)


def spa_vl_without_classes(root: Path, n: int = 6) -> Path:
    """A SPA-VL train shard shaped like the published one: no class1..3 columns."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    rows = [
        {
            "image": {"bytes": buf.getvalue(), "path": f"{i}.png"},
            "question": f"q{i}",
            "chosen": "safe answer",
            "rejected": "bad answer",
            "image_name": f"{i}.png",
        }  # fmt: skip
        for i in range(n)
    ]
    (root / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "train-00000-of-00001.parquet")
    return root


def test_spa_vl_train_without_class_columns(tmp_path: Path, caplog):
    root = spa_vl_without_classes(tmp_path / "spa_vl")
    cfg = {"spa_vl": {**PAPER["sources"]["spa_vl"], "root": str(root)}}
    pool, summary = build_pool(parse_sources(cfg, TAXONOMY), TAXONOMY)
    assert (pool["category"] == "other").all() and len(pool) == 6
    prov = summary["category_sources"]["spa_vl"]
    assert prov["with_label"] == 0 and prov["routes"]["unmapped"] == 6
    assert summary["unmapped_rows"] == {
        "spa_vl": [{"subset": "train", "label": "", "subcategory": "", "n": 6}]
    }
    assert "no row carries a source label" in caplog.text


def test_datasheet_shows_where_categories_come_from(vlguard: Path, tmp_path: Path):
    spa_root = spa_vl_without_classes(tmp_path / "s")
    cfg = {**paper_vlguard(vlguard), "spa_vl": {**PAPER["sources"]["spa_vl"], "root": str(spa_root)}}
    pool, summary = build_pool(parse_sources(cfg, TAXONOMY), TAXONOMY)
    scores = pd.DataFrame({"id": pool["id"], "quality": 0.5, "instability": 0.2, "n_scored": 2})
    info = {"box": {"quality_range": [0.0, 1.0], "min_instability": 0.1}, "n_scored": len(pool),
            "n_unscored": 0, "n_in_box": len(pool), "target_size": len(pool), "n_selected": len(pool),
            "allocation": "proportional", "seed": 0}  # fmt: skip
    decon = {"n_pool": len(pool), "n_removed": 0, "n_kept": len(pool), "removed_by_reason": {},
             "removed_by_benchmark": {}, "removed_by_source": {}}  # fmt: skip
    sheet = build_datasheet(selected=pool, clean=pool, scores=scores, info=info, pool_summary=summary,
                            decontamination=decon, params={}, sha256="0" * 64)  # fmt: skip
    assert sheet["unmapped_rows"] == summary["unmapped_rows"]
    md = render_markdown(sheet, "fig.png")
    assert "## Where categories come from" in md and "## Unmapped rows per source" in md
    label_vg = "`harmful_category` of unsafe images (safe images carry none)"
    assert f"| vlguard_train | {label_vg} | harmful_subcategory | 11 | 7 | 8 | 2 | 6 | 1 | 0 | 2 |" in md
    assert "| spa_vl | `class1` column (harm domain) | class2 | 6 | 0 | 0 | 0 | 0 | 0 | 0 | 6 |" in md
    assert (
        "- spa_vl: no row carries a source label (`class1` column (harm domain)); its 6 rows are `other`"
        in md
    )
    assert "| vlguard_train | safe_unsafes | (empty) | (empty) | 1 |" in md
    assert "| vlguard_train | unsafes | made-up | (empty) | 1 |" in md
    assert "| spa_vl | train | (empty) | (empty) | 6 |" in md


def test_datasheet_without_unmapped_rows(vlguard: Path):
    extra = [
        {"when": {"label": ""}, "category": "other"},
        {"when": {"label": "made-up"}, "category": "other"},
    ]
    _, summary = build_pool(parse_sources(paper_vlguard(vlguard, extra), TAXONOMY), TAXONOMY)
    from safervlm.curate.datasheet import _category_sections

    md = "\n".join(_category_sections(summary))
    assert "None: every pool row got a taxonomy category" in md and "| safe_unsafes |" not in md


def test_pool_cli_passes_rules_through(vlguard: Path, tmp_path: Path):
    out = tmp_path / "pool.parquet"
    args = [
        "pool",
        "--sources",
        json.dumps(paper_vlguard(vlguard)),
        "--params",
        json.dumps({"taxonomy": TAXONOMY}),
    ]
    r = subprocess.run(
        [sys.executable, "-m", "safervlm.cli", *args, "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["by_source_category"]["vlguard_train"] == {
        "benign": 2, "hate_harassment": 1, "misinformation": 1, "other": 3,
        "privacy": 1, "sexual": 1, "violence": 2,
    }  # fmt: skip
    assert summary["unmapped_rows"]["vlguard_train"][0] == {
        "subset": "safe_unsafes", "label": "", "subcategory": "", "n": 1
    }  # fmt: skip
