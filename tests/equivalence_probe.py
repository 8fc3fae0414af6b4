"""Run one ``safervlm sft|grpo`` stage (1 process, or one rank under torchrun) and record
what the equivalence tests compare: ``python equivalence_probe.py RECORD_DIR -- ARGS...``.

Not a test module: ``tests/test_equivalence.py`` launches it. Before calling the CLI it

- registers the ``content_hash`` judge: the reference judge with safety (and helpfulness)
  derived from a hash of the response text, so whether a sample is corrected depends on its
  text only, never on its position in a judge call or on which process judges it;
- makes sampling layout-independent (``keyed`` below): every ``generate`` call samples with
  the Gumbel-max trick on noise keyed by the row's own tokens and its occurrence among
  identical rows of the call, so a row samples the same tokens whichever process or batch
  position it has. TRL seeds each process differently (``set_seed(seed, device_specific=True)``)
  and HF ``generate`` draws one random stream per batch, so without this a 2-process run
  samples other completions than a 1-process run by construction;
- records, per rank: the world size torch.distributed and accelerate see, the dataset ids
  (GRPO) or token hashes (SFT) of every step's rows, the rollout's corrections per call,
  the trainer's log history, the GRPO completions (token hashes) and the initial and final
  weights (``initial.safetensors``, ``rank<r>.safetensors``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import zlib
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch.distributed.tensor import DTensor
from transformers import GenerationMixin, LogitsProcessor, LogitsProcessorList, Trainer
from trl import GRPOTrainer

from safervlm.cli import main
from safervlm.judge import Judgment, register_judge
from safervlm.judge.reference import ReferenceJudge


def _crc(values: Any) -> int:
    return zlib.crc32(json.dumps(values).encode())


@register_judge("content_hash")
class ContentHashJudge(ReferenceJudge):
    """The reference judge with safety 0 for about a third of responses, chosen by their text.
    ``SAFERVLM_PROBE_ALL_SAFE_RANK=r`` makes every response judged on rank ``r`` safe: that rank
    then never has an unsafe row and must still join the others' critique and correction passes."""

    name = "content_hash"

    def judge(self, records: list[dict[str, Any]]) -> list[Judgment]:
        out = super().judge(records)
        all_safe = os.environ.get("SAFERVLM_PROBE_ALL_SAFE_RANK") == os.environ.get("RANK", "0")
        for rec, jd in zip(records, out, strict=True):
            h = _crc(rec["response"])
            safety = 1.0 if all_safe or h % 3 else 0.0
            jd.scores.update(safety=safety, reasoning_safety=safety, answer_safety=safety)
            jd.scores["helpfulness"] = (h % 7) / 6
            jd.unscored_reason = ""
        return out


