"""The package's static import graph, and the per-rule code digests built on it.

A job runs the modules that importing its stage module runs: its module-level imports,
transitively, and every package ``__init__`` on the way (the package has no imports inside
functions, tests/test_imports.py). Each rule's ``code`` param is ``{module: digest}`` over
that closure (``rules/common.smk``), so editing a module reruns exactly the jobs that run it.

The Snakefile computes these at every parse, including the no-op rerun, so the parsed import
lists are cached by content hash (``.snakemake/safervlm-imports.json`` in the working
directory): only a file whose bytes changed is parsed again.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

CACHE = Path(".snakemake") / "safervlm-imports.json"


def _imported_names(source: bytes, filename: str) -> list[str]:
    """Dotted names a module's module-level code may import (``from a import b``: ``a``, ``a.b``).

    ``if TYPE_CHECKING:`` blocks are skipped (annotations only, never run); function and
    class bodies' imports are not followed (methods run later, if ever).
    """
    tree = ast.parse(source, filename=filename)
    names: list[str] = []
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return names


class _Package:
    """Every module of a package: its digest and the package modules it imports."""

    def __init__(self, root: Path, cache: Path | None) -> None:
        self.root = root
        sources = {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*.py")
            if "__pycache__" not in p.parts
        }
        self.digests = {rel: hashlib.sha256(b).hexdigest() for rel, b in sources.items()}
        known = _load(cache)
        names = {}
        for rel, blob in sources.items():
            digest = self.digests[rel]
            if digest not in known:
                known[digest] = _imported_names(blob, str(root / rel))
            names[rel] = known[digest]
        if cache is not None:
            _save(cache, {self.digests[rel]: names[rel] for rel in sources})
        self.imports = {rel: self._resolve(ns) for rel, ns in names.items()}

    def _resolve(self, names: list[str]) -> frozenset[str]:
        found = set()
        for name in names:
            parts = name.split(".")
            if parts[0] != self.root.name:
                continue
            stem = "/".join(parts[1:])
            for rel in (f"{stem}.py", f"{stem}/__init__.py" if stem else "__init__.py"):
                if rel in self.digests:
                    found.add(rel)
        return frozenset(found)


def _load(cache: Path | None) -> dict[str, list[str]]:
    if cache is None:
        return {}
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(cache: Path, data: dict[str, list[str]]) -> None:
    """Write the cache atomically (jobs of a cluster run parse the Snakefile concurrently)."""
    try:
        if _load(cache) == data:
            return
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        tmp.replace(cache)
    except OSError:
        pass  # a read-only working directory: parse again next time


@functools.cache
def _package(root: str, cache: str | None) -> _Package:
    return _Package(Path(root), Path(cache) if cache else None)


def code_closure(
    pkg: str | os.PathLike[str], modules: Iterable[str], cache: str | os.PathLike[str] | None = None
) -> list[str]:
    """The package modules a job runs: ``modules`` and every module they import, transitively.

    Every package ``__init__.py`` on the way to a module counts (Python runs it first).
    Returns paths relative to ``pkg``, sorted.
    """
    package = _package(str(Path(pkg).resolve()), str(cache) if cache else None)
    todo = list(modules)
    for rel in todo:
        if rel not in package.digests:
            raise FileNotFoundError(f"code module {Path(pkg) / rel} does not exist")
    seen: set[str] = set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        todo.extend(package.imports[rel] - seen)
        parts = rel.split("/")[:-1]  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        inits = ("/".join([*parts[:i], "__init__.py"]) for i in range(len(parts) + 1))
        todo.extend(i for i in inits if i in package.digests)
    return sorted(seen)


def code_digest(
    pkg: str | os.PathLike[str], modules: Iterable[str], cache: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """``{module: sha256 prefix}`` over :func:`code_closure` — a rule's ``code`` param.

    As a param (not as input files), it reruns a job exactly when a module it runs changed
    (Snakemake's params trigger), and neither mtimes nor the checkout's location matter:
    a clone or a copy elsewhere plans nothing.
    """
    package = _package(str(Path(pkg).resolve()), str(cache) if cache else None)
    return {m: package.digests[m][:16] for m in code_closure(pkg, modules, cache)}
