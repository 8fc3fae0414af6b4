"""Shared fixtures: the repository root, and a built tiny model (once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests never write to the user's tracking DB unless a test opts in.
os.environ.setdefault("SAFERVLM_MLFLOW", "0")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny policy built from the synthetic world's text."""
    from safervlm.data import world
    from safervlm.models.tiny import TinyDims, build_tiny_model

    out = tmp_path_factory.mktemp("models") / "tiny"
    texts = [world.response_for(t) for t in world.all_tasks()]
    texts += [tpl.format(task=t.text) for t in world.all_tasks() for tpl in world.TRAIN_TEMPLATES]
    build_tiny_model(out, texts, seed=0, dims=TinyDims(vocab_size=600, hidden_size=64, intermediate_size=128))
    return out
