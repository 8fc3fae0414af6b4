"""Critique and correction as one continuation (``grpo.critique_and_correction: one_continuation``).

One HF ``generate`` call per batch of unsafe rows: from the reflection prompt the policy writes
the critique; then the end of that assistant turn, a user turn from ``continuation_template``
(none when it is empty, the default) and the next assistant header are *forced* token by token
(the "bridge"); then the policy writes the correction. Each forced token costs a decoding step,
so the bridge is kept short: without a user turn it is the template's few turn tokens. Each
part keeps its own cap (``reflection_max_tokens``, the rollout's ``max_completion_length``),
so the structure is the same whatever the policy does:
``critique [end] bridge correction [end]``.

Against two separate calls this saves the second prompt's encoding (chat template, image
processing) and prefill, and a row's correction starts as soon as its own critique ends
instead of after the slowest critique of the batch. Under greedy decoding the critiques are
token for token those of the two-pass path (same prompts, same batch, same logits until the
bridge). The correction sees the unsafe answer and the critique rather than the rewritten
prompt of ``correction_template``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList
from trl.models import unwrap_model_for_generation
from trl.trainer.utils import pad


@dataclass
class Continuation:
    """One unsafe row's continuation, split into its parts (token ids)."""

    critique: list[int]  # ends with the end-of-turn token unless cut at the cap
    bridge: list[int]
    correction: list[int]  # ends with an EOS token unless cut at the cap


def bridge_ids(
    processor: Any, conversation: list[dict[str, Any]], user_text: str, end_ids: list[int]
) -> list[int]:
    """Tokens between the critique and the correction: end of turn, the user turn (none when
    ``user_text`` is empty), the next assistant header.

    Derived from the chat template (two renderings, the second with a stand-in critique and the
    user turn), so any template whose turns end with an EOS token works.

    Raises:
        ValueError: when the template does not end an assistant turn with one of ``end_ids``.
    """
    stand_in = "C"
    head = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    turn = [*conversation, {"role": "assistant", "content": [{"type": "text", "text": stand_in}]}]
    if user_text:
        turn.append({"role": "user", "content": [{"type": "text", "text": user_text}]})
    full = processor.apply_chat_template(turn, add_generation_prompt=True, tokenize=False)
    prefix = head + stand_in
    if not full.startswith(prefix):
        raise ValueError("the chat template re-renders earlier turns; cannot continue a critique in place")
    tokenizer = getattr(processor, "tokenizer", processor)
    ids = list(tokenizer(full[len(prefix) :], add_special_tokens=False)["input_ids"])
    if not ids or ids[0] not in end_ids:
        raise ValueError("the chat template does not end an assistant turn with an EOS token")
    return ids


class ContinuationForcer(LogitsProcessor):
    """Forces the bridge after each row's critique and ends each row after its correction.

    Stateless: the phase of a row is read from its generated tokens. A row that is done gets
    ``pad_id`` (``generate``'s stop token for this call), so ``generate`` stops once every row
    is done, not at the caps.
    """

    def __init__(
        self,
        prompt_len: int,
        bridges: list[list[int]],
        eos_ids: list[int],
        pad_id: int,
        critique_max: int,
        correction_max: int,
    ) -> None:
        self.prompt_len = prompt_len
        self.bridges = bridges
        self.end_id = bridges[0][0]
        self.stops = sorted({*eos_ids, pad_id} - {self.end_id})  # ends of a free part other than end_id
        self.eos_ids = set(eos_ids)
        self.pad_id = pad_id
        self.critique_max = critique_max
        self.correction_max = correction_max

    def forced(self, row: int, gen: list[int]) -> int | None:
        """The token row ``row`` must emit next after ``gen``, or None (the policy chooses)."""
        bridge = self.bridges[row]
        if self.end_id not in gen:  # the critique
            return self.end_id if len(gen) >= self.critique_max else None
        k = gen.index(self.end_id)
        if len(gen) - k < len(bridge):
            return bridge[len(gen) - k]
        correction = gen[k + len(bridge) :]
        if len(correction) >= self.correction_max or any(
            t in self.eos_ids or t == self.pad_id for t in correction
        ):
            return self.pad_id
        return None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_len :].tolist()
        for row, gen in enumerate(generated):
            token = self.forced(row, gen)
            if token is not None:
                scores[row] = -torch.inf
                scores[row, token] = 0.0
            elif self.stops:
                # Any other way to end a turn ends it with end_id (merged probability), so the
                # call stops only where this processor says; greedy picks what two passes would.
                ends = [self.end_id, *self.stops]
                scores[row, self.end_id] = torch.logsumexp(scores[row, ends], dim=0)
                scores[row, self.stops] = -torch.inf
        return scores


