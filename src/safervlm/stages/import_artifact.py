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


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return import_artifact_stage(a.repo, a.path, a.rev, a.out, a.project, a.force)
