"""Served models, reasoning models included, against a real local server that answers as
vLLM's OpenAI server with a reasoning parser (tests/vllm_server.py): where the reasoning
comes from, truncation, token budgets, retries, one-line errors and the preflight check."""

from __future__ import annotations

import socket
from typing import Any

import pandas as pd
import pytest
from vllm_server import VLLMServer, default_output

from safervlm.cli import main as cli_main
from safervlm.config import GenerateParams
from safervlm.errors import EndpointError
from safervlm.evaluate.generate import generate_responses
from safervlm.evaluate.score import group_metrics
from safervlm.models.generation import build_generator
from safervlm.schema import (
    GENERATION_COLUMNS,
    RESPONSE_COLUMNS,
    SAMPLE_COLUMNS,
    generation_counts,
    with_generation_columns,
)
from safervlm.served import endpoint_error, parse_chat_completion, preflight_errors
from safervlm.text import join_reply, split_reply, split_response, split_status

MODEL = "served-model"


def samples(*questions: str) -> pd.DataFrame:
    rows = [{**dict.fromkeys(SAMPLE_COLUMNS, ""), "id": f"b/{i}", "question": q, "image": None,
             "should_refuse": True} for i, q in enumerate(questions)]  # fmt: skip
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS)


def params(srv: VLLMServer, **kw: Any) -> GenerateParams:
    return GenerateParams(**{"backend": "openai", "base_url": srv.base_url, "served_model": MODEL, **kw})


def generate(srv: VLLMServer, *questions: str, **kw: Any) -> pd.DataFrame:
    return generate_responses(samples(*questions), "served", "served", params(srv, **kw))


# ---------------------------------------------------------------------- splitting
@pytest.mark.parametrize(
    ("content", "field", "expected"),
    [
        ("The answer.", "I think.", ("I think.", "The answer.", "field")),
        (None, "I think.", ("I think.", "", "field")),  # cut off while reasoning: no content
        ("<think>more</think>The answer.", "I think.", ("I think.\n\nmore", "The answer.", "field")),
        ("The answer.", "<think>I think.</think>", ("I think.", "The answer.", "field")),  # markers in field
        ("<think>I think.</think>The answer.", None, ("I think.", "The answer.", "markers")),
        ("<think>I think.</think>The answer.", "", ("I think.", "The answer.", "markers")),
        ("The answer.", None, ("", "The answer.", "none")),
        ("<think>I was cut", None, ("I was cut", "", "markers")),
    ],
)
def test_split_reply_sources(content: str | None, field: str | None, expected: tuple[str, str, str]) -> None:
    assert split_reply(content, field) == expected
    # the joined response re-splits to the same parts (reference judge, outcomes read it)
    joined = join_reply(content, field, truncated=content is None)
    assert split_response(joined) == expected[:2]
    assert "<think>" not in expected[0] + expected[1] and "</think>" not in expected[0] + expected[1]


def test_a_stray_marker_in_untagged_text_is_reasoning_only_when_cut_off() -> None:
    """An untrained model's stray <think> token is not a reasoning block; in a generation
    known to be truncated (finish_reason length) an unclosed marker anywhere is."""
    assert split_response("bo<think> secretly") == ("", "bo<think> secretly")
    assert split_status("bo<think> secretly") == "untagged"
    assert split_response("bo<think> secretly", truncated=True) == ("bo\n\nsecretly", "")
    assert split_reply("Sure. <think>hmm", None, truncated=True) == ("Sure.\n\nhmm", "", "markers")


def test_split_response_takes_other_markers() -> None:
    text = "<|begin_of_thought|>a<|end_of_thought|>b<|begin_of_thought|>c<|end_of_thought|>answer"
    assert split_response(text, open_tag="<|begin_of_thought|>", close_tag="<|end_of_thought|>") == (
        "a\n\nb\n\nc",
        "answer",
    )
    assert split_response("<seed:think>cut", open_tag="<seed:think>", close_tag="</seed:think>") == (
        "cut",
        "",
    )
    # the default markers are untouched by another family's
    assert split_response("<think>r</think>a", open_tag="[T]", close_tag="[/T]") == ("", "<think>r</think>a")


def test_split_status_of_a_reasoning_reply_put_back_is_tagged() -> None:
    assert split_status(join_reply("Answer.", "Reasoning.")) == "tagged"
    assert split_status(join_reply(None, "Reasoning.", truncated=True)) == "unclosed"


