"""``safervlm preflight``: check the endpoint of every served model before running anything.

The same check the Snakefile runs in ``onstart`` (:func:`safervlm.served.preflight_errors`),
by hand: ``safervlm preflight --config config/config.yaml --config config/eval.yaml``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

import yaml
from snakemake.utils import update_config

from safervlm.errors import ConfigError, EndpointError
from safervlm.served import preflight_errors
from safervlm.stages.args import many

log = logging.getLogger(__name__)


def load_configs(paths: Sequence[str]) -> dict[str, Any]:
    """The config files merged in order, as Snakemake merges ``--configfile``s (its own
    ``update_config``: nested mappings merge, a later file's values win)."""
    config: dict[str, Any] = {}
    for path in paths:
        try:
            with open(path) as fh:
                data = yaml.safe_load(fh) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the config ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file must be a mapping")
        update_config(config, data)
    return config


def preflight_stage(configs: Sequence[str], models: Sequence[str] | None, timeout: float) -> dict[str, Any]:
    """Check the served models among ``models`` (default: ``eval.models``); raise on any failure.

    Raises:
        EndpointError: one line per failing model (model, URL, cause).
    """
    config = load_configs(configs)
    names = list(models or config.get("eval", {}).get("models", []))
    local = set(config.get("eval", {}).get("model_paths", {}))
    errors = preflight_errors(config.get("generate", {}), [m for m in names if m not in local], timeout)
    if errors:
        raise EndpointError("\n".join(errors))
    log.info("preflight: every served model among %s answers", names)
    return {"checked": names}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm preflight`` (collected by :func:`safervlm.cli.build_parser`)."""
    many(p, "--config", nargs="+", required=True, help="config YAML files, merged in order as Snakemake does")
    many(p, "--model", nargs="+", default=None, help="models to check (default: eval.models)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per check")


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return preflight_stage(a.config, a.model, a.timeout)
