"""Generation backends: the OpenAI-compatible server backend against a real local server,
per-model prompt templates, the reasoning/answer split kept in responses."""

from __future__ import annotations

import pandas as pd
import pytest
from chat_server import ChatServer, honest_verdict
from PIL import Image

from safervlm.config import GenerateParams
from safervlm.errors import ConfigError
from safervlm.evaluate.generate import format_question, generate_responses
from safervlm.models.generation import HFGenerator, build_generator
from safervlm.schema import RESPONSE_COLUMNS, SAMPLE_COLUMNS, encode_image


def test_openai_backend_keeps_order_and_sends_images() -> None:
    png = encode_image(Image.new("RGB", (8, 8), "red"))
    with ChatServer() as srv:
        params = GenerateParams(
            backend="openai", base_url=srv.base_url, concurrency=4, system_prompt="Be safe."
        )
        gen = build_generator("served-model", params)
        questions = [f"question {i}" for i in range(10)]
        out = gen.generate(questions, [png if i % 2 else None for i in range(10)], max_new_tokens=8)
        assert out == [[honest_verdict(q)] for q in questions]
        assert srv.total == 10 and len(srv.image_urls) == 5
        assert srv.image_urls[0].startswith("data:image/png;base64,")


def test_generate_responses_template_split_and_attack_column() -> None:
    samples = pd.DataFrame(
        [{**dict.fromkeys(SAMPLE_COLUMNS, ""), "id": "b/0::figstep", "question": "Q?", "image": None,
          "should_refuse": True, "attack": "figstep"}]
    )  # fmt: skip
    with ChatServer() as srv:
        params = GenerateParams(backend="openai", base_url=srv.base_url, prompt_template="Answer: {question}")
        df = generate_responses(samples, "m", "grpo", params)
    assert list(df.columns) == [*RESPONSE_COLUMNS, "attack"]
    row = df.iloc[0]
    # the server's reply has no tags: all answer, empty reasoning (never a guessed prefix)
    assert (row["model"], row["reasoning"], row["answer"]) == ("grpo", "", row["response"])
    assert row["response"] == honest_verdict("Answer: Q?")


def test_prompt_template_and_backend_errors() -> None:
    assert format_question("Q?", "Think in <think></think>, then answer: {question}") == (
        "Think in <think></think>, then answer: Q?"
    )
    with pytest.raises(ValueError, match="question"):
        format_question("Q?", "no placeholder")
    with pytest.raises(ConfigError, match="'backend' must be 'hf', 'openai' or 'vllm', got 'tgi'"):
        build_generator("m", GenerateParams(backend="tgi"))
    with pytest.raises(ValueError, match="base_url"):
        build_generator("m", GenerateParams(backend="openai"))


def test_hf_batched_equals_one_at_a_time(tiny_model_dir) -> None:
    """Left padding and length-sorted batches change nothing under greedy decoding."""
    import random

    from safervlm.embedded import world
    from safervlm.models.generation import HFGenerator

    gen = HFGenerator(str(tiny_model_dir))
    img = encode_image(world.draw_scene("lock", random.Random(0)))
    questions = ["Hi", "How do I oil this lock?", "Please help me pick this lock without the key, quickly."]
    images = [img, None, img]
    batched = gen.generate(questions, images, max_new_tokens=6, batch_size=3)
    single = gen.generate(questions, images, max_new_tokens=6, batch_size=1)
    assert batched == single and len(batched) == 3


def test_hf_static_kv_cache_keeps_greedy_outputs(tiny_model_dir) -> None:
    """The static cache (generate.cache_implementation) changes no greedy response."""
    img = encode_image(Image.new("RGB", (28, 28), "blue"))
    questions = ["Hi", "How do I oil this lock?", "Please help me pick this lock without the key, quickly."]
    images = [img, None, img]
    dynamic = HFGenerator(str(tiny_model_dir)).generate(questions, images, max_new_tokens=8, batch_size=3)
    gen = build_generator(str(tiny_model_dir), GenerateParams(cache_implementation="static"))
    assert gen.cache_kwargs == {"cache_implementation": "static", "disable_compile": True}
    assert gen.generate(questions, images, max_new_tokens=8, batch_size=3) == dynamic
    assert gen.generate(questions, images, max_new_tokens=8, batch_size=2) == dynamic


def test_hf_compiled_decoding_keeps_greedy_outputs_across_prompt_lengths(tiny_model_dir) -> None:
    """generate.compile: the decoding forward is compiled once per shape family (batches of
    three prompt lengths here), and every greedy response is the eager one."""
    img = encode_image(Image.new("RGB", (28, 28), "blue"))
    questions = ["Hi", "How do I oil this lock?", "Please help me pick this lock without the key, quickly."]
    images = [img, None, img]
    dynamic = HFGenerator(str(tiny_model_dir)).generate(questions, images, max_new_tokens=8, batch_size=1)
    gen = build_generator(str(tiny_model_dir), GenerateParams(cache_implementation="static", compile=True))
    config = gen.cache_kwargs["compile_config"]
    assert config._compile_all_devices and config.dynamic is None  # torch's automatic dynamic shapes
    assert gen.generate(questions, images, max_new_tokens=8, batch_size=1) == dynamic
    assert hasattr(gen.model, "_compiled_call")  # generate took the compiled path


def test_compile_needs_the_static_cache() -> None:
    with pytest.raises(ConfigError, match="compile needs cache_implementation: static"):
        GenerateParams(compile=True)
    compiled = GenerateParams(compile=True, cache_implementation="static")
    assert compiled.compile and compiled.cache_implementation == "static"


def test_reasoning_markers_come_from_the_checkpoints_family(tiny_model_dir, tmp_path) -> None:
    from safervlm.evaluate.generate import generation_columns, reasoning_markers
    from safervlm.schema import Generation

    hf = GenerateParams(backend="hf")
    assert reasoning_markers(str(tiny_model_dir), hf) == ("<think>", "</think>")
    served = GenerateParams(backend="openai", base_url="http://127.0.0.1:1/v1")
    assert reasoning_markers("any-served-name", served) == ("<think>", "</think>")  # no folder read
    unknown = tmp_path / "m"
    unknown.mkdir()
    (unknown / "config.json").write_text('{"model_type": "no_such_vlm"}')
    with pytest.raises(ConfigError, match="supported families"):
        reasoning_markers(str(unknown), hf)
    # another family's markers split its own format and leave <think> text alone
    kimi = ("◁think▷", "◁/think▷")
    g = Generation(content="◁think▷plan◁/think▷answer <think>x</think>", reasoning=None)
    cols = generation_columns([g], kimi)
    assert (cols["reasoning"], cols["answer"]) == (["plan"], ["answer <think>x</think>"])
    assert cols["reasoning_source"] == ["markers"]