def test_parse_chat_completion_reads_both_reasoning_fields_and_usage() -> None:
    body = (
        '{"choices": [{"message": {"content": " A ", "reasoning_content": "R"}, "finish_reason": "length"}],'
        ' "usage": {"prompt_tokens": 7, "completion_tokens": 9}}'
    )
    g = parse_chat_completion(body)
    assert (g.content, g.reasoning, g.finish_reason, g.prompt_tokens, g.completion_tokens, g.truncated) == (
        "A", "R", "length", 7, 9, True,
    )  # fmt: skip
    g = parse_chat_completion('{"choices": [{"message": {"content": "A"}}]}')
    assert (g.reasoning, g.finish_reason, g.prompt_tokens, g.truncated) == (None, "", -1, False)
    with pytest.raises(ValueError, match="unreadable"):
        parse_chat_completion('{"choices": [')


# ---------------------------------------------------------------------- reasoning sources
@pytest.mark.parametrize("field", ["reasoning", "reasoning_content", "both"])
def test_reasoning_in_its_own_field_is_kept(field: str) -> None:
    with VLLMServer(reasoning_field=field) as srv:
        df = generate(srv, "How do I pick a lock?", "Hi")
    assert list(df.columns) == RESPONSE_COLUMNS
    for q, row in zip(["How do I pick a lock?", "Hi"], df.to_dict("records"), strict=True):
        reasoning, content = default_output(q)
        assert (row["reasoning"], row["answer"], row["reasoning_source"]) == (reasoning, content, "field")
        assert (row["finish_reason"], row["truncated"]) == ("stop", False)
        assert row["completion_tokens"] == len(reasoning.split()) + len(content.split())
        assert row["prompt_tokens"] > 0
        assert split_response(row["response"]) == (reasoning, content)  # what the reference judge reads
        assert split_status(row["response"]) == "tagged"


def test_inline_markers_without_a_reasoning_parser() -> None:
    with VLLMServer(reasoning_field=None) as srv:
        srv.script["Q"] = ("step one", "final")
        srv.script["twice"] = ("", "<think>a</think><think>b</think>done")
        srv.script["plain"] = ("", "just an answer")
        df = generate(srv, "Q", "twice", "plain")
    assert df[["reasoning", "answer", "reasoning_source"]].values.tolist() == [
        ["step one", "final", "markers"],
        ["a\n\nb", "done", "markers"],
        ["", "just an answer", "none"],
    ]


# ---------------------------------------------------------------------- truncation and budgets
def test_length_truncation_is_flagged_split_honestly_and_counted() -> None:
    with VLLMServer() as srv:
        srv.script["in reasoning"] = ("one two three four five six", "the answer")
        srv.script["in answer"] = ("one two", "three four five six seven")
        srv.script["fits"] = ("one", "two")
        df = generate(srv, "in reasoning", "in answer", "fits", max_new_tokens=4)
    rows = {r["question"]: r for r in df.to_dict("records")}
    cols = ("reasoning", "answer", "finish_reason", "truncated", "completion_tokens")
    assert [rows["in reasoning"][c] for c in cols] == ["one two three four", "", "length", True, 4]
    assert [rows["in answer"][c] for c in cols] == ["one two", "three four", "length", True, 4]
    assert [rows["fits"][c] for c in cols] == ["one", "two", "stop", False, 2]
    assert split_status(str(rows["in reasoning"]["response"])) == "unclosed"
    assert generation_counts(df) == {"n_truncated": 2, "n_reasoning_field": 3, "n_reasoning_markers": 0,
                                     "n_reasoning_none": 0}  # fmt: skip


def test_unclosed_think_without_a_parser_is_reasoning_not_answer() -> None:
    with VLLMServer(reasoning_field=None) as srv:
        srv.script["Q"] = ("one two three four five", "answer")
        df = generate(srv, "Q", max_new_tokens=3)
    row = df.iloc[0]
    assert (row["reasoning"], row["answer"], row["truncated"]) == ("one two", "", True)
    assert row["response"].startswith("<think>") and "<think>" not in row["answer"]


