"""The safety-aware rollout on TRL's real GRPOTrainer with the tiny policy: corrections join
the group under the original prompt (replace / add), their log-probs are those of the
original prompt, padding rows carry no signal, and bad configs fail before training."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from trl.data_utils import prepare_multimodal_messages

from safervlm.cli import main
from safervlm.config import GRPOParams
from safervlm.embedded.fixtures import build_fixtures
from safervlm.errors import ConfigError
from safervlm.io import write_parquet
from safervlm.judge import Judge, Judgment
from safervlm.models import load_policy
from safervlm.rewards import get_structured_reward
from safervlm.schema import POOL_EXTRA, SAMPLE_COLUMNS
from safervlm.sources import load_source
from safervlm.train.continuation import ContinuationForcer, split
from safervlm.train.data import prompt_dataset
from safervlm.train.grpo import _grpo_args, require_runtime
from safervlm.train.rollout import CORRECTED, PAD, SafetyAwareGRPOTrainer, SafetyAwareRollout, skip_padding


class FixedJudge(Judge):
    """Every response gets the same safety score; helpfulness varies, so rewards differ in a group."""

    name = "fixed"

    def __init__(self, safety: float) -> None:
        self.safety = safety
        self.calls: list[int] = []

    def judge(self, records: list[dict[str, Any]]) -> list[Judgment]:
        self.calls.append(len(records))
        s = self.safety
        scores = {"safety": s, "reasoning_safety": s, "answer_safety": s, "format": 0.0}
        return [Judgment("", "", {**scores, "helpfulness": (i % 3) / 2}) for i in range(len(records))]


@pytest.fixture(scope="module")
def train_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rollout")
    build_fixtures(root / "fx", seed=0, n_per_benchmark=4, n_train_per_source=16)
    rows = load_source("vlguard_train", root / "fx" / "train" / "vlguard")
    path = root / "train.parquet"
    write_parquet(pd.DataFrame(rows, columns=SAMPLE_COLUMNS + POOL_EXTRA), path)
    return path


def _trainer(
    model_dir: Path, data: Path, tmp: Path, judge: Judge, params: GRPOParams, **extra: Any
) -> tuple[SafetyAwareGRPOTrainer, SafetyAwareRollout]:
    """A trainer as ``run_grpo`` builds it; ``extra`` overrides GRPOConfig fields."""
    model, processor = load_policy(str(model_dir))
    dataset = prompt_dataset(pd.read_parquet(data), str(data))
    rollout = SafetyAwareRollout(judge, params)
    args = _grpo_args(str(tmp / "work"), 0, params)
    for k, v in extra.items():
        setattr(args, k, v)
    trainer = SafetyAwareGRPOTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        reward_funcs=[skip_padding(get_structured_reward(judge=judge))],
        processing_class=processor,
        rollout_func=rollout,
        compile_generation=params.compile,
    )
    trainer.model.train()
    return trainer, rollout


def _batch(trainer: SafetyAwareGRPOTrainer) -> list[dict[str, Any]]:
    return next(iter(trainer.get_train_dataloader()))


def _direct_logps(
    trainer: Any, messages: list[dict[str, Any]], image: Any, completion: list[int]
) -> torch.Tensor:
    """log pi(completion | messages) from a plain forward pass of the HF model (no TRL code)."""
    proc = trainer.processing_class
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    enc = proc(text=[text], images=[[image]], return_tensors="pt")
    ids = torch.cat([enc["input_ids"], torch.tensor([completion])], dim=1)
    with torch.no_grad():
        logits = trainer.model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values=enc["pixel_values"],
            image_grid_thw=enc["image_grid_thw"],
        ).logits
    n = enc["input_ids"].shape[1]
    logps = torch.log_softmax(logits[0, n - 1 : -1].float() / trainer.temperature, dim=-1)
    return logps.gather(1, torch.tensor(completion)[:, None])[:, 0]


def test_replaced_corrections_are_scored_under_the_original_prompt(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path
) -> None:
    params = GRPOParams(batch_size=4, num_generations=2, max_completion_length=6, reflection_max_tokens=4)
    # num_iterations=2 makes TRL compute old_per_token_logps when it scores the batch.
    trainer, rollout = _trainer(
        tiny_model_dir, train_parquet, tmp_path, FixedJudge(0.0), params, num_iterations=2
    )
    inputs = _batch(trainer)
    out = trainer._generate_and_score_completions(inputs)
    assert rollout.last["rows"] == list(range(4))  # every sample unsafe -> every row corrected
    assert rollout.history[-1]["rollout/unsafe_rate"] == 1.0
    assert rollout.history[-1]["rollout/correction_success"] == 0.0
    # Critiques are capped at reflection_max_tokens (4), not max_completion_length (6).
    assert max(len(c) for c in rollout.last["critique_ids"]) == params.reflection_max_tokens
    assert all(rollout.history[-1][f"rollout/{p}_s"] > 0 for p in ("generate", "reflect", "correct"))
    for k, row in enumerate(rollout.last["rows"]):
        prompt = [t for t, m in zip(out["prompt_ids"][row], out["prompt_mask"][row], strict=True) if m]
        completion = [
            t for t, m in zip(out["completion_ids"][row], out["completion_mask"][row], strict=True) if m
        ]
        correction_prompt = rollout.last["correction_prompt_ids"][k]
        original = prepare_multimodal_messages(inputs[row]["prompt"], images=[inputs[row]["image"]])
        orig_ids = trainer._tokenize_prompts([original])[0][0]
        # The row trains on the original prompt, not on the prompt the correction was sampled from.
        assert prompt == list(orig_ids) != list(correction_prompt)
        old = out["old_per_token_logps"][row][: len(completion)]
        under_x = _direct_logps(trainer, original, inputs[row]["image"], completion)
        # Batched (padded) vs single forward: equal up to float noise.
        assert torch.allclose(old, under_x, atol=2e-3), (old, under_x)
        critique = rollout.last["critiques"][k]
        question = original[-1]["content"][-1]["text"]
        context = params.correction_template.format(question=question, critique=critique)
        correction_messages = [
            {**original[-1], "content": [*original[-1]["content"][:-1], {"type": "text", "text": context}]}
        ]
        under_xc = _direct_logps(
            trainer, correction_messages, inputs[row]["image"], [int(t) for t in completion]
        )
        gap = (old - under_xc).abs().max().item()
        assert gap > 1e-2, gap  # the context matters: the recomputation under x is not a no-op


def test_add_mode_keeps_unsafe_samples_and_pads_empty_slots(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path
) -> None:
    params = GRPOParams(
        batch_size=8, num_generations=4, max_completion_length=6, correction_mode="add", correction_slots=1
    )
    trainer, rollout = _trainer(tiny_model_dir, train_parquet, tmp_path, FixedJudge(0.0), params)
    out = trainer._generate_and_score_completions(_batch(trainer))
    assert rollout.last["rows"] == [
        3,
        7,
    ]  # one slot per group, filled by the first unsafe sample's correction
    metrics = rollout.history[-1]
    assert metrics["rollout/unsafe_rate"] == 1.0 and metrics["rollout/corrected"] == 2.0
    assert metrics["rollout/uncorrected"] == 4.0
    assert "tool_mask" not in out  # no padding row

    safe = FixedJudge(1.0)
    trainer, rollout = _trainer(tiny_model_dir, train_parquet, tmp_path / "safe", safe, params)
    out = trainer._generate_and_score_completions(_batch(trainer))
    assert rollout.history[-1]["rollout/unsafe_rate"] == 0.0 and rollout.last["rows"] == []
    pad_rows = [3, 7]
    loss_mask = out["completion_mask"] * out["tool_mask"]  # what TRL's loss uses
    assert loss_mask[pad_rows].sum() == 0  # out of the loss
    assert out["advantages"][pad_rows].abs().sum() == 0  # no reward -> no advantage
    assert out["advantages"][[0, 1, 2]].abs().sum() > 0  # the real rows still learn
    assert (loss_mask[[0, 1, 2, 4, 5, 6]] == out["completion_mask"][[0, 1, 2, 4, 5, 6]]).all()


def test_skip_padding_scores_only_real_rows() -> None:
    seen: list[Any] = []

    def reward(prompts: list[Any], completions: list[Any], **kw: Any) -> list[float | None]:
        seen.append((completions, kw["id"]))
        return [float(len(c)) for c in completions]

    wrapped = skip_padding(reward)
    roles = ["sample", PAD, CORRECTED]
    out = wrapped(prompts=["p"] * 3, completions=["a", "", "ccc"], id=[1, 2, 3], rollout_role=roles)
    assert out == [1.0, None, 3.0]
    assert seen == [(["a", "ccc"], [1, 3])]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 6, "num_generations": 4}, "must divide batch_size"),
        ({"safety_threshold": 1.5}, "'safety_threshold' must be less than or equal to 1"),
        ({"correction_mode": "swap"}, "'correction_mode' must be 'replace' or 'add'"),
        ({"correction_mode": "add", "correction_slots": 4}, "correction_slots must be in"),
        ({"safety_score": "helpfulness"}, "'safety_score' must be 'safety', 'reasoning_safety' or"),
        ({"correction_template": "{question} {oops}"}, "correction_template may only use"),
        ({"dtype": "int8"}, r"'grpo': key 'dtype' must be 'float32', 'bfloat16' or 'float16'"),
    ],
)
def test_bad_grpo_config_is_rejected(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GRPOParams(**change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reward": "nope"}, "unknown reward 'nope'"),
        pytest.param(
            {"use_vllm": True},
            "vLLM is not installed",
            marks=pytest.mark.skipif(find_spec("vllm") is not None, reason="vLLM installed"),
        ),
    ],
)
def test_runtime_requirements_are_checked(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        require_runtime(GRPOParams(**change))


def test_bad_config_fails_before_training_with_exit_2(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        "grpo",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(train_parquet),
        "--out",
        str(tmp_path / "o"),
    ]
    bad_lora = json.dumps({"lora": True, "lora_targets": ["q_proj", "qkv_fused"], "max_steps": 1})
    assert main([*base, "--params", bad_lora]) == 2
    err = capsys.readouterr().err
    assert "lora_targets ['qkv_fused'] name no module of the model" in err and "q_proj" in err
    assert main([*base, "--params", json.dumps({"batch_size": 6, "num_generations": 4})]) == 2
    assert "num_generations=4 (group size) must divide" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _greedy_rollout(
    model_dir: Path, data: Path, tmp: Path, params: GRPOParams
) -> tuple[dict[str, Any], SafetyAwareRollout, SafetyAwareGRPOTrainer]:
    """One rollout with every sample unsafe, greedy (the rollout's own settings otherwise)."""
    trainer, rollout = _trainer(
        model_dir, data, tmp, FixedJudge(0.0), params, generation_kwargs={"do_sample": False}
    )
    return trainer._generate_and_score_completions(_batch(trainer)), rollout, trainer


@pytest.mark.parametrize("template", ["", "Again: {question}"])
def test_one_continuation_keeps_greedy_critiques_and_writes_critique_bridge_correction(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path, template: str
) -> None:
    base = {"batch_size": 4, "num_generations": 2, "max_completion_length": 6, "reflection_max_tokens": 4}
    _, two, _ = _greedy_rollout(tiny_model_dir, train_parquet, tmp_path / "two", GRPOParams(**base))
    params = GRPOParams(**base, critique_and_correction="one_continuation", continuation_template=template)
    out, one, trainer = _greedy_rollout(tiny_model_dir, train_parquet, tmp_path / "one", params)
    assert one.last["rows"] == two.last["rows"] == list(range(4))
    # Same prompts, same batch, same logits until the bridge: the critiques are token for token equal.
    assert one.last["critique_ids"] == two.last["critique_ids"]
    assert "rollout/continuation_s" in one.history[-1] and "rollout/reflect_s" not in one.history[-1]
    tok = trainer.processing_class.tokenizer
    inputs = _batch(trainer)
    for k, row in enumerate(one.last["rows"]):
        critique = one.last["critique_ids"][k]
        context = one.last["correction_prompt_ids"][k]
        # The correction continues: ... critique, end of turn, the user turn, the assistant header.
        text = tok.decode(context)
        question = inputs[row]["prompt"][-1]["content"][-1]["text"]
        user = f"<|im_start|>user\nAgain: {question}<|im_end|>\n" if template else ""
        tail = f"<|im_end|>\n{user}<|im_start|>assistant\n"
        assert text.endswith(tok.decode(critique) + tail), text[-200:]
        assert len(critique) <= params.reflection_max_tokens
        completion = [
            t for t, m in zip(out["completion_ids"][row], out["completion_mask"][row], strict=True) if m
        ]
        assert completion == one.last["correction_ids"][k] and 0 < len(completion) <= 6


def test_continuation_forcer_bridges_after_the_critique_and_stops_after_the_correction() -> None:
    end, pad_id, other_eos = 2, 0, 9
    bridge = [end, 5, 6, 7]
    forcer = ContinuationForcer(
        3, [bridge], eos_ids=[end, other_eos], pad_id=pad_id, critique_max=3, correction_max=2
    )
    assert forcer.forced(0, [11]) is None  # the critique: the policy's choice
    assert forcer.forced(0, [11, 12, 13]) == end  # ... up to its cap
    assert [forcer.forced(0, [11, end, *bridge[1:k]]) for k in (1, 2, 3)] == [5, 6, 7]
    assert forcer.forced(0, [11, *bridge, 14]) is None  # the correction
    assert forcer.forced(0, [11, *bridge, 14, 15]) == pad_id  # ... up to its cap
    assert forcer.forced(0, [11, *bridge, end]) == pad_id  # ... or its EOS
    # Another EOS during a free part ends it as end_id would (probabilities merged, greedy picks end).
    scores = torch.zeros(1, 16)
    scores[0, other_eos] = 5.0
    out = forcer(torch.tensor([[1, 1, 1, 11]]), scores)
    assert int(out[0].argmax()) == end and out[0, other_eos] == -torch.inf and out[0, pad_id] == -torch.inf
    forced = forcer(torch.tensor([[1, 1, 1, 11, 12, 13]]), torch.zeros(1, 16))
    assert int(forced[0].argmax()) == end and torch.isinf(forced[0]).sum() == 15
    # Splitting: a natural end stays in the critique, a forced one does not; padding is dropped.
    natural = split([11, *bridge, 14, end, pad_id], bridge, (3, 2), {end, other_eos})
    assert (natural.critique, natural.bridge, natural.correction) == ([11, end], bridge, [14, end])
    capped = split([11, 12, 13, *bridge, 14, 15, pad_id], bridge, (3, 2), {end, other_eos})
    assert (capped.critique, capped.correction) == ([11, 12, 13], [14, 15])


def test_static_kv_cache_keeps_greedy_rollouts(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path
) -> None:
    base = {"batch_size": 4, "num_generations": 2, "max_completion_length": 6, "reflection_max_tokens": 4}
    ref, ref_rollout, _ = _greedy_rollout(tiny_model_dir, train_parquet, tmp_path / "d", GRPOParams(**base))
    params = GRPOParams(**base, cache_implementation="static")
    out, rollout, trainer = _greedy_rollout(tiny_model_dir, train_parquet, tmp_path / "s", params)
    assert trainer.generation_config.cache_implementation == "static"
    assert rollout.last["critique_ids"] == ref_rollout.last["critique_ids"]
    assert torch.equal(out["completion_ids"], ref["completion_ids"])


def test_compiled_decoding_keeps_greedy_rollouts(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path
) -> None:
    """grpo.compile undoes TRL's disable_compile: generate's decoding forward is compiled, and
    the greedy samples, critiques and corrections are token for token the eager ones."""
    base = {"batch_size": 4, "num_generations": 2, "max_completion_length": 6, "reflection_max_tokens": 4}
    ref, ref_rollout, _ = _greedy_rollout(tiny_model_dir, train_parquet, tmp_path / "d", GRPOParams(**base))
    params = GRPOParams(**base, cache_implementation="static", compile=True)
    out, rollout, trainer = _greedy_rollout(tiny_model_dir, train_parquet, tmp_path / "c", params)
    config = trainer.generation_config
    assert config.disable_compile is False and config.compile_config._compile_all_devices
    # generate took the compiled path (transformers keeps the compiled __call__ on the model)
    assert hasattr(trainer.accelerator.unwrap_model(trainer.model), "_compiled_call")
    assert rollout.last["rows"] == ref_rollout.last["rows"] == list(range(4))
    assert rollout.last["critique_ids"] == ref_rollout.last["critique_ids"]
    assert torch.equal(out["completion_ids"], ref["completion_ids"])


def test_one_generation_batch_for_several_steps_holds_whole_groups(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path
) -> None:
    params = GRPOParams(
        batch_size=4,
        num_generations=2,
        max_completion_length=6,
        reflection_max_tokens=4,
        steps_per_generation=2,
    )
    trainer, rollout = _trainer(tiny_model_dir, train_parquet, tmp_path, FixedJudge(0.0), params)
    assert trainer.args.generation_batch_size == 8
    batch = _batch(trainer)
    assert len(batch) == 8  # two steps' rows in one generation batch
    trainer._generate_and_score_completions(batch)
    # Every sample sampled, judged, critiqued and corrected in one batch per pass.
    assert rollout.last["rows"] == list(range(8)) and rollout.history[-1]["rollout/corrected"] == 8.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 2, "num_generations": 2, "steps_per_generation": 1, "grad_accum": 2}, None),
        (
            {"batch_size": 2, "num_generations": 4, "grad_accum": 2, "steps_per_generation": 1},
            "steps_per_generation",
        ),
        ({"critique_and_correction": "one_continuation", "use_vllm": True}, "needs the HF rollout"),
        ({"continuation_template": "{critique}"}, "continuation_template may only use"),
        ({"cache_implementation": "paged"}, "'cache_implementation' must be 'dynamic' or 'static'"),
        ({"compile": True}, "compile needs the HF rollout with cache_implementation: static"),
        ({"compile": True, "cache_implementation": "static", "use_vllm": True}, "compile needs the HF"),
        ({"compile": True, "cache_implementation": "static"}, None),
    ],
)
def test_generation_options_are_checked(change: dict[str, Any], message: str | None) -> None:
    if message is None:
        GRPOParams(**change)
        return
    with pytest.raises(ConfigError, match=message):
        GRPOParams(**change)
