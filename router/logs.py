"""Structured JSON logs, one object per line, with secrets masked before they are written."""

from __future__ import annotations

import logging
import logging.config
import os
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


# The project's own loggers log at the configured level; every other library (onnxruntime's quantiser logs each
# tensor on the root logger, httpx each request, litellm its calls) only from WARNING, so a start or a request
# prints what an operator acts on.
OWN_LOGGERS = ("switchboard", "router", "classifiers", "uvicorn")
QUIET_LIBRARIES_LEVEL = logging.WARNING
# Servers started in a thread of this process (the embedded provider simulator) are named "switchboard-<name>"
# (router.background); their uvicorn start/stop chatter would read as the gateway's own.
BACKGROUND_THREAD_PREFIX = "switchboard-"
# Read by huggingface_hub, transformers and tqdm when first imported: no progress bars or notices in server logs.
QUIET_ENVIRONMENT = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"}


class BackgroundServerChatter(logging.Filter):
    """Drops uvicorn's info lines from servers running in background threads; their warnings and errors pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno < logging.WARNING
            and record.name.startswith("uvicorn")
            and (record.threadName or "").startswith(BACKGROUND_THREAD_PREFIX)
        )


class QuantiserNotices(logging.Filter):
    """Drops onnxruntime's quantiser advice (it logs on the root logger) from the first start's encoder export."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or f"onnxruntime{os.sep}quantization" not in record.pathname


def configure_logging(level: str) -> dict[str, Any]:
    """Route the gateway's and uvicorn's loggers to JSON on stderr; returns uvicorn's ``log_config``.

    Third-party libraries are held at WARNING unless ``level`` is debug."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    own_level = level.upper()
    libraries_level = own_level if own_level == "DEBUG" else logging.getLevelName(QUIET_LIBRARIES_LEVEL)
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"background": {"()": BackgroundServerChatter}, "quantiser": {"()": QuantiserNotices}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["background", "quantiser"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": libraries_level},
        "loggers": {
            **{name: {"level": own_level} for name in OWN_LOGGERS},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": own_level},
            "uvicorn.access": {"handlers": [], "propagate": True, "level": own_level},
            # litellm logs request details at debug/info; keep it quiet.
            "LiteLLM": {"level": "WARNING"},
        },
    }
    logging.config.dictConfig(config)
    return config
