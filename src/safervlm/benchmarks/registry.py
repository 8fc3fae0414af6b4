"""Name-keyed registry of benchmark adapters (in the style of lm-evaluation-harness).

Adapter modules decorate their class with ``@register("name")``; importing
:mod:`safervlm.data` imports every adapter module, so the registry is complete once
the package is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from safervlm.data.base import CARD_KEYS, BenchmarkAdapter
from safervlm.errors import ConfigError

logger = logging.getLogger(__name__)

_REGISTRY: dict[str, type[BenchmarkAdapter]] = {}

A = TypeVar("A", bound=type[BenchmarkAdapter])


class UnknownBenchmarkError(ConfigError, KeyError):
    """An unknown benchmark name; catchable as ConfigError or KeyError."""

    __str__ = Exception.__str__  # KeyError would repr() the message


def register(name: str) -> Callable[[A], A]:
    """Class decorator registering an adapter class under ``name``.

    Sets the class's ``name`` attribute and checks it carries a complete card.

    Raises:
        ValueError: If ``name`` is already taken by a different class or the card lacks keys.
    """

    def deco(cls: A) -> A:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"benchmark {name!r} already registered by {existing.__qualname__}")
        missing = [k for k in CARD_KEYS if k not in cls.card]
        if missing:
            raise ValueError(f"adapter {cls.__qualname__} card lacks keys {missing}")
        cls.name = name
        _REGISTRY[name] = cls
        logger.debug("registered benchmark %s -> %s", name, cls.__qualname__)
        return cls

    return deco


def list_benchmarks() -> list[str]:
    """Names of every registered benchmark, sorted."""
    return sorted(_REGISTRY)


def get_adapter(name: str, **options: Any) -> BenchmarkAdapter:
    """Instantiate the adapter registered under ``name``.

    Args:
        name: Registry name, e.g. ``"vlguard"``.
        **options: Adapter-specific constructor options (e.g. ``image_types`` for MM-SafetyBench).

    Raises:
        UnknownBenchmarkError: (a ConfigError and KeyError) listing the known names.
    """
    try:
        cls = _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_benchmarks()) or "(none registered)"
        raise UnknownBenchmarkError(f"unknown benchmark {name!r}; known benchmarks: {known}") from None
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for benchmark {name!r}: {exc}") from exc
