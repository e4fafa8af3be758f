"""Alembic's environment: always online, on the connection the store hands in
(``config.attributes["connection"]``): the store holds the migration lock on it."""

from __future__ import annotations

from alembic import context

from hotline.records.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
