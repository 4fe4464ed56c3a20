"""The whole cost of a voice call: speech quantities, their prices and vendors, the call's outcome, and the
human handoff a policy recommended.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Columns added at the end of ``ledger``, in ``LedgerRecord``'s order (a test checks they agree).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SPEECH_COST_COLUMNS = ("stt_cost_usd", "tts_cost_usd", "telephony_cost_usd")


def upgrade() -> None:
    op.add_column("ledger", sa.Column("stt_seconds", sa.Float(precision=53), nullable=True))
    op.add_column("ledger", sa.Column("tts_characters", sa.Integer, nullable=True))
    op.add_column("ledger", sa.Column("telephony_seconds", sa.Float(precision=53), nullable=True))
    for name in SPEECH_COST_COLUMNS:
        op.add_column("ledger", sa.Column(name, sa.Float(precision=53), nullable=False, server_default="0"))
    op.add_column(
        "ledger",
        sa.Column("speech_vendors", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.add_column("ledger", sa.Column("call_outcome", sa.Text, nullable=True))
    op.add_column("ledger", sa.Column("handoff", sa.Text, nullable=True))


def downgrade() -> None:
    for name in (
        "handoff",
        "call_outcome",
        "speech_vendors",
        *reversed(SPEECH_COST_COLUMNS),
        "telephony_seconds",
        "tts_characters",
        "stt_seconds",
    ):
        op.drop_column("ledger", name)
