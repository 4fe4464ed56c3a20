"""OpenAI's published response schemas (tests/data/openai-openapi) as ``jsonschema`` validators.

Two readings of the same document:

- ``published``: the spec as OpenAI wrote it. Its objects are open (no ``additionalProperties: false``), so any
  extra field passes; what fails is a missing required field, a wrong type or a ``null`` where the spec has none.
- ``closed``: every object of the spec closed to the fields it documents, except the one extension the gateway
  documents itself (the ``switchboard`` cost object of a streamed answer's final usage chunk). This is what "no
  provider-specific extras" means, checked mechanically.

The document still uses OpenAPI 3.0's ``nullable: true`` in places; JSON Schema 2020-12 ignores that keyword, so it
is read here as "or null", which is what it means in OpenAPI.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator

SPEC_FILE = Path(__file__).resolve().parent / "data" / "openai-openapi" / "responses.json"
COMPLETION = "CreateChatCompletionResponse"
CHUNK = "CreateChatCompletionStreamResponse"
MODELS = "ListModelsResponse"
ERROR = "ErrorResponse"
Reading = Literal["published", "closed"]

# What the gateway adds to OpenAI's shapes, and where (README "Quick start": the final usage chunk's cost object).
GATEWAY_EXTENSIONS: dict[str, dict[str, Any]] = {
    CHUNK: {
        "switchboard": {
            "type": "object",
            "required": ["request_id", "cost_usd", "baseline_cost_usd", "savings_usd"],
            "properties": {
                "request_id": {"type": "string"},
                "cost_usd": {"type": "number", "minimum": 0},
                "baseline_cost_usd": {"type": "number", "minimum": 0},
                "savings_usd": {"type": "number"},
            },
            "additionalProperties": False,
        }
    }
}


def _nullable_as_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_as_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _closed(node: Any) -> Any:
    """Every object schema that lists its properties closed to them (where the spec says nothing itself)."""
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: _closed(value) for key, value in node.items()}
    if "properties" in closed and "additionalProperties" not in closed:
        closed["additionalProperties"] = False
    return closed


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_FILE.read_text(encoding="utf-8"))


@cache
def _components(reading: Reading) -> dict[str, Any]:
    schemas = _nullable_as_json_schema(copy.deepcopy(spec()["components"]["schemas"]))
    if reading == "closed":
        schemas = _closed(schemas)
        for name, extra in GATEWAY_EXTENSIONS.items():
            schemas[name]["properties"].update(extra)
    return schemas


@cache
def validator(name: str, reading: Reading = "published") -> Draft202012Validator:
    """A validator of schema ``name``; its ``$ref``s resolve inside the extract, as in the original document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": _components(reading)}}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def violations(name: str, instance: Any, reading: Reading = "published") -> list[str]:
    """Every way ``instance`` breaks schema ``name``, as ``path: message`` lines (empty when it conforms)."""
    found = []
    for error in validator(name, reading).iter_errors(instance):
        where = "/".join(str(part) for part in error.absolute_path) or "(top)"
        # anyOf/oneOf failures say little by themselves; their closest sub-error names the offending field.
        detail = min(error.context, key=lambda e: len(e.absolute_path), default=error) if error.context else error
        found.append(f"{where}: {detail.message[:200]}")
    return found
