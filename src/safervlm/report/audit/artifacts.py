"""The artifacts an audit reads: per-sample judgments, their md5 and the pins in ``dvc.lock``."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from safervlm.errors import InputError, SafervlmError
from safervlm.io import md5_file, read_parquet
from safervlm.schema import JUDGMENT_COLUMNS

JUDGMENTS = "judgments.parquet"
# One judge writes judgments.parquet; each of several judges (eval.judges) its own
# judgments.<label>.parquet next to the responses (rules/common.smk, judged()).
_JUDGMENTS_NAME = re.compile(r"judgments(\.[A-Za-z0-9_-]+)?\.parquet")


def judgments_name(name: str) -> str:
    """``name`` when it is a judgments file name (never a path), else InputError."""
    if not _JUDGMENTS_NAME.fullmatch(name):
        raise InputError(f"--judgments-name {name!r} is not judgments.parquet or judgments.<judge>.parquet")
    return name


def judgments_path(results: Path, model: str, bench: str, name: str = JUDGMENTS) -> Path:
    """Where the judgments of one model on one benchmark are (``rules/evaluate.smk``)."""
    return results / "eval" / model / bench / judgments_name(name)


def dvc_pins(lock: str | os.PathLike[str] | None, root: Path) -> dict[str, str]:
    """Absolute path -> md5 of every file out pinned in ``dvc.lock`` (directories skipped)."""
    if not lock or not Path(lock).is_file():
        return {}
    try:
        doc = yaml.safe_load(Path(lock).read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", path=lock) from exc
    pins: dict[str, str] = {}
    for stage in (doc.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            md5 = str(out.get("md5", ""))
            if md5 and not md5.endswith(".dir"):
                pins[str((root / out["path"]).resolve())] = md5
    return pins


@dataclass
class Artifacts:
    """The per-sample judgments found under a results folder, hashed once."""

    results: Path
    name: str = JUDGMENTS
    md5: dict[str, str] = field(default_factory=dict)
    _judges: dict[str, set[str]] = field(default_factory=dict)

    def path(self, model: str, bench: str) -> Path:
        """The judgments file of ``model`` on ``bench``."""
        return judgments_path(self.results, model, bench, self.name)

    def has(self, model: str, bench: str) -> bool:
        """Whether the judgments of ``model`` on ``bench`` exist."""
        return self.path(model, bench).is_file()

    def judges(self, paths: Sequence[Path]) -> set[str]:
        """The judges (``name@version``, the ``judge`` column) that wrote these judgments."""
        out: set[str] = set()
        for p in paths:
            key = str(p.resolve())
            if key not in self._judges:
                column = read_parquet(p, required=["judge"])["judge"]
                self._judges[key] = {str(j) for j in column.dropna()}
            out |= self._judges[key]
        return out

    def digest(self, paths: Sequence[Path]) -> str:
        """One md5 for a cell's artifacts (the file md5 itself when there is one file)."""
        sums = []
        for p in paths:
            key = str(p.resolve())
            if key not in self.md5:
                self.md5[key] = md5_file(p)
            sums.append(self.md5[key])
        if len(sums) == 1:
            return sums[0]
        return hashlib.md5("\n".join(sums).encode()).hexdigest()


