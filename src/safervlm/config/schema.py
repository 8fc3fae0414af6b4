"""Generate the JSON schema Snakemake validates the config against, from the models.

``python -m safervlm.config.schema > workflow/schemas/config.schema.yaml`` (``make schema``)
rewrites the checked-in file; a test fails when the two differ.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from safervlm.config.pipeline import PipelineConfig

SCHEMA_PATH = "workflow/schemas/config.schema.yaml"
COMMENT = (
    "GENERATED from src/safervlm/config (the models are the one declaration of every key): "
    "do not edit; run `make schema` after changing a model."
)


class _ConfigSchema(GenerateJsonSchema):
    """Pydantic's JSON schema, with the defaults Snakemake's ``set_default`` needs."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        """A ``default_factory`` default too: ``{}`` for a section (its keys fill in themselves)."""
        if "default_factory" not in schema:
            return super().get_default_value(schema)
        if schema.get("default_factory_takes_data"):
            return NoDefault
        value = schema["default_factory"]()  # type: ignore[call-arg]
        return {} if isinstance(value, BaseModel) else value


def _strip_titles(node: Any) -> Any:
    """Drop pydantic's generated titles (the keys already name things)."""
    if isinstance(node, dict):
        # A string under "title" is pydantic's; a property named "title" would hold a dict.
        return {k: _strip_titles(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Every ``$ref`` to ``$defs`` replaced by the definition, the ref's siblings winning.

    A section then reads as one tree, as a user looks it up: every key carries its own
    ``description`` (a section's is its model's docstring) and ``default``.
    """
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].removeprefix("#/$defs/")]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}


def config_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of the whole config file, sections inlined."""
    schema = PipelineConfig.model_json_schema(schema_generator=_ConfigSchema)
    schema = _inline(schema, schema.get("$defs", {}))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **_strip_titles(schema)}


def render() -> str:
    """The schema file's text: JSON (which is YAML too), keys in declaration order.

    JSON because Snakemake's ``validate()`` reads the schema at every parse, the no-op rerun
    included, and tries JSON first: the same schema as block YAML took ~0.5 s to load
    (pure-Python YAML), as JSON a few milliseconds.
    """
    schema = {"$comment": COMMENT, **config_schema()}
    return json.dumps(schema, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    """Write the schema to stdout."""
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
