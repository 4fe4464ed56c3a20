"""Extract the response schemas the gateway must honour from OpenAI's published OpenAPI document.

    git -C MIRROR show HEAD:openapi.json > /tmp/openapi.json   # github.com/openai/openai-openapi
    python tests/data/openai-openapi/derive.py /tmp/openapi.json COMMIT > tests/data/openai-openapi/responses.json

Keeps, verbatim, the schemas of the 200 answers of ``POST /chat/completions`` and ``GET /models``, OpenAI's error
body (``ErrorResponse``) and everything they reference (``$ref`` closure); nothing is edited. Reading the OpenAPI
3.0 leftovers (``nullable``) as JSON Schema is the validator's job (tests/openai_spec.py), so this file stays a
faithful copy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# The answers, plus the error body every endpoint uses (the spec documents it, not the paths' 4xx/5xx responses).
ROOTS = ("CreateChatCompletionResponse", "CreateChatCompletionStreamResponse", "ListModelsResponse", "ErrorResponse")
PREFIX = "#/components/schemas/"


def references(node: Any) -> set[str]:
    found: set[str] = set()
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(PREFIX):
                found.add(ref.removeprefix(PREFIX))
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def main() -> None:
    document = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    kept: set[str] = set()
    pending = list(ROOTS)
    while pending:
        name = pending.pop()
        if name not in kept:
            kept.add(name)
            pending.extend(references(schemas[name]))
    paths = document["paths"]
    answers = {
        "POST /chat/completions": paths["/chat/completions"]["post"]["responses"]["200"],
        "GET /models": paths["/models"]["get"]["responses"]["200"],
    }
    subset = {
        "source": "https://github.com/openai/openai-openapi (openapi.json)",
        "commit": sys.argv[2],
        "openapi": document["openapi"],
        "info_version": document["info"]["version"],
        "license": "MIT, Copyright (c) OpenAI; see LICENSE beside this file",
        "responses": answers,
        "components": {"schemas": {name: schemas[name] for name in sorted(kept)}},
    }
    json.dump(subset, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
