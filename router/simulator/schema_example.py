"""Build a value that satisfies a JSON schema, for the arguments of simulated tool calls."""

from __future__ import annotations

from typing import Any

_STRING_BY_FORMAT = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_SAMPLE_STRING = "sample"
# Bounds recursive schemas (a tree node whose children are nodes) that require their own type.
_MAX_DEPTH = 8


def example_for_schema(schema: dict[str, Any] | None) -> Any:
    """A deterministic value valid against ``schema``: required properties filled by type, enums by
    their first member, nullable types by their non-null type, local ``$ref``s resolved."""
    return _example(schema or {"type": "object"}, root=schema or {}, depth=0)


def _example(schema: dict[str, Any], root: dict[str, Any], depth: int) -> Any:
    if "$ref" in schema:
        return _example(_resolve_ref(schema["$ref"], root), root, depth + 1)
    for literal_key in ("const", "default"):
        if literal_key in schema:
            return schema[literal_key]
    if schema.get("enum"):
        return schema["enum"][0]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    for union_key in ("anyOf", "oneOf"):
        if union_key in schema:
            return _example(_first_non_null(schema[union_key]), root, depth + 1)
    if "allOf" in schema:
        return _merge_all_of(schema, root, depth)
    schema_type = _schema_type(schema)
    if schema_type == "object" and depth < _MAX_DEPTH:
        properties = schema.get("properties", {})
        return {name: _example(properties.get(name, {}), root, depth + 1) for name in schema.get("required", [])}
    if schema_type == "object":
        return {}
    if schema_type == "array":
        return _array_example(schema, root, depth)
    if schema_type == "string":
        return _string_example(schema)
    if schema_type in ("integer", "number"):
        return _number_example(schema, integer=schema_type == "integer")
    if schema_type == "boolean":
        return True
    if schema_type == "null":
        return None
    return _SAMPLE_STRING


def _resolve_ref(reference: str, root: dict[str, Any]) -> dict[str, Any]:
    if not reference.startswith("#"):
        raise ValueError(f"only local $ref are supported, got {reference!r}")
    target: Any = root
    for segment in filter(None, reference[1:].split("/")):
        target = target[segment.replace("~1", "/").replace("~0", "~")]
    return target


def _first_non_null(alternatives: list[dict[str, Any]]) -> dict[str, Any]:
    for alternative in alternatives:
        if _schema_type(alternative) != "null":
            return alternative
    return alternatives[0] if alternatives else {}


def _schema_type(schema: dict[str, Any]) -> str | None:
    declared = schema.get("type")
    if isinstance(declared, list):
        non_null = [kind for kind in declared if kind != "null"]
        return non_null[0] if non_null else "null"
    if declared is None and "properties" in schema:
        return "object"
    return declared


def _merge_all_of(schema: dict[str, Any], root: dict[str, Any], depth: int) -> Any:
    parts = [_example(part, root, depth + 1) for part in schema["allOf"]]
    if all(isinstance(part, dict) for part in parts):
        merged: dict[str, Any] = {}
        for part in parts:
            merged.update(part)
        return merged
    return parts[0] if parts else {}


def _array_example(schema: dict[str, Any], root: dict[str, Any], depth: int) -> list[Any]:
    length = max(schema.get("minItems", 1), 1)
    if "maxItems" in schema:
        length = min(length, schema["maxItems"])
    declared = schema.get("items")
    items: dict[str, Any] = declared if isinstance(declared, dict) else {}
    if depth >= _MAX_DEPTH:
        return []
    return [_example(items, root, depth + 1) for _ in range(length)]


def _string_example(schema: dict[str, Any]) -> str:
    text = _STRING_BY_FORMAT.get(schema.get("format", ""), _SAMPLE_STRING)
    min_length = schema.get("minLength", 0)
    if len(text) < min_length:
        text = text + "x" * (min_length - len(text))
    if "maxLength" in schema:
        text = text[: schema["maxLength"]]
    return text


def _number_example(schema: dict[str, Any], integer: bool) -> int | float:
    lower, lower_open = _bound(schema, "minimum", "exclusiveMinimum")
    upper, upper_open = _bound(schema, "maximum", "exclusiveMaximum")
    value: float = 1
    if lower is not None and upper is not None:
        if not lower_open:
            value = lower
        elif not upper_open:
            value = upper
        else:
            value = lower + 1 if integer else (lower + upper) / 2
    elif lower is not None and (value < lower or (lower_open and value <= lower)):
        value = lower + 1 if lower_open else lower
    elif upper is not None and (value > upper or (upper_open and value >= upper)):
        value = upper - 1 if upper_open else upper
    step = schema.get("multipleOf")
    if step:
        value = -(-value // step) * step
    return int(value) if integer else float(value)


def _bound(schema: dict[str, Any], inclusive_key: str, exclusive_key: str) -> tuple[float | None, bool]:
    """A bound and whether it is open, for both draft-4 (boolean) and later (numeric) exclusive keywords."""
    exclusive = schema.get(exclusive_key)
    if isinstance(exclusive, int | float) and not isinstance(exclusive, bool):
        return exclusive, True
    if inclusive_key in schema:
        return schema[inclusive_key], exclusive is True
    return None, False
