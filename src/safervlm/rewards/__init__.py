"""Reward functions with TRL's signature, looked up by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from safervlm.errors import ConfigError
from safervlm.rewards.structured import (
    DEFAULT_WEIGHTS,
    RewardFunc,
    combine_scores,
    completion_text,
    get_structured_reward,
)

_REWARDS: dict[str, Callable[..., RewardFunc]] = {"structured": get_structured_reward}


def available_rewards() -> list[str]:
    """Sorted names accepted by :func:`get_reward`."""
    return sorted(_REWARDS)


def get_reward(name: str, **params: Any) -> RewardFunc:
    """Build the reward function registered as ``name`` with ``params``.

    Raises:
        ConfigError: for an unknown name (listing the known ones) or bad parameters.
    """
    if name not in _REWARDS:
        raise ConfigError(f"unknown reward {name!r}; known rewards: {available_rewards()}")
    try:
        return _REWARDS[name](**params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for reward {name!r}: {exc}") from exc


__all__ = [
    "DEFAULT_WEIGHTS",
    "RewardFunc",
    "available_rewards",
    "combine_scores",
    "completion_text",
    "get_reward",
    "get_structured_reward",
]
