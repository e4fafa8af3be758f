"""Call records: every call remembered in a database (SQLite by default, PostgreSQL when named).

A peer of :mod:`hotline.server` (it imports nothing of it): the server builds a
:class:`~hotline.records.model.CallRecord` when a call ends and hands it to the
:class:`~hotline.records.writer.RecordWriter`, which writes it off the call's hot path (a
bounded queue drained by one task; a database that is down keeps records in memory, then in a
local spool file, until it is back). :mod:`hotline.records.store` is the database
(SQLAlchemy 2 async: aiosqlite, asyncpg) with its Alembic migrations
(:mod:`hotline.records.migrations`), applied at start-up under a lock so replicas that start
together migrate once. :mod:`hotline.records.privacy` keeps callers' numbers out of the rows
(a keyed hash and a masked form), :mod:`hotline.records.summary` writes the call's summary and
:mod:`hotline.records.notify` tells the owner (a signed webhook, an SMS through Twilio).
"""
