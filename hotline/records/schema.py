"""The tables (SQLAlchemy Core). The migrations in :mod:`hotline.records.migrations` build them;
this module is what the queries use, and a test checks the two agree.

``calls``: one row per call (a call resumed on another replica is merged into its row).
Times are integer milliseconds since the epoch (UTC): exact across SQLite and PostgreSQL, and
the ``(started_ms, call_sid)`` pair is the keyset cursor of ``GET /history``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = ["calls", "metadata"]

metadata = sa.MetaData()

#: JSON on SQLite (text), JSONB on PostgreSQL.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

calls = sa.Table(
    "calls",
    metadata,
    sa.Column("call_sid", sa.String(64), primary_key=True),
    sa.Column("started_ms", sa.BigInteger, nullable=False),
    sa.Column("ended_ms", sa.BigInteger, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("outcome", sa.String(200), nullable=False),
    sa.Column("ended_by", sa.String(32), nullable=False),
    sa.Column("brain", sa.String(32), nullable=False),
    sa.Column("resumes", sa.Integer, nullable=False),
    # the caller: a keyed hash (recognises them), a masked form (shown), the number only with
    # HOTLINE_STORE_CALLER_NUMBERS=1
    sa.Column("caller_key", sa.String(64), nullable=True),
    sa.Column("caller_masked", sa.String(32), nullable=False),
    sa.Column("caller_number", sa.String(32), nullable=True),
    sa.Column("turns", JSON, nullable=False),
    sa.Column("barge_ins", sa.Integer, nullable=False),
    sa.Column("handoffs", JSON, nullable=False),
    sa.Column("errors", JSON, nullable=False),
    # revision 0002
    sa.Column("summary", sa.Text, nullable=True),
    sa.Column("summary_by", sa.String(16), nullable=True),
    sa.Index("calls_started", "started_ms", "call_sid"),
    sa.Index("calls_caller_started", "caller_key", "started_ms"),
)
