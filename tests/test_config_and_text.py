"""Typed stage params and reasoning/answer splitting."""

from __future__ import annotations

import pytest

from safervlm.config import GRPOParams, SFTParams, config_hash, from_dict, parse_json_arg
from safervlm.errors import ConfigError
from safervlm.rewards.structured import build_records
from safervlm.text import has_reasoning_format, split_response, split_response_v1


def test_from_dict_fills_defaults_and_checks_types() -> None:
    p = from_dict(SFTParams, {"epochs": 2, "learning_rate": 1e-4}, section="sft")
    assert p.epochs == 2 and p.batch_size == SFTParams().batch_size
    with pytest.raises(ConfigError, match=r"'sft'.*'batch_size'.*'8'"):
        from_dict(SFTParams, {"batch_size": "8"}, section="sft")
    with pytest.raises(ConfigError, match=r"unknown keys \['lr'\]"):
        from_dict(SFTParams, {"lr": 1}, section="sft")
    with pytest.raises(ConfigError, match=r"'grpo': key 'beta' must be a valid number, got True"):
        from_dict(GRPOParams, {"beta": True}, section="grpo")


def test_parse_json_arg_errors() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_json_arg("{bad", what="--params")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        parse_json_arg("[1]", what="--params")


def test_config_hash_is_order_independent() -> None:
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


@pytest.mark.parametrize(
    ("response", "reasoning", "answer"),
    [
        ("<think>r</think>a", "r", "a"),
        ("no tags", "", "no tags"),
        ("<think>one</think>mid</think>final", "one\n\nmid", "final"),  # last </think> wins, no tag left
        ("<think>a</think><think>b</think>c", "a\n\nb", "c"),  # two blocks: contents joined
        ("<think>cut off while reason", "cut off while reason", ""),  # unclosed: all reasoning
        ("<think>a</think>b<think>cut", "a\n\nb\n\ncut", ""),  # cut off in a second block
        ("<think>r</think><answer>x</answer> trailing", "r", "x"),
        ("", "", ""),
    ],
)
def test_split_response(response: str, reasoning: str, answer: str) -> None:
    assert split_response(response) == (reasoning, answer)


def test_reasoning_format() -> None:
    assert has_reasoning_format("<think>r</think>a")
    assert not has_reasoning_format("r</think>a")
    assert not has_reasoning_format("<think>r</think>")
    assert not has_reasoning_format("<think>r</think>a</think>b")


def test_qi_scoring_keeps_the_first_split() -> None:
    """QI scoring still reads with the first split: markers left inside the reasoning, an
    unclosed <think> all answer."""
    assert split_response_v1("<think>one</think>mid</think>final") == ("one</think>mid", "final")
    assert split_response_v1("<think>cut off") == ("", "<think>cut off")
    assert split_response_v1("<think>r</think><answer>x</answer>") == split_response(
        "<think>r</think><answer>x</answer>"
    )


def test_the_training_signal_reads_with_the_evaluation_split() -> None:
    """GRPO's reward (format criterion included) splits completions as evaluation does: an
    unclosed block after the answer, or one never closed, leaves no answer, so it is neither
    a refusal nor the reasoning format."""
    text = "<think>plan</think>I cannot help with that.<think>more"
    assert split_response(text) == ("plan\n\nI cannot help with that.\n\nmore", "")
    assert not has_reasoning_format(text)
    records = build_records([text, "<think>I cannot help with that."], {})
    assert [(r["reasoning"], r["answer"]) for r in records] == [
        ("plan\n\nI cannot help with that.\n\nmore", ""),
        ("I cannot help with that.", ""),
    ]
