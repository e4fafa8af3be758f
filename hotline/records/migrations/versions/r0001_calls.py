"""The calls table: one row per call, its turns and the caller's keyed hash.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("call_sid", sa.String(64), primary_key=True),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
        sa.Column("ended_ms", sa.BigInteger, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(200), nullable=False),
        sa.Column("ended_by", sa.String(32), nullable=False),
        sa.Column("brain", sa.String(32), nullable=False),
        sa.Column("resumes", sa.Integer, nullable=False),
        sa.Column("caller_key", sa.String(64), nullable=True),
        sa.Column("caller_masked", sa.String(32), nullable=False),
        sa.Column("caller_number", sa.String(32), nullable=True),
        sa.Column("turns", JSON, nullable=False),
        sa.Column("barge_ins", sa.Integer, nullable=False),
        sa.Column("handoffs", JSON, nullable=False),
        sa.Column("errors", JSON, nullable=False),
    )
    op.create_index("calls_started", "calls", ["started_ms", "call_sid"])
    op.create_index("calls_caller_started", "calls", ["caller_key", "started_ms"])


def downgrade() -> None:
    op.drop_table("calls")
