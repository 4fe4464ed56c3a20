"""The price table shipped as ``litellm_prices.json``: litellm's bundled model cost map, cut to what pricing reads.

Reading the table costs milliseconds; importing litellm for its ``model_cost`` cost seconds at every start
(and litellm is needed only by deployments that are not OpenAI-compatible). The table is derived from the cost
map in the pinned litellm wheel (``model_prices_and_context_window_backup.json``, MIT licence, © Berri AI),
located through its distribution metadata so litellm is not imported. Regenerate it after changing the pin:

    python -m router.accounting.price_table

A test checks the shipped table equals the one derived from the installed litellm.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).resolve().parent / "litellm_prices.json"
LITELLM_COST_MAP_FILE = "litellm/model_prices_and_context_window_backup.json"
# Per entry: what ``router.accounting.pricing`` reads.
KEPT_FIELDS = (
    "litellm_provider",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
)


def installed_cost_map() -> tuple[str, dict[str, Any]]:
    """(litellm version, its bundled cost map), read from the installed wheel's files."""
    distribution = importlib.metadata.distribution("litellm")
    path = Path(str(distribution.locate_file(LITELLM_COST_MAP_FILE)))
    return distribution.version, json.loads(path.read_text())


def derive(cost_map: Mapping[str, Any], litellm_version: str) -> dict[str, Any]:
    models = {
        name: {field: entry[field] for field in KEPT_FIELDS if field in entry}
        for name, entry in cost_map.items()
        if isinstance(entry, Mapping) and isinstance(entry.get("input_cost_per_token"), int | float)
    }
    return {
        "source": {
            "package": "litellm",
            "version": litellm_version,
            "file": LITELLM_COST_MAP_FILE,
            "licence": "MIT, Copyright (c) 2023 Berri AI",
        },
        "models": models,
    }


def load_table(path: Path = TABLE_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


def main() -> None:
    version, cost_map = installed_cost_map()
    TABLE_PATH.write_text(json.dumps(derive(cost_map, version), indent=0, sort_keys=True) + "\n")
    print(f"wrote {TABLE_PATH} from litellm {version}")


if __name__ == "__main__":
    main()