def split(gen: list[int], bridge: list[int], caps: tuple[int, int], eos_ids: set[int]) -> Continuation:
    """Split one row's generated ids into critique, bridge and correction (padding dropped);
    ``caps`` are the critique's and the correction's maximum lengths."""
    k = gen.index(bridge[0])
    critique = gen[: k + 1] if k < caps[0] else gen[:k]  # a forced end is not the policy's
    rest = gen[k + len(bridge) :]
    end = next((i for i, t in enumerate(rest) if t in eos_ids), None)
    return Continuation(
        critique, gen[k : k + len(bridge)], rest[: caps[1]] if end is None else rest[: end + 1]
    )


def generate_continuations(
    trainer: Any,
    conversations: list[list[dict[str, Any]]],
    user_texts: list[str],
    critique_max: int,
    correction_max: int,
) -> tuple[list[list[int]], list[Continuation]]:
    """Critique + forced bridge + correction for each conversation, in one ``generate`` call.

    Uses the trainer's policy, tokenisation and generation config (sampling settings,
    suppressed tokens) on TRL's HF path. Returns the prompt ids and each row's parts.
    """
    processor = trainer.processing_class
    tokenizer = getattr(processor, "tokenizer", processor)
    eos_ids, pad_id = list(trainer.eos_token_ids), tokenizer.pad_token_id
    bridges = [bridge_ids(processor, c, u, eos_ids) for c, u in zip(conversations, user_texts, strict=True)]
    prompt_ids, _, mm_fields = trainer._tokenize_prompts(conversations)
    tensors = [torch.tensor(ids) for ids in prompt_ids]
    multiple = trainer.pad_to_multiple_of
    inputs: dict[str, Any] = {
        "input_ids": pad(tensors, padding_value=pad_id, padding_side="left", pad_to_multiple_of=multiple),
        "attention_mask": pad(
            [torch.ones_like(t) for t in tensors],
            padding_value=0,
            padding_side="left",
            pad_to_multiple_of=multiple,
        ),
    }
    for key, value in mm_fields.items():  # pixel_values, image_grid_thw ... as TRL's HF path passes them
        if isinstance(value, torch.Tensor):
            inputs[key] = value
        elif isinstance(value, list) and value and isinstance(value[0], list):  # per token: left-padded
            inputs[key] = pad(
                [torch.tensor(x) for x in value],
                padding_value=0,
                padding_side="left",
                pad_to_multiple_of=multiple,
            )
        else:
            inputs[key] = torch.as_tensor(np.array(value))
    device = trainer.accelerator.device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    config = copy.deepcopy(trainer.generation_config)
    critique_max = min(critique_max, config.max_new_tokens or critique_max)
    config.max_new_tokens = critique_max + max(len(b) for b in bridges) + correction_max
    config.eos_token_id = pad_id  # rows stop when the forcer says (it gives done rows pad_id)
    forcer = ContinuationForcer(
        inputs["input_ids"].shape[1], bridges, eos_ids, pad_id, critique_max, correction_max
    )
    with (
        unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            generation_kwargs=trainer.generation_kwargs,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as model,
        torch.no_grad(),
        trainer._dist.summon_full_params(trainer.model_wrapped, recurse=False),  # FSDP, as TRL's HF path
    ):
        out = model.generate(
            **inputs, generation_config=config, logits_processor=LogitsProcessorList([forcer])
        )
    generated = out[:, inputs["input_ids"].shape[1] :].tolist()
    caps = (critique_max, correction_max)
    parts = [split(g, b, caps, set(eos_ids)) for g, b in zip(generated, bridges, strict=True)]
    return [list(p) for p in prompt_ids], parts
