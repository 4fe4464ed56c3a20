"""Structured logs never carry secrets."""

from __future__ import annotations

import logging
import sys

import orjson

from router.logs import JsonFormatter, mask_secrets


def test_keys_and_bearer_tokens_are_masked() -> None:
    text = "auth Bearer sb-abc123-XYZsecretvalue and sk-proj-ABCDEFGHIJKLMNOP and AKIAABCDEFGHIJKLMNOP"
    masked = mask_secrets(text)
    for secret in ("sb-abc123-XYZsecretvalue", "sk-proj-ABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP", "XYZsecret"):
        assert secret not in masked
    assert "Bearer ***" in masked and "sk-pr***" in masked


def test_json_lines_with_extras_and_masked_exceptions() -> None:
    record = logging.makeLogRecord(
        {
            "name": "switchboard",
            "levelno": logging.ERROR,
            "levelname": "ERROR",
            "msg": "key %s failed",
            "args": ("sb-k1-supersecretmaterial",),
            "tenant": "acme",
        }
    )
    try:
        raise ValueError("upstream said: invalid key sk-live-0123456789abcdef")
    except ValueError:
        record.exc_info = sys.exc_info()
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["level"] == "error" and entry["logger"] == "switchboard" and entry["tenant"] == "acme"
    assert "supersecretmaterial" not in entry["message"]
    assert "0123456789abcdef" not in entry["exception"] and "ValueError" in entry["exception"]