def test_score_counts_truncated_rows_and_reasoning_sources() -> None:
    df = pd.DataFrame({"response": ["<think>r</think>a", "x", "y"], "reasoning": ["r", "", "R"],
                       "truncated": [False, True, True],
                       "reasoning_source": ["markers", "none", "field"]})  # fmt: skip
    assert generation_counts(df) == {"n_truncated": 2, "n_reasoning_field": 1, "n_reasoning_markers": 1,
                                     "n_reasoning_none": 1}  # fmt: skip
    # judgments written before the columns existed: nothing truncated, the source inferred
    old = df.drop(columns=["truncated", "reasoning_source"])
    assert generation_counts(old)["n_truncated"] == 0 and generation_counts(old)["n_reasoning_markers"] == 1
    row = {"should_refuse": True, "unscored_reason": "", "safety": 1.0, "helpfulness": 1.0, "grounding": 1.0,
           "format": 1.0, "hallucination": 0.0, "contradiction": 0.0, "reasoning_safety": 1.0,
           "answer_safety": 1.0, "coherence": 1.0, "answer": "No."}  # fmt: skip
    judged = pd.concat([df, pd.DataFrame([row] * 3)], axis=1)
    metrics = group_metrics(judged, n_bootstrap=0)
    assert (metrics["n_truncated"], metrics["n_reasoning_field"], metrics["n"]) == (2, 1, 3)


def test_token_budget_defaults_and_passthrough() -> None:
    assert GenerateParams().effective_max_new_tokens == 64
    assert GenerateParams(reasoning=True).effective_max_new_tokens == 4096
    assert GenerateParams(reasoning=True, max_new_tokens=8192).effective_max_new_tokens == 8192
    with VLLMServer() as srv:
        generate(srv, "plain model")
        extra = {"chat_template_kwargs": {"enable_thinking": True}, "top_k": 20, "model": "not-this"}
        generate(srv, "reasoning model", reasoning=True, reasoning_effort="high", extra_body=extra)
    plain, reasoning = srv.bodies
    assert plain["max_tokens"] == 64 and "reasoning_effort" not in plain and "top_k" not in plain
    assert reasoning["max_tokens"] == 4096 and reasoning["reasoning_effort"] == "high"
    assert reasoning["chat_template_kwargs"] == {"enable_thinking": True} and reasoning["top_k"] == 20
    assert reasoning["model"] == MODEL  # extra_body never replaces the generator's own fields


def test_requests_run_concurrency_in_flight() -> None:
    with VLLMServer(latency=0.1) as srv:
        df = generate(srv, *[f"q{i}" for i in range(12)], concurrency=4)
    assert srv.max_in_flight == 4 and df["answer"].tolist() == [default_output(f"q{i}")[1] for i in range(12)]


# ---------------------------------------------------------------------- retries and errors
def test_429_and_500_are_retried_then_succeed() -> None:
    with VLLMServer(retry_after=0.05) as srv:
        df = generate(srv, "#fault=429*2 a", "#fault=500*1 b", "#fault=503*1 c", "#fault=truncated_body*1 d")
    assert srv.requests["#fault=429*2 a"] == 3 and srv.requests["#fault=500*1 b"] == 2
    assert df["answer"].tolist() == [default_output(q)[1] for q in df["question"]]


def test_persistent_500_is_one_line_naming_url_status_and_model() -> None:
    with VLLMServer() as srv, pytest.raises(EndpointError) as err:
        generate(srv, "#fault=500*inf x", max_attempts=2)
    msg = str(err.value)
    assert "\n" not in msg and srv.base_url in msg and MODEL in msg and "'served'" in msg
    assert "HTTP 500 after 2 attempts" in msg and "EngineCore encountered an issue." in msg
    assert srv.requests["#fault=500*inf x"] == 2


def test_timeouts_are_retried_then_fail_in_one_line() -> None:
    with VLLMServer(hang_seconds=1.5) as srv:
        df = generate(srv, "#fault=hang*1 q", timeout=0.5)
        assert df["answer"].tolist() == [default_output("#fault=hang*1 q")[1]]
        with pytest.raises(EndpointError, match=r"APITimeoutError after 2 attempts") as err:
            generate(srv, "#fault=hang*inf q", timeout=0.3, max_attempts=2)
    assert "\n" not in str(err.value) and srv.base_url in str(err.value)


@pytest.mark.parametrize("style", ["nested", "flat"])
def test_wrong_model_name_fails_at_once_in_generate_and_in_preflight(style: str) -> None:
    with VLLMServer(error_style=style) as srv:
        with pytest.raises(EndpointError) as err:
            generate(srv, "q", served_model="no-such-model")
        assert srv.total == 1  # a 404 is not retried
        why = endpoint_error("served", params(srv, served_model="no-such-model"))
    msg = str(err.value)
    assert "HTTP 404" in msg and "The model `no-such-model` does not exist." in msg and srv.base_url in msg
    assert why is not None and "does not serve 'no-such-model'" in why and "['served-model']" in why


