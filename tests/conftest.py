"""Shared fixtures: the repository root, a built tiny model (once per session), and the
one rule for tests that need Slurm: skip without it, fail under SAFERVLM_REQUIRE_SLURM=1."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests never write to the user's tracking DB unless a test opts in.
os.environ.setdefault("SAFERVLM_MLFLOW", "0")


def without_slurm(why: str) -> NoReturn:
    """Skip a test that needs Slurm, naming why; a failure under SAFERVLM_REQUIRE_SLURM=1
    (set by .ci/run and `make test-slurm`, where a cluster is up)."""
    if os.environ.get("SAFERVLM_REQUIRE_SLURM") == "1":
        pytest.fail(f"{why} (SAFERVLM_REQUIRE_SLURM=1)", pytrace=False)
    pytest.skip(why)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slurm_client(*commands): runs these Slurm commands (scontrol, srun, ...); skips "
        "without them on PATH, fails then under SAFERVLM_REQUIRE_SLURM=1",
    )


@pytest.fixture(autouse=True)
def _slurm_client(request: pytest.FixtureRequest) -> None:
    """Applies @pytest.mark.slurm_client (a fixture, so a skip names the test's line)."""
    for mark in request.node.iter_markers("slurm_client"):
        missing = [cmd for cmd in mark.args if shutil.which(cmd) is None]
        if missing:
            without_slurm(f"no Slurm client ({', '.join(missing)}) on PATH")


@pytest.fixture(scope="session")
def no_slurm() -> Callable[[str], NoReturn]:
    """:func:`without_slurm`, for fixtures that find out themselves whether Slurm is there."""
    return without_slurm


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny policy built from the synthetic world's text."""
    from safervlm.embedded import world
    from safervlm.embedded.tiny import TinyDims, build_tiny_model

    out = tmp_path_factory.mktemp("models") / "tiny"
    texts = [world.response_for(t) for t in world.all_tasks()]
    texts += [tpl.format(task=t.text) for t in world.all_tasks() for tpl in world.TRAIN_TEMPLATES]
    build_tiny_model(out, texts, seed=0, dims=TinyDims(vocab_size=600, hidden_size=64, intermediate_size=128))
    return out
