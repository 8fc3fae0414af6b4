"""Strategy checks: a strategy that would silently run as another one is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from safervlm.config import GRPOParams, SFTParams
from safervlm.errors import ConfigError
from safervlm.train.strategy import Runtime, check_strategy, strategy_args, zero_stage

CPU2 = Runtime(device="cpu", world_size=2, has_deepspeed=True, ds_accelerator=None)
GPU2 = Runtime(device="cuda", world_size=2, has_deepspeed=True, ds_accelerator=None)


def test_ddp_runs_anywhere() -> None:
    assert check_strategy("ddp", CPU2) == "ddp: 2 replica(s) on cpu"


def test_fsdp_runs_on_cpu_too_but_needs_several_processes() -> None:
    assert check_strategy("fsdp", CPU2).startswith("fsdp: FSDP2 over 2 processes (gloo")
    assert check_strategy("fsdp", GPU2).startswith("fsdp: FSDP2 over 2 processes (cuda)")
    one = Runtime(device="cpu", world_size=1, has_deepspeed=True, ds_accelerator=None)
    with pytest.raises(
        ConfigError, match="strategy 'fsdp' shards the policy over processes, and this run has one"
    ):
        check_strategy("fsdp", one)


def test_strategy_arguments_turn_on_fsdp2_with_a_full_state_dict() -> None:
    assert strategy_args("ddp") == strategy_args("deepspeed") == {}
    assert strategy_args("fsdp") == {
        "fsdp": True,
        "fsdp_config": {"version": 2, "state_dict_type": "FULL_STATE_DICT"},
    }


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"strategy": "deepspeed"}, "strategy: deepspeed and a `deepspeed` config file go together"),
        ({"deepspeed": "config/deepspeed/zero3.json"}, "go together .*strategy='ddp'"),
        ({"nodes": 2, "processes": 3}, "processes=3 must be a multiple of nodes=2"),
        ({"nodes": 2, "processes": 4, "job": {"device": "cpu"}}, "nodes > 1 needs job.device: gpu"),
        ({"strategy": "zero3"}, "strategy"),
        ({"job": {"gpus": 2}}, r"\.job': unknown keys \['gpus'\]"),
    ],
)
def test_config_refuses_a_strategy_or_job_that_cannot_run(keys: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GRPOParams(**keys)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        SFTParams(**keys)  # type: ignore[arg-type]


def test_launch_keys_stay_out_of_the_stage_params() -> None:
    params = GRPOParams(processes=8, nodes=2, job={"mem_mb": 1000}, strategy="fsdp")  # type: ignore[arg-type]
    dumped = params.model_dump()
    assert dumped["strategy"] == "fsdp" and not {"processes", "nodes", "job"} & dumped.keys()
    assert GRPOParams().job.runtime == 1440 and SFTParams().job.runtime == 720


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
