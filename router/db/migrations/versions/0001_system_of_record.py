"""The system of record: ledger, virtual keys, policy version history.

Revision ID: 0001
Revises:
Create Date: 2026-12-02

The ledger's columns are ``LedgerRecord``'s fields in the same order (a test checks they agree); new
fields are added by later migrations, at the end.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _text(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Text, nullable=nullable)


def _int(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer, nullable=False, server_default="0")


def _real(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Float(precision=53), nullable=nullable)


def _flag(name: str) -> sa.Column:
    return sa.Column(name, sa.Boolean, nullable=False, server_default=sa.false())


def upgrade() -> None:
    op.create_table(
        "ledger",
        sa.Column("record_id", sa.Text, primary_key=True),
        _text("request_id", nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        _text("call_id"),
        _text("caller_id"),
        _text("tenant", nullable=False),
        _text("agent"),
        _text("key_id"),
        _text("requested_model"),
        _text("intent"),
        _real("intent_confidence"),
        sa.Column("risks", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        _flag("high_stakes"),
        _text("rule"),
        _text("tier"),
        _text("deployment"),
        _text("model"),
        _text("policy_version"),
        _text("shadow_rule"),
        _text("shadow_tier"),
        _text("shadow_deployment"),
        _real("shadow_cost_usd"),
        _int("fallbacks"),
        _flag("stream"),
        sa.Column("status", sa.Integer, nullable=False),
        _text("error_type"),
        _int("prompt_tokens"),
        _int("completion_tokens"),
        _int("cached_prompt_tokens"),
        _int("cache_creation_tokens"),
        _int("reasoning_tokens"),
        _flag("usage_estimated"),
        _real("cost_usd", nullable=False),
        _real("baseline_cost_usd", nullable=False),
        _flag("interrupted"),
        _real("interrupted_cost_usd", nullable=False),
        _real("classification_ms"),
        _real("overhead_ms"),
        _real("ttft_ms"),
        _real("total_ms"),
        _real("voice_call_seconds"),
    )
    op.create_index("ledger_tenant_call", "ledger", ["tenant", "call_id"])
    op.create_index("ledger_ts", "ledger", ["ts"])
    op.create_index("ledger_tenant_ts", "ledger", ["tenant", "ts"])

    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.Text, primary_key=True),
        _text("tenant", nullable=False),
        _text("key_hash", nullable=False),
        _text("record", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("api_keys_tenant", "api_keys", ["tenant", "created_at"])

    op.create_table(
        "policy_versions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        _text("version", nullable=False),
        _text("shadow_version"),
        _text("path"),
        _text("replica"),
    )


def downgrade() -> None:
    op.drop_table("policy_versions")
    op.drop_table("api_keys")
    op.drop_table("ledger")
