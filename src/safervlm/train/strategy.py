"""Which distributed strategies can really run here: refuse one that would silently become another.

``ddp`` (the default) replicates the policy on each process; ``fsdp`` shards it with FSDP2
(full state dict on save); ``deepspeed`` runs ZeRO-2 or ZeRO-3 from ``config/deepspeed/*.json``.

What was measured on this project's CPU machines (torch 2.13, accelerate 1.15, deepspeed 0.19):

- FSDP2 itself shards on CPU over gloo (``torch.distributed.fsdp.fully_shard``: DTensor
  parameters, a full state dict gathers on rank 0), but accelerate turns FSDP on only for GPU-like
  devices: with ``use_cpu`` (``DistributedType.MULTI_CPU``) it ignores the FSDP plugin and wraps
  the model in DDP, without a warning. So ``fsdp`` needs an accelerator device.
- DeepSpeed's CPU accelerator (found without a GPU, or ``DS_ACCELERATOR=cpu``) runs ZeRO-2 and
  ZeRO-3 over gloo without oneCCL or intel-extension-for-pytorch; ZeRO-3 partitions every
  parameter, and the safety-aware rollout generates with them gathered (tests/test_equivalence.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from safervlm.errors import ConfigError

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
        ConfigError: an unknown strategy, or one that would silently run as something else
            (FSDP under accelerate on CPU becomes DDP), or lacks what it needs.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; known strategies: {list(STRATEGIES)}")
    n = runtime.world_size
    if strategy == "ddp":
        return f"ddp: {n} replica(s) on {runtime.device}"
    if strategy == "fsdp":
        if runtime.device == "cpu":
            raise ConfigError(
                "strategy 'fsdp' cannot run on CPU: accelerate enables FSDP only on accelerator devices "
                "and would silently run DDP instead (unsharded, same weights as 'ddp'). Use 'ddp', or "
                "'deepspeed' with a ZeRO-3 config for sharded parameters on CPU."
            )
        return f"fsdp: FSDP2 over {n} process(es) on {runtime.device}, full state dict on save"
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
