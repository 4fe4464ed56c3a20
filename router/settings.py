"""The one settings object: environment variables (``SWITCHBOARD_*``, plus ``REDIS_URL``) and CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore")

    config: Path | None = Field(default=None, description="Gateway YAML; unset = the embedded simulator default.")
    policy: Path | None = Field(default=None, description="Overrides the policy file named by the config.")
    host: str = "127.0.0.1"
    port: int = 4000
    workers: int = 1
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("SWITCHBOARD_REDIS_URL", "REDIS_URL"))
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL system of record (ledger, keys, policy history) shared by replicas; "
        "unset = SQLite files in the data directory.",
    )
    admin_key: str | None = Field(default=None, description="Bearer key for /admin endpoints.")
    require_keys: bool = Field(
        default=False, description="Refuse /v1 requests without a virtual key even before any key is issued."
    )
    data_dir: Path = Field(default=Path(".switchboard"), description="Ledger, spool, traffic log, caches.")
    traffic_log: Path | None = Field(
        default=None, description="Append a PII-masked JSONL log of every turn here (for replay); off when unset."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = Field(default=True, description="One JSON line per request at info (no caller text).")
    classifier: Literal["on", "off"] = "on"
    classifier_model: Path | None = Field(default=None, description="turn model (.npz); unset = the shipped one.")
    call_ttl_seconds: float = Field(
        default=4 * 3600, gt=0, description="How long a call's state outlives its last turn."
    )
    watch_policy: bool = Field(default=True, description="Reload the policy when its file changes.")
    # Edge limits (see "Security model" in the README).
    max_header_bytes: int = Field(
        default=32 * 1024, gt=0, description="Request line plus headers of one request, in bytes; more is a 431."
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time to send the request line and headers; a connection idle or slower closes."
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Time to send the body once the headers are in; slower is a 408."
    )
    keep_alive_seconds: int = Field(default=5, gt=0, description="An idle keep-alive connection closes after this.")
    metrics_token: str | None = Field(
        default=None, description="Bearer token /metrics, /docs and /openapi.json require (the admin key works too)."
    )
    docs: bool = Field(default=True, description="Serve /docs and /openapi.json.")
    metrics_label_values: int = Field(
        default=100, gt=0, description="Distinct tenants (and agents) a process labels; later ones count as 'other'."
    )
    metrics_agents: list[str] = Field(
        default_factory=list, description="With keys, agents from X-Agent that may be labels (pinned ones always are)."
    )

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.sqlite3"
