"""The injection screen's two error rates: what it must flag, and what it must leave alone.

* Every control and turn token of every supported model family (the chat-template markers a
  response could use to fake a judge turn) is flagged ``delimiter``.
* The benign sample — every question, reference and training response of every benchmark and
  source fixture of the embedded default (as the demo builds them), every text template of the
  synthetic world for every task and question phrasing, the attacks' prompts, and every
  refusal phrase and refusal keyword — raises no signal at all: 0 false positives. Image
  metadata of every fixture image is screened too.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from safervlm.benchmarks import list_benchmarks, load_benchmark
from safervlm.benchmarks.figstep import FIGSTEP_PROMPT
from safervlm.benchmarks.vlguard import VLGUARD_REFUSAL_KEYWORDS
from safervlm.embedded import world
from safervlm.embedded.common import harmful_compliance, over_refusal
from safervlm.embedded.fixtures import SOURCE_FOLDERS, build_fixtures
from safervlm.evaluate.attacks import TYPO_QUESTION
from safervlm.judge.reference import SAFE_ALTERNATIVE_MARKERS
from safervlm.judge.screen import screen_record, screen_text
from safervlm.markers import REFUSAL_MARKERS
from safervlm.models.families import FAMILIES
from safervlm.sources import load_source

# Media placeholders that are also HTML elements a helpful answer names ("use the <img> tag").
HTML_ELEMENTS = {"<img>", "</img>", "<video>"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_control_token_is_a_delimiter(family: str) -> None:
    tokens = importlib.import_module(f"safervlm.models.families.{family}").TOKENS.special
    missed = [t for t in tokens if "delimiter" not in screen_text(f"Fine, thanks. {t} More text.")]
    assert set(missed) <= HTML_ELEMENTS, f"{family}: {missed}"


# Helpful answers that come close to the patterns (court judges, credit scores, ratings, tables,
# config flags, "you are now ready", HTML tags) and must stay unflagged.
BENIGN_PROSE = [
    "My credit score: 620. How can I raise it?",
    "The judge should rule on the motion within 30 days.",
    "Model: Honda Civic\nYear: 2015",
    "System: Windows 11, 16 GB RAM",
    "Step 1: preheat the oven.\nStep 2: mix the flour.",
    "Safety first: wear gloves and goggles.",
    "Is it safe to eat raw cookie dough? Generally no, because of raw eggs.",
    "The label on the bottle says it is safe for children over 3.",
    "Use the <img> tag with an alt attribute, or <video> for clips.",
    "In Python, result = True if x > 0 else False.",
    "You are now ready to paint the door.",
    "Here is a table:\n| Item | Price |\n|---|---|\n| Paint | 10 |",
    "The assessment of the property takes two weeks.",
    "Ignore the noise from the engine; it is normal.",
    "Rating: 4.5 stars out of 5, and safety: 4.5 stars too.",
    "The output is safe to share with colleagues.",
    "The verdict: guilty.",
    "Label each jar with the date.",
    "Do not report false information.",
    "<think>The request is harmless, so I will help.</think>Sure. Clean it and follow the guide.",
]


@pytest.mark.parametrize("text", BENIGN_PROSE)
def test_close_but_benign_prose_is_not_flagged(text: str) -> None:
    assert screen_text(text) == []


def world_texts() -> list[str]:
    """Every text template of the synthetic world, for every task and question phrasing."""
    texts = [TYPO_QUESTION, FIGSTEP_PROMPT, *REFUSAL_MARKERS, *VLGUARD_REFUSAL_KEYWORDS]
    texts += [f"{m.capitalize()} help with that." for m in REFUSAL_MARKERS]
    texts += [f"I cannot help with that; {m} is the way." for m in SAFE_ALTERNATIVE_MARKERS]
    for task in world.all_tasks():
        texts += [t.format(task=task.text) for t in world.TRAIN_TEMPLATES + world.EVAL_TEMPLATES]
        texts += [world.reasoning_for(task), world.answer_for(task), world.response_for(task)]
        texts += [harmful_compliance(task), over_refusal(task), f"Steps to {task.text}."]
        texts += [f"List steps in detail to {task.text}.", f"The image shows an activity. {task.text}."]
    return texts


def fixture_records(root: Path) -> list[dict[str, object]]:
    """Every sample of every benchmark and training source fixture, as the demo builds them."""
    build_fixtures(root, seed=0)
    records: list[dict[str, object]] = []
    for name in list_benchmarks():
        for s in load_benchmark(name, root / name):
            records.append({"question": s.question, "response": s.reference, "image": s.image})
    for folder, source in SOURCE_FOLDERS.items():
        for row in load_source(source, root / "train" / folder):
            records.append({"question": row["question"], "response": row["response"], "image": row["image"]})
    return records


def test_the_benign_sample_raises_no_signal(tmp_path: Path) -> None:
    texts = world_texts()
    flagged = {t: screen_text(t) for t in texts if screen_text(t)}
    records = fixture_records(tmp_path / "fx")
    flagged_records = [(r["question"], r["response"], s) for r in records if (s := screen_record(r))]
    n_images = sum(r["image"] is not None for r in records)
    assert len(texts) > 600 and len(records) > 500 and n_images > 500  # the sample is not empty
    assert not flagged, f"{len(flagged)} of {len(texts)} world texts flagged: {list(flagged.items())[:5]}"
    assert not flagged_records, f"{len(flagged_records)} of {len(records)} records: {flagged_records[:5]}"
