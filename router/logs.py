"""Structured JSON logs, one object per line, with secrets masked before they are written."""

from __future__ import annotations

import logging
import logging.config
import re
from datetime import UTC, datetime
from typing import Any

import orjson

# API keys of providers and of our own virtual keys, and bearer credentials in any text.
SECRET_PATTERN = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}|\b(sk|sb|pk|rk)-[A-Za-z0-9_\-]{8,}|\b(AKIA|ASIA)[A-Z0-9]{12,}"
)
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


def mask_secrets(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        return f"{match.group(1)}***" if match.group(1) else f"{match.group(0)[:5]}***"

    return SECRET_PATTERN.sub(mask, text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        for key, value in vars(record).items():
            # litellm stamps every record with a marker object of its own.
            if key not in _STANDARD_ATTRIBUTES and not key.startswith(("_", "litellm")):
                entry[key] = mask_secrets(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = mask_secrets(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> dict[str, Any]:
    """Route the gateway's and uvicorn's loggers to JSON on stderr; returns uvicorn's ``log_config``."""
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            # litellm logs request details at debug/info; keep it quiet.
            "LiteLLM": {"level": "WARNING"},
        },
    }
    logging.config.dictConfig(config)
    return config
