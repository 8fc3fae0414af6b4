"""MkDocs hook: the reference pages generated from the code at build time.

A page holding ``<!-- generated:cli -->`` gets every ``safervlm`` subcommand with its flags,
read from the real parser (``safervlm.cli.build_parser``); ``<!-- generated:config -->`` gets
every config key with its type, default and description, read from the JSON schema the
pydantic models generate (``safervlm.config.schema.config_schema``, the one Snakemake
validates against). Nothing is copied by hand, so the pages cannot drift from the code.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

CLI_MARK = "<!-- generated:cli -->"
CONFIG_MARK = "<!-- generated:config -->"


def _cell(text: object) -> str:
    """Text safe inside one Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _flag_row(action: argparse.Action) -> str:
    """One table row for an argparse action: flags, required/default, help."""
    names = ", ".join(f"`{n}`" for n in action.option_strings) or f"`{action.dest}` (positional)"
    if action.required or not action.option_strings:
        default = "required"
    elif action.default in (None, argparse.SUPPRESS, False, []):
        default = ""
    else:
        default = f"`{_cell(action.default)}`"
    extra = f" (one of: {', '.join(map(str, action.choices))})" if action.choices else ""
    repeat = " (repeatable)" if isinstance(action, argparse._AppendAction) else ""
    return f"| {names} | {default} | {_cell(action.help or '')}{extra}{repeat} |"


def cli_reference() -> str:
    """Markdown for every subcommand of ``safervlm``, in the parser's order."""
    from safervlm.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    out: list[str] = []
    for name, command in sub.choices.items():
        out += [f"## `safervlm {name}`", "", _cell(command.description or helps.get(name) or ""), ""]
        out += ["```text", command.format_usage().strip(), "```", ""]
        rows = [_flag_row(a) for a in command._actions if not isinstance(a, argparse._HelpAction)]
        if rows:
            out += ["| flag | default | help |", "|---|---|---|", *rows, ""]
    return "\n".join(out)


def _type(spec: dict[str, Any]) -> str:
    """A short type name for a JSON-schema node."""
    if "enum" in spec:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    if "type" in spec:
        kind = spec["type"]
        return " \\| ".join(kind) if isinstance(kind, list) else str(kind)
    if "anyOf" in spec:
        return " \\| ".join(_type(s) for s in spec["anyOf"])
    return "any"


def _config_rows(props: dict[str, Any], prefix: str) -> list[str]:
    """Table rows for every key under ``props``, nested sections flattened to dotted keys."""
    rows: list[str] = []
    for key, spec in props.items():
        nested = spec.get("properties")
        default = "" if nested else f"`{_cell(json.dumps(spec.get('default')))}`"
        rows.append(f"| `{prefix}{key}` | {_type(spec)} | {default} | {_cell(spec.get('description', ''))} |")
        if nested:
            rows += _config_rows(nested, f"{prefix}{key}.")
    return rows


def config_reference() -> str:
    """Markdown for every config key, one table per top-level section."""
    from safervlm.config.schema import config_schema

    out: list[str] = []
    for key, spec in config_schema()["properties"].items():
        out += [f"## `{key}`", "", _cell(spec.get("description", "")), ""]
        out += ["| key | type | default | description |", "|---|---|---|---|"]
        out += _config_rows({key: spec}, "") + [""]
    return "\n".join(out)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs event: fill the generated sections of the reference pages."""
    if CLI_MARK in markdown:
        markdown = markdown.replace(CLI_MARK, cli_reference())
    if CONFIG_MARK in markdown:
        markdown = markdown.replace(CONFIG_MARK, config_reference())
    return markdown
