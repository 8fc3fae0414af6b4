"""Distributed strategies: what each one needs, how our trainers turn it on, and a check that it ran.

``ddp`` (the default) replicates the policy on each process; ``fsdp`` shards it with FSDP2 (full
state dict on save); ``deepspeed`` runs ZeRO-2 or ZeRO-3 from ``config/deepspeed/*.json``. A
strategy never runs as another: :func:`check_strategy` refuses what cannot run before any work,
and :class:`StrategyCheck` stops a run whose trainer did not set up the strategy it was given.

What was measured on this project's CPU machines (torch 2.13, accelerate 1.15, deepspeed 0.19):

- FSDP2 shards on CPU over gloo (``torch.distributed.fsdp.fully_shard``: DTensor parameters, a
  full state dict gathers on rank 0), but accelerate turns FSDP on only for accelerator devices:
  on CPU (``DistributedType.MULTI_CPU``) it drops the FSDP plugin the trainer built and wraps the
  model in DDP, without a warning. :class:`StrategyTrainer` makes it real: where accelerate
  dropped the plugin on CPU, it sets the accelerator state to FSDP with the trainer's own plugin
  (what accelerate does on a GPU), so ``prepare`` calls ``fully_shard``.
- DeepSpeed's CPU accelerator (found without a GPU, or ``DS_ACCELERATOR=cpu``) runs ZeRO-2 and
  ZeRO-3 over gloo without oneCCL or intel-extension-for-pytorch; ZeRO-3 partitions every
  parameter, and the safety-aware rollout generates with them gathered (tests/test_equivalence.py).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from accelerate.utils import DistributedType
from transformers import TrainerCallback

from safervlm.errors import ConfigError

log = logging.getLogger(__name__)

Strategy = Literal["ddp", "fsdp", "deepspeed"]
STRATEGIES: tuple[str, ...] = ("ddp", "fsdp", "deepspeed")


@dataclass(frozen=True)
class Runtime:
    """What a strategy depends on: the device kind, the number of processes, installed libraries."""

    device: str  # "cuda", "cpu", ...
    world_size: int
    has_deepspeed: bool
    ds_accelerator: str | None  # DS_ACCELERATOR, when set

    @classmethod
    def detect(cls, world_size: int | None = None) -> Runtime:
        """This process's runtime; ``world_size`` defaults to torchrun's ``WORLD_SIZE`` (else 1)."""
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(
            device=device,
            world_size=world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", "1")),
            has_deepspeed=importlib.util.find_spec("deepspeed") is not None,
            ds_accelerator=os.environ.get("DS_ACCELERATOR"),
        )


def zero_stage(config: str | Path) -> int:
    """The ZeRO stage of a DeepSpeed JSON config.

    Raises:
        ConfigError: an unreadable file, or a stage other than 2 or 3.
    """
    try:
        stage = json.loads(Path(config).read_text())["zero_optimization"]["stage"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"strategy 'deepspeed': cannot read the ZeRO stage from {config}: {exc!r}") from exc
    if stage not in (2, 3):
        raise ConfigError(f"strategy 'deepspeed': {config} has ZeRO stage {stage}; supported: 2, 3")
    return int(stage)


def check_strategy(strategy: str, runtime: Runtime, deepspeed_config: str | Path | None = None) -> str:
    """Validate ``strategy`` against ``runtime``; a one-line description of what will run.

    Raises:
        ConfigError: an unknown strategy, or one that lacks what it needs (FSDP with one process,
            DeepSpeed without its package or config, a DeepSpeed accelerator this machine lacks).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; known strategies: {list(STRATEGIES)}")
    n = runtime.world_size
    if strategy == "ddp":
        return f"ddp: {n} replica(s) on {runtime.device}"
    if strategy == "fsdp":
        if n < 2:
            raise ConfigError(
                "strategy 'fsdp' shards the policy over processes, and this run has one: set "
                "`processes` to 2 or more (or run on a job with several GPUs), or use strategy 'ddp'"
            )
        over = (
            "gloo, the trainer's FSDP plugin applied by safervlm"
            if runtime.device == "cpu"
            else runtime.device
        )
        return f"fsdp: FSDP2 over {n} processes ({over}), full state dict on save"
    if not runtime.has_deepspeed:
        raise ConfigError("strategy 'deepspeed' needs the deepspeed package (pip install deepspeed)")
    if deepspeed_config is None:
        raise ConfigError(
            "strategy 'deepspeed' needs a DeepSpeed config (config/deepspeed/zero2.json or zero3.json)"
        )
    stage = zero_stage(deepspeed_config)
    if runtime.device == "cpu" and runtime.ds_accelerator not in (None, "cpu"):
        raise ConfigError(
            f"strategy 'deepspeed' on CPU: DS_ACCELERATOR={runtime.ds_accelerator!r} names a device this "
            "machine lacks; unset it or set DS_ACCELERATOR=cpu (DeepSpeed's CPU accelerator, over gloo)"
        )
    return f"deepspeed: ZeRO-{stage} over {n} process(es) on {runtime.device}"


