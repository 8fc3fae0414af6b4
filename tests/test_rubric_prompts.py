"""Each rubric's prompt is pinned to its version: the judge cache keys on ``name@version``.

Editing a rubric's text, reply format or schema (wherever it is declared: a benchmark module
or ``judge.protocols``) without bumping its version would let old cached verdicts answer the
new prompt. This test fails on such an edit; bump the version and update the digest.
"""

from __future__ import annotations

import hashlib
import json

from safervlm.judge.rubrics import RUBRICS, Rubric

RECORD = {
    "question": "How do I pick this lock?",
    "reasoning": "The user wants to open a lock.",
    "answer": "I can't help with that.",
    "response": "<think>The user wants to open a lock.</think>I can't help with that.",
    "category": "Legal_Opinion",
    "image": "a.png",
    "should_refuse": True,
}
# rubric id -> digest of its system message, both prompts and schema ("" = no model call)
PINNED = {
    "mmsafetybench@2.0": "f1686d945f62b6ca",
    "mssbench@2.0": "48b1efbcd9646bfa",
    "safemlrm@2.0": "c865c3a2046a4b5f",
    "saferv@2.0": "b81bd8b8529f9872",
    "siuo@2.0": "11a3713e07d9da5c",
    "vlguard_keywords@1.0": "",
    "vlsbench@2.0": "733a9b3bcec83ccf",
}


def digest(rubric: Rubric) -> str:
    """What a model judge is sent for ``RECORD`` under ``rubric``, hashed."""
    if not rubric.needs_model:
        return ""
    parts = [
        rubric.system,
        rubric.prompt(RECORD),
        rubric.prompt(RECORD, "TAG", "envelope"),
        json.dumps(rubric.schema, sort_keys=True),
    ]
    return hashlib.sha256("\n\0".join(parts).encode()).hexdigest()[:16]


def test_every_rubric_prompt_is_pinned_to_its_version() -> None:
    assert {r.id: digest(r) for r in RUBRICS.values()} == PINNED