def load_judgments(
    results: Path, pairs: Iterable[tuple[str, str]], models: Iterable[str], name: str = JUDGMENTS
) -> pd.DataFrame:
    """Every ``eval/<model>/<bench>/<name>`` (the judgments of one judge) for the given models."""
    wanted = set(models) | {m for p in pairs for m in p}
    frames = []
    for model in sorted(wanted):
        for path in sorted((results / "eval" / model).glob(f"*/{judgments_name(name)}")):
            frames.append(read_parquet(path, required=JUDGMENT_COLUMNS))
    if not frames:
        return pd.DataFrame(columns=JUDGMENT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def pin_status(
    arts: Artifacts, paths: Sequence[Path], pins: Mapping[str, str], cell_pin: str, md5: str
) -> str:
    """``pinned`` when every file's md5 equals dvc.lock's (or the cell's own pinned md5)."""
    if cell_pin:
        return "pinned" if cell_pin == md5 else "differs from pin"
    file_pins = [pins.get(str(p.resolve())) for p in paths]
    if not pins or any(pin is None for pin in file_pins):
        return "not pinned"
    same = all(pin == arts.md5[str(p.resolve())] for p, pin in zip(paths, file_pins, strict=True))
    return "pinned" if same else "differs from pin"


def dvc_provenance(dvc_file: Path) -> dict[str, str]:
    """Repository, revision (and the commit it resolved to) and md5 of a ``dvc import``.

    Returns:
        ``{"repo", "rev", "rev_lock", "path", "md5", "text"}``; empty values (and ``text``
        saying so) when there is no ``.dvc`` file: the folder is then not pinned.
    """
    empty = {"repo": "", "rev": "", "rev_lock": "", "path": "", "md5": ""}
    if not dvc_file.is_file():
        return {**empty, "text": f"not pinned (no {dvc_file.name})"}
    try:
        doc = yaml.safe_load(dvc_file.read_text()) or {}
        dep = (doc.get("deps") or [{}])[0]
        repo = dep.get("repo") or {}
        out = (doc.get("outs") or [{}])[0]
        info = {
            "repo": str(repo.get("url", "")),
            "rev": str(repo.get("rev", "")),
            "rev_lock": str(repo.get("rev_lock", "")),
            "path": str(dep.get("path", "")),
            "md5": str(out.get("md5", "")),
        }
    except (yaml.YAMLError, AttributeError, IndexError, KeyError, TypeError) as exc:
        raise InputError(f"not a dvc import file: {exc}", path=dvc_file) from exc
    where = f"{info['repo']}:{info['path']} @ {info['rev'] or '(default)'}"
    text = f"{where} ({info['rev_lock'][:12]}), md5 {info['md5']}"
    return {**info, "text": text}


def dvc_pin_status(dvc_file: Path) -> str:
    """``pinned`` when the imported folder is what its ``.dvc`` file pins (``dvc status``
    reports nothing), ``differs from pin`` when DVC sees a change, ``not pinned`` without a
    ``.dvc`` file, ``not verified`` when DVC cannot check it (e.g. outside a DVC project)."""
    if not dvc_file.is_file():
        return "not pinned"
    # From the DVC project's root: a relative repository URL in the .dvc file is relative to it.
    where = dvc_file.resolve()
    root = next((p for p in where.parents if (p / ".dvc").is_dir()), None)
    if root is None:
        return "not verified (not in a DVC project)"
    cmd = [sys.executable, "-m", "dvc", "status", "--json", str(where.relative_to(root))]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        return "not verified (dvc status failed)"
    lines = [ln for ln in done.stdout.splitlines() if ln.strip().startswith(("{", "["))]
    return "pinned" if lines and lines[-1].strip() in ("{}", "[]") else "differs from pin"


def dvc_import(
    repo: str, path: str, rev: str, out: str | os.PathLike[str], project: Path, force: bool = False
) -> Path:
    """Pin ``path`` of the git repository ``repo`` at ``rev`` into ``project/out`` with
    ``dvc import`` (``out.dvc`` records repository, revision, resolved commit and md5;
    ``dvc update`` / ``dvc pull`` then work as usual).

    Returns:
        The ``.dvc`` file.

    Raises:
        SafervlmError: with DVC's own message when the import fails (not a DVC project, no
            such path or revision, an existing import without ``force``).
    """
    target = project / out
    target.parent.mkdir(parents=True, exist_ok=True)  # dvc import needs the folder to exist
    cmd = [sys.executable, "-m", "dvc", "import", repo, path, "--rev", rev, "-o", str(out)]
    done = subprocess.run(
        [*cmd, *(["--force"] if force else [])], cwd=project, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SafervlmError(
            f"dvc import {repo} {path} --rev {rev} failed: {done.stderr.strip() or done.stdout.strip()}"
        )
    return Path(f"{target}.dvc")
