"""``safervlm import-artifact``: pin a third-party release with ``dvc import`` for the audit."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from safervlm.report.audit.artifacts import dvc_import, dvc_provenance


def import_artifact_stage(
    repo: str, path: str, rev: str, out: str, project: str, force: bool
) -> dict[str, str]:
    """Import ``path`` of ``repo`` at ``rev`` into ``project/out``; print its provenance."""
    dvc_file = dvc_import(repo, path, rev, out, Path(project), force)
    info = dvc_provenance(dvc_file)
    # The pin is the command's answer (stdout), as `make import-opensafemlrm` shows it.
    print(f"pinned {out}: {info['text']} ({dvc_file})")
    return info


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm import-artifact`` (collected by :func:`safervlm.cli.build_parser`)."""
    p.add_argument("repo", help="git repository URL or local path")
    p.add_argument("path", help="path inside it, e.g. code/evaluation/statistic_results")
    p.add_argument("--rev", required=True, help="tag, branch or commit to pin")
    p.add_argument(
        "--out", required=True, help="folder to import into (relative to --project); out.dvc pins it"
    )
    p.add_argument("--project", default=".", help="the DVC project (git + dvc init) to import into")
    p.add_argument("--force", action="store_true", help="replace an existing import")


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return import_artifact_stage(a.repo, a.path, a.rev, a.out, a.project, a.force)
