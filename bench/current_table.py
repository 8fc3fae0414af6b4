"""The table of current figures that opens bench/RESULTS.md, rendered from bench/current.json.

Each row of ``bench/current.json`` names a benchmark script, what its figure measures, the
figure, the goal, the machine, the date, the command that reproduces it, and its source:
a raw results file under ``bench/results/`` (``{"json": ..., "path": [...]}``, with an optional
``"scale"`` such as 100 for a fraction printed in points; a path step
``key=value`` picks the list element whose ``key`` equals ``value``) or the dated section of
RESULTS.md it was read from (``{"section": <heading prefix>}``). Usage::

    .venv/bin/python bench/current_table.py            # print the table
    .venv/bin/python bench/current_table.py --write    # replace it in bench/RESULTS.md
    .venv/bin/python bench/current_table.py --check    # exit 1 when RESULTS.md or a source disagrees

``tests/test_results_table.py`` runs the same checks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CURRENT = BENCH / "current.json"
RESULTS = BENCH / "RESULTS.md"
START, END = "<!-- current-table:start -->\n", "<!-- current-table:end -->"
HEADER = (
    "| benchmark | figure | current | goal | machine | date | reproduce |\n"
    "|---|---|---:|---|---|---|---|\n"
)


def load_rows(path: Path = CURRENT) -> list[dict[str, Any]]:
    """The rows of ``bench/current.json``."""
    rows: list[dict[str, Any]] = json.loads(path.read_text())["rows"]
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    """The Markdown table, one line per row, in the file's order."""
    lines = [
        f"| `{r['script']}` | {r['figure']} | **{r['value']}** | {r['goal'] or '—'} | {r['machine']} "
        f"| {r['date']} | `{r['command']}` |"
        for r in rows
    ]
    return HEADER + "\n".join(lines) + "\n"


def _step(node: Any, step: str) -> Any:
    """One step of a source path: a key, or ``key=value`` picking a list element."""
    if "=" not in step:
        return node[step]
    key, want = step.split("=", 1)
    hits = [item for item in node if str(item.get(key)) == want]
    if len(hits) != 1:
        raise KeyError(f"{len(hits)} elements with {key}={want}")
    return hits[0]


def sections(text: str) -> dict[str, str]:
    """RESULTS.md's ``## `` sections: heading -> body."""
    out: dict[str, str] = {}
    for chunk in text.split("\n## ")[1:]:
        heading, _, body = chunk.partition("\n")
        out[heading] = body
    return out


def source_problems(row: dict[str, Any], results_text: str) -> list[str]:
    """Why a row's figure does not match its source (empty when it does)."""
    src, name = row["source"], f"{row['script']} ({row['figure']})"
    if "json" in src:
        path = ROOT / src["json"]
        if not path.exists():
            return [f"{name}: {src['json']} does not exist"]
        node: Any = json.loads(path.read_text())
        try:
            for step in src["path"]:
                node = _step(node, step)
        except (KeyError, TypeError, IndexError) as err:
            return [f"{name}: {src['json']} has no {'/'.join(src['path'])} ({err})"]
        digits = len(row["value"].split(".")[1]) if "." in row["value"] else 0
        got = f"{float(node) * src.get('scale', 1):.{digits}f}"
        return [] if got == row["value"] else [f"{name}: {src['json']} says {got}, the table {row['value']}"]
    found = [body for heading, body in sections(results_text).items() if heading.startswith(src["section"])]
    if len(found) != 1:
        return [f"{name}: {len(found)} RESULTS.md sections start with {src['section']!r}"]
    if row["value"] not in found[0]:
        return [f"{name}: section {src['section']!r} does not print {row['value']}"]
    return []


def table_in(results_text: str) -> str:
    """The table between the markers of RESULTS.md."""
    if START not in results_text or END not in results_text:
        raise ValueError(f"{RESULTS} has no {START.strip()} ... {END} markers")
    return results_text.split(START, 1)[1].split(END, 1)[0]


def problems(rows: list[dict[str, Any]], results_text: str) -> list[str]:
    """Every disagreement: the table, each row's source, a script without a row."""
    out = [p for row in rows for p in source_problems(row, results_text)]
    if table_in(results_text) != render(rows):
        out.append("the table in bench/RESULTS.md is stale: run bench/current_table.py --write")
    scripts = {p.name for p in BENCH.glob("*.py")} - {Path(__file__).name}
    named = {r["script"] for r in rows}
    out += [f"{s}: no row in bench/current.json" for s in sorted(scripts - named)]
    out += [f"{s}: a row for a script that does not exist" for s in sorted(named - scripts)]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the table in bench/RESULTS.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when anything disagrees")
    args = parser.parse_args()
    rows, text = load_rows(), RESULTS.read_text()
    if args.write:
        head, rest = text.split(START, 1)
        RESULTS.write_text(head + START + render(rows) + END + rest.split(END, 1)[1])
        text = RESULTS.read_text()
    if args.check:
        found = problems(rows, text)
        sys.stderr.write("".join(f"{p}\n" for p in found))
        return 1 if found else 0
    if not args.write:
        sys.stdout.write(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
