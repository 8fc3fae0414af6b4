"""The import structure that exact rerun tracking and the architecture rely on.

Rules track the static, module-level import closure of each stage module
(``workflow_support.code_closure``): an import inside a function would run code the rule
does not track. Packages import one way (no cycles), and the CLI only dispatches.
"""

from __future__ import annotations

import argparse
import ast
import graphlib
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from safervlm.cli import build_parser
from safervlm.workflow_support import code_closure, stage_module

PKG = ROOT / "src" / "safervlm"
# Parse-time helpers of the Snakefile, never run inside a job.
NOT_JOB_CODE = {"workflow_support.py"}


# The layering (docs: ARCHITECTURE.md, README "Architecture"): a room imports only rooms of its
# own layer or below. Leaf modules (config, io, schema, text, markers, tracking, …) are below all.
LAYERS = (
    ("workflow_support", "cli", "prefork"),
    ("stages",),
    ("curate", "train", "evaluate", "report"),
    ("metrics", "rewards"),
    ("judge",),
    ("models", "benchmarks", "sources", "embedded", "data"),
)
BOTTOM = len(LAYERS)


def _modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def _package_of(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "safervlm"


def _room(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "safervlm"]
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "safervlm":
        if node.module == "safervlm":  # from safervlm import tracking: the module itself
            return [f"safervlm.{a.name}" for a in node.names if not a.name.startswith("__")]
        return [node.module]
    return []


def test_no_package_module_imports_inside_a_function() -> None:
    found = []
    for path in _modules():
        if path.name in NOT_JOB_CODE:
            continue
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                for node in ast.walk(fn):
                    found += [f"{path.relative_to(PKG)}: {m}" for m in _imported(node)]
    assert not found, "imports the rules cannot track (move them to module level):\n" + "\n".join(found)


def test_no_import_cycles_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for path in _modules():
        room = _room(path)
        deps = graph.setdefault(room, set())
        for node in ast.walk(ast.parse(path.read_text())):
            deps |= {_package_of(m) for m in _imported(node)} - {room, "safervlm"}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle between packages: {' -> '.join(exc.args[1])}")
    assert order[-1] == "stages", order
    rank = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}
    upward = [
        f"{a} -> {b}" for a, deps in graph.items() for b in deps if rank.get(a, BOTTOM) > rank.get(b, BOTTOM)
    ]
    assert not upward, f"imports against the layering {LAYERS}: {upward}"


def test_cli_imports_no_stage_and_every_subcommand_has_a_stage_module() -> None:
    assert code_closure(PKG, ["cli.py"]) == ["__init__.py", "cli.py", "errors.py", "prefork.py"]
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in sub.choices:
        module = importlib.import_module(f"safervlm.{stage_module(command)[:-3].replace('/', '.')}")
        assert callable(getattr(module, "main", None)), f"{command}: {module.__name__} has no main()"


def test_repeated_list_options_accumulate_in_every_subcommand() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    lists = 0
    for command, parser in sub.choices.items():
        for action in parser._actions:
            if action.option_strings and action.nargs in ("*", "+"):
                lists += 1
                assert isinstance(action, argparse._ExtendAction), f"{command} {action.option_strings}"
    assert lists >= 10
    args = build_parser().parse_args(
        ["import-opensafemlrm", "d", "--out", "o", "--pair", "a=b", "--pair", "c=d", "e=f"]
    )
    assert args.pair == ["a=b", "c=d", "e=f"]


def test_each_stage_declares_its_own_flags_and_a_run_parses_only_its_own() -> None:
    """``stages/<x>.py`` holds the flags of ``safervlm x`` (cli lists names only); parsing one
    subcommand imports that stage module and no other."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in sub.choices:
        module = importlib.import_module(f"safervlm.{stage_module(command)[:-3].replace('/', '.')}")
        assert callable(getattr(module, "add_arguments", None)), f"{command}: no add_arguments()"
    code = (
        "import sys\nfrom safervlm.cli import build_parser\n"
        "a = build_parser(['score']).parse_args(['score', '--judgments', 'j', '--out', 'o'])\n"
        "print(a.n_bootstrap, *sorted(m for m in sys.modules if m.startswith('safervlm.stages.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    bootstrap, *stages = out.split()
    assert bootstrap == "1000" and "safervlm.stages.score" in stages
    assert set(stages) <= {"safervlm.stages.args", "safervlm.stages.score"}, stages