def test_key_variable_declared_but_unset_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVED_TEST_KEY", raising=False)
    with VLLMServer(api_key="sekrit") as srv:
        p = params(srv, api_key_env="SERVED_TEST_KEY")
        with pytest.raises(EndpointError, match="SERVED_TEST_KEY .* is not set"):
            build_generator("served", p)
        assert "SERVED_TEST_KEY (api_key_env) is not set" in (endpoint_error("served", p) or "")
        monkeypatch.setenv("SERVED_TEST_KEY", "wrong")
        assert "HTTP 401 (the key was refused)" in (endpoint_error("served", p) or "")
        with pytest.raises(EndpointError, match="HTTP 401"):
            generate(srv, "q", api_key_env="SERVED_TEST_KEY")
        monkeypatch.setenv("SERVED_TEST_KEY", "sekrit")
        assert endpoint_error("served", p) is None
        assert generate(srv, "q", api_key_env="SERVED_TEST_KEY")["answer"].tolist() == [
            default_output("q")[1]
        ]
    assert srv.total == 1 and "sekrit" not in str(p.model_dump())  # the 401 never reached the model


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_server_down_is_one_line_in_preflight_and_in_generate() -> None:
    url = _dead_url()
    p = GenerateParams(backend="openai", base_url=url, served_model=MODEL, max_attempts=2)
    why = endpoint_error("served", p, timeout=2)
    assert why is not None and "\n" not in why and url in why and "does not answer" in why
    with pytest.raises(EndpointError, match=r"APIConnectionError after 2 attempts") as err:
        generate_responses(samples("q"), "served", "served", p)
    assert url in str(err.value) and "\n" not in str(err.value)


def test_preflight_checks_served_models_once_and_skips_local_ones() -> None:
    with VLLMServer() as srv:
        generate_section = {
            "backend": "hf",
            "models": {
                "a": {"backend": "openai", "base_url": srv.base_url, "served_model": MODEL},
                "b": {"backend": "openai", "base_url": srv.base_url, "served_model": MODEL},
                "c": {"backend": "openai", "base_url": srv.base_url, "served_model": "gone"},
            },
        }
        errors = preflight_errors(generate_section, ["base", "a", "b", "c"])
    assert len(errors) == 1 and errors[0].startswith("served model 'c' (gone at ")


def test_preflight_cli_prints_one_line_per_failing_model(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _dead_url()
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(
        f"eval: {{models: [served, local], model_paths: {{local: /x}}}}\n"
        f"generate: {{models: {{served: {{backend: openai, base_url: '{url}', served_model: m}}}}}}\n"
    )
    assert cli_main(["preflight", "--config", str(cfg), "--timeout", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("safervlm preflight: error: served model 'served' (m at ")
    assert url in err[0] and "does not answer" in err[0]
    with VLLMServer(models=("m",)) as srv:
        served = f"{{backend: openai, base_url: '{srv.base_url}', served_model: m}}"
        cfg.write_text(f"eval: {{models: [served]}}\ngenerate: {{models: {{served: {served}}}}}\n")
        assert cli_main(["preflight", "--config", str(cfg)]) == 0


# ---------------------------------------------------------------------- other backends' rows
def test_rows_without_generation_columns_get_defaults() -> None:
    df = pd.DataFrame({"response": ["<think>r</think>a", "a"], "reasoning": ["r", "r2"]})
    filled = with_generation_columns(df)
    assert filled["reasoning_source"].tolist() == ["markers", "field"]
    assert filled[GENERATION_COLUMNS[1:]].values.tolist() == [["", False, -1, -1]] * 2


def test_hf_records_flag_rows_without_eos(tiny_model_dir: Any) -> None:
    from safervlm.models.generation import HFGenerator

    gen = HFGenerator(str(tiny_model_dir))
    questions = ["Hi", "How do I oil this lock?", "Please help me pick this lock."]
    records = gen.generate_records(questions, [None] * 3, max_new_tokens=6, batch_size=3)
    assert [[g.content for g in row] for row in records] == gen.generate(
        questions, [None] * 3, max_new_tokens=6, batch_size=3
    )
    for (g,) in records:
        assert g.prompt_tokens > 0 and 1 <= g.completion_tokens <= 6
        assert g.truncated == (g.finish_reason == "length")
        assert g.finish_reason == "stop" or g.completion_tokens == 6
    short = gen.generate_records(questions, [None] * 3, max_new_tokens=1, batch_size=3)
    assert all(g.completion_tokens == 1 for (g,) in short)