def strategy_args(strategy: str) -> dict[str, Any]:
    """The TRL/transformers training arguments a strategy sets (DeepSpeed's file is its own key)."""
    if strategy != "fsdp":
        return {}
    # FSDP2, each decoder/vision block a unit (the model's _no_split_modules), a full state dict on save.
    return {"fsdp": True, "fsdp_config": {"version": 2, "state_dict_type": "FULL_STATE_DICT"}}


class StrategyTrainer:
    """Mixin for our trainers (before the TRL trainer in the bases): FSDP on CPU made real.

    accelerate builds FSDP only on accelerator devices; on CPU it keeps ``MULTI_CPU`` and drops
    the plugin, and the run would be plain DDP. Here, after the accelerator is created, a run
    whose arguments ask for FSDP but whose state dropped it gets the trainer's own plugin and
    ``DistributedType.FSDP``, as on a GPU; ``accelerator.prepare`` then shards the model.
    """

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()  # type: ignore[misc]
        args, accelerator = self.args, self.accelerator  # type: ignore[attr-defined]
        state = accelerator.state
        if args.fsdp_plugin_args is None or state.distributed_type != DistributedType.MULTI_CPU:
            return
        from accelerate.state import PartialState
        from accelerate.utils import FullyShardedDataParallelPlugin

        # As accelerate's own FSDP set-up does: the process state too, which every later
        # AcceleratorState() copies over its own.
        state.distributed_type = PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        state.fsdp_plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
        self.is_fsdp_enabled = True
        log.info("fsdp on CPU: the accelerator state set to FSDP with the trainer's plugin (gloo)")


class StrategyCheck(TrainerCallback):
    """Stops a run, before its first step, whose trainer runs another strategy than it was given.

    ``fsdp``: the accelerator runs FSDP and, with several processes, every parameter is a sharded
    DTensor; ``deepspeed``: the accelerator runs DeepSpeed at the config's ZeRO stage; ``ddp``:
    neither. Logs what it found (``strategy check: ...``).
    """

    def __init__(self, trainer: Any, strategy: str, deepspeed_config: str | None = None) -> None:
        self.trainer, self.strategy, self.deepspeed_config = trainer, strategy, deepspeed_config

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        found = running_strategy(self.trainer)
        want = self.strategy
        if want == "deepspeed" and self.deepspeed_config is not None:
            want = f"deepspeed-zero{zero_stage(self.deepspeed_config)}"
        if found["strategy"] != want:
            raise ConfigError(f"strategy {want!r} was asked for, but the trainer runs {found}")
        log.info("strategy check: %s", found)


def running_strategy(trainer: Any) -> dict[str, Any]:
    """What the trainer's accelerator really runs: the strategy and, for FSDP, the sharded share."""
    accelerator = trainer.accelerator
    kind = accelerator.distributed_type
    if kind == DistributedType.DEEPSPEED:
        stage = accelerator.state.deepspeed_plugin.zero_stage
        return {"strategy": f"deepspeed-zero{stage}", "processes": accelerator.num_processes}
    if kind != DistributedType.FSDP:
        return {"strategy": "ddp", "processes": accelerator.num_processes, "type": kind.value}
    from torch.distributed.tensor import DTensor

    params = list(trainer.model_wrapped.parameters())
    sharded = sum(isinstance(p, DTensor) and any(pl.is_shard() for pl in p.placements) for p in params)
    found = {
        "strategy": "fsdp",
        "processes": accelerator.num_processes,
        "sharded": f"{sharded}/{len(params)}",
    }
    if accelerator.num_processes > 1 and sharded < len(params):
        found["strategy"] = "fsdp-unsharded"
    return found
