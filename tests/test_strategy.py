"""Strategy checks: a strategy that would silently run as another one is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from safervlm.errors import ConfigError
from safervlm.train.strategy import Runtime, check_strategy, zero_stage

CPU2 = Runtime(device="cpu", world_size=2, has_deepspeed=True, ds_accelerator=None)
GPU2 = Runtime(device="cuda", world_size=2, has_deepspeed=True, ds_accelerator=None)


def test_ddp_runs_anywhere() -> None:
    assert check_strategy("ddp", CPU2) == "ddp: 2 replica(s) on cpu"


def test_fsdp_on_cpu_is_refused_naming_the_strategy_and_the_fallback() -> None:
    with pytest.raises(ConfigError, match="strategy 'fsdp' cannot run on CPU.*silently run DDP"):
        check_strategy("fsdp", CPU2)
    assert check_strategy("fsdp", GPU2).startswith("fsdp: FSDP2 over 2")


@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_deepspeed_reads_the_zero_stage_of_the_shipped_configs(repo_root: Path, name: str) -> None:
    config = repo_root / "config" / "deepspeed" / f"{name}.json"
    assert zero_stage(config) == int(name[-1])
    assert (
        check_strategy("deepspeed", CPU2, config) == f"deepspeed: ZeRO-{name[-1]} over 2 process(es) on cpu"
    )


@pytest.mark.parametrize(
    ("runtime", "config", "message"),
    [
        (Runtime("cpu", 2, False, None), "zero3", "needs the deepspeed package"),
        (CPU2, None, "needs a DeepSpeed config"),
        (Runtime("cpu", 2, True, "cuda"), "zero3", "DS_ACCELERATOR='cuda'"),
        (CPU2, "missing", "cannot read the ZeRO stage"),
    ],
)
def test_deepspeed_without_what_it_needs_is_refused(
    repo_root: Path, runtime: Runtime, config: str | None, message: str
) -> None:
    path = None if config is None else repo_root / "config" / "deepspeed" / f"{config}.json"
    with pytest.raises(ConfigError, match=message):
        check_strategy("deepspeed", runtime, path)


def test_zero_stage_1_and_unknown_strategies_are_refused(tmp_path: Path) -> None:
    (tmp_path / "z1.json").write_text('{"zero_optimization": {"stage": 1}}')
    with pytest.raises(ConfigError, match="ZeRO stage 1; supported: 2, 3"):
        zero_stage(tmp_path / "z1.json")
    with pytest.raises(ConfigError, match=r"unknown strategy 'megatron'; known strategies: \['ddp'"):
        check_strategy("megatron", CPU2)


def test_runtime_reads_torchrun_world_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert Runtime.detect().world_size == 2
    assert Runtime.detect(world_size=4).world_size == 4