class KeyedGumbel(LogitsProcessor):
    """Gumbel-max sampling with noise keyed by each row's tokens: the row's pick becomes the only
    finite score, so ``generate``'s own multinomial draw is deterministic. ``generate`` runs
    custom processors before its temperature warper, so the temperature is applied here."""

    def __init__(self, pad_id: int | None, temperature: float) -> None:
        self.pad_id = pad_id
        self.temperature = temperature

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        seen: dict[int, int] = {}
        for row, ids in enumerate(input_ids.tolist()):
            tokens = [t for t in ids if t != self.pad_id]  # left padding differs between layouts
            key = _crc(tokens)
            occurrence = seen.get(key, 0)  # identical rows (a GRPO group's prompt) differ by order
            seen[key] = occurrence + 1
            gen = torch.Generator().manual_seed(key * 1009 + occurrence)
            u = torch.rand(scores.shape[1], generator=gen, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
            pick = int(torch.argmax(scores[row].double() / self.temperature - torch.log(-torch.log(u))))
            scores[row] = -torch.inf
            scores[row, pick] = 0.0
        return scores


_generate = GenerationMixin.generate


def _keyed_generate(self: Any, *args: Any, **kwargs: Any) -> Any:
    config = kwargs.get("generation_config") or self.generation_config
    pad = config.pad_token_id if config.pad_token_id is not None else self.generation_config.pad_token_id
    procs = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
    procs.append(KeyedGumbel(pad if isinstance(pad, int) else None, config.temperature or 1.0))
    return _generate(self, *args, logits_processor=procs, **kwargs)


RECORD: dict[str, Any] = {"steps": [], "generation_ids": [], "completions": []}
_training_step = Trainer.training_step
_generate_and_score = GRPOTrainer._generate_and_score_completions
_train = Trainer.train


def _recording_training_step(self: Any, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
    if "input_ids" in inputs:  # SFT: which examples, as hashes of their unpadded tokens
        mask = inputs["attention_mask"].bool()
        RECORD["steps"].append(
            [_crc(ids[m].tolist()) for ids, m in zip(inputs["input_ids"], mask, strict=True)]
        )
    return _training_step(self, model, inputs, *args, **kwargs)


def _recording_generate_and_score(self: Any, inputs: list[dict[str, Any]]) -> Any:
    RECORD["generation_ids"].append([str(row["id"]) for row in inputs])
    RECORD.setdefault("sharded", sum(map(_sharded, self.model_wrapped.parameters())))
    out = _generate_and_score(self, inputs)
    ids, mask = out["completion_ids"], out["completion_mask"].bool()
    RECORD["completions"].append([_crc(c[m].tolist()) for c, m in zip(ids, mask, strict=True)])
    return out


def _sharded(p: torch.Tensor) -> bool:
    """A parameter split over the processes: ZeRO-3 leaves an empty placeholder (plus this rank's
    partition in ``ds_tensor``) between steps; FSDP2 makes it a DTensor sharded on a dimension."""
    if getattr(p, "ds_tensor", None) is not None and p.numel() == 0:
        return True
    return isinstance(p, DTensor) and any(pl.is_shard() for pl in p.placements)


def _weights(trainer: Any) -> dict[str, torch.Tensor]:
    """Full weights, gathered where they are sharded (collectives: every rank calls it): FSDP2
    gathers each DTensor; ZeRO-3 gathers its partitions for the read."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    gather: Any = contextlib.nullcontext()
    if any(getattr(p, "ds_tensor", None) is not None for p in model.parameters()):
        import deepspeed

        gather = deepspeed.zero.GatheredParameters(list(model.parameters()))
    with gather:
        full = {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in model.state_dict().items()}
        return {k: v.detach().float().contiguous().clone() for k, v in full.items()}


def _recording_train(self: Any, *args: Any, **kwargs: Any) -> Any:
    folder = Path(os.environ["EQUIV_RECORD_DIR"])
    rank = self.accelerator.process_index
    if rank == 0:
        save_file(_weights(self), folder / "initial.safetensors")
    out = _train(self, *args, **kwargs)
    dist = torch.distributed.is_available() and torch.distributed.is_initialized()
    rollout = getattr(self, "rollout_func", None)
    RECORD.update(
        n_parameters=len(list(self.model_wrapped.parameters())),
        rank=rank,
        world_size=torch.distributed.get_world_size() if dist else 1,
        backend=torch.distributed.get_backend() if dist else None,
        num_processes=self.accelerator.num_processes,
        distributed_type=str(self.accelerator.distributed_type),
        rollout=getattr(rollout, "history", None),
        log_history=self.state.log_history,
    )
    save_file(_weights(self), folder / f"rank{rank}.safetensors")
    (folder / f"rank{rank}.json").write_text(json.dumps(RECORD, default=str))
    return out


if __name__ == "__main__":
    record_dir, sep, *argv = sys.argv[1:]
    assert sep == "--", "usage: equivalence_probe.py RECORD_DIR -- SAFERVLM_ARGS..."
    os.environ["EQUIV_RECORD_DIR"] = record_dir
    Path(record_dir).mkdir(parents=True, exist_ok=True)
    GenerationMixin.generate = _keyed_generate  # type: ignore[method-assign]
    Trainer.training_step = _recording_training_step  # type: ignore[method-assign]
    Trainer.train = _recording_train  # type: ignore[method-assign]
    GRPOTrainer._generate_and_score_completions = _recording_generate_and_score  # type: ignore[method-assign]
    sys.exit(main(argv))
