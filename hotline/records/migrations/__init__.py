"""Alembic migrations of the records database (``versions/``), run by
:func:`hotline.records.store.RecordStore.start` on the connection it holds the lock on."""
