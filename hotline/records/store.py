"""The records database: SQLAlchemy 2 async (aiosqlite for SQLite, asyncpg for PostgreSQL).

:meth:`RecordStore.start` applies the Alembic migrations up to the newest, under a lock so that
replicas starting together migrate once: PostgreSQL's transaction-level advisory lock (the
migration runs in that transaction: DDL is transactional there), SQLite's file next to the
database (``flock``), where every connection also turns on WAL (readers never wait for the
writer) and a busy timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from hotline.records.model import CallRecord
from hotline.records.schema import calls

__all__ = ["MIGRATIONS", "RecordStore", "engine_url", "head_revision", "sqlite_path"]

log = logging.getLogger("hotline.records")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_xact_lock key of the migration ("hotline" in ASCII).
_LOCK_KEY = 0x686F746C696E65


def engine_url(url: str) -> str:
    """``sqlite:///path`` / ``postgres[ql]://...`` -> the async driver's URL.

    Raises:
        ValueError: another scheme.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return "sqlite+aiosqlite:" + url.split(":", 1)[1]
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "sslmode"]
        return urlunsplit(parts._replace(scheme="postgresql+asyncpg", query=urlencode(query)))
    raise ValueError("must be sqlite:///path, postgresql://... or off")


def _ssl(url: str) -> Any:
    """asyncpg's ``ssl`` argument from a libpq ``sslmode`` (what Railway-style URLs carry)."""
    mode = dict(parse_qsl(urlsplit(url).query)).get("sslmode")
    if mode in ("require", "verify-ca", "verify-full"):
        return mode
    if mode in ("prefer", "allow"):
        return mode
    return None


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (None: not SQLite, or in memory)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("sqlite"):
        return None
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path or path == ":memory:":
        return None
    return Path(path)


def _alembic(connection: Any | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration's revision."""
    head = ScriptDirectory.from_config(_alembic()).get_current_head()
    assert head is not None
    return head


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _encode_cursor(started_ms: int, call_sid: str) -> str:
    return base64.urlsafe_b64encode(f"{started_ms}:{call_sid}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    """Raises ValueError: not a cursor this API gave."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ms, sid = raw.split(":", 1)
        return int(ms), sid
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor from /history") from None


class RecordStore:
    """The records database at ``url`` (``sqlite:///path`` or ``postgresql://...``).

    Raises:
        ValueError: a URL of another kind; PostgreSQL without asyncpg installed.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = "sqlite" if url.lower().startswith("sqlite") else "postgresql"
        if self.dialect == "postgresql" and importlib.util.find_spec("asyncpg") is None:
            raise ValueError(
                "PostgreSQL needs its driver: pip install 'hotline[postgres]' (asyncpg)"
            )
        self.path = sqlite_path(url)
        kwargs: dict[str, Any] = {}
        if self.dialect == "postgresql":
            # a server that restarted leaves dead connections in the pool: ping at checkout
            kwargs.update(pool_size=5, max_overflow=5, pool_timeout=5, pool_pre_ping=True)
            ssl = _ssl(url)
            kwargs["connect_args"] = {"timeout": 5, **({"ssl": ssl} if ssl else {})}
        else:
            # one connection for the writer, one for reads (WAL: they do not wait for each other);
            # opened at start (warm_up), so the process's file descriptors stay as they are
            # (the pool named: SQLAlchemy before 2.0.38 gave aiosqlite files no pool at all)
            kwargs.update(
                poolclass=AsyncAdaptedQueuePool,
                pool_size=2,
                max_overflow=0,
                pool_timeout=10,
                connect_args={"timeout": 5},
            )
        self.engine: AsyncEngine = create_async_engine(engine_url(url), **kwargs)
        if self.dialect == "sqlite":
            sa.event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        #: Migrated (writes before then migrate first).
        self.ready = False

    def __repr__(self) -> str:
        return f"RecordStore({self.dialect})"

    # ---------------------------------------------------------------- schema

    async def start(self) -> str:
        """Apply every migration not applied yet (under the lock), then open the pool's
        connections. Returns the revision."""
        revision = await self._start()
        self.ready = True
        await self._warm_up()
        return revision

    async def _warm_up(self) -> None:
        """Open the SQLite pool's connections now, not during the first calls."""
        if self.dialect != "sqlite":
            return
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(2):
                conn = await stack.enter_async_context(self.engine.connect())
                await conn.execute(sa.text("SELECT 1"))

    async def _start(self) -> str:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = self.path.with_name(self.path.name + ".migrate-lock")
            await asyncio.to_thread(self._lock_file, lock)
            try:
                return await self._migrate("head")
            finally:
                self._unlock_file()
        return await self._migrate("head")

    def _lock_file(self, path: Path) -> None:
        self._lock_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def _unlock_file(self) -> None:
        os.close(self._lock_fd)

    async def _migrate(self, target: str) -> str:
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"))
            return await conn.run_sync(_upgrade, target)

    async def migrate_to(self, target: str) -> str:
        """Upgrade to ``target`` only (tests: the previous schema)."""
        return await self._migrate(target)

    async def revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )

    # ---------------------------------------------------------------- writes

    async def write(self, records: list[CallRecord]) -> None:
        """Insert each record, or merge it into its call's row (a resumed call's next stream);
        writing the same record twice changes nothing."""
        if not self.ready:
            await self.start()
        async with self.engine.begin() as conn:
            for record in records:
                await self._write_one(conn, record)

    async def _write_one(self, conn: AsyncConnection, record: CallRecord) -> None:
        query = sa.select(calls).where(calls.c.call_sid == record.call_sid)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        existing = (await conn.execute(query)).first()
        if existing is None:
            await conn.execute(calls.insert().values(**record.row()))
            return
        old = CallRecord.from_row(existing)
        if old.started_ms == record.started_ms and record.ended_ms >= old.ended_ms:
            merged = record  # the same stream again (a retry)
        elif record.started_ms > old.started_ms and record.ended_ms > old.ended_ms:
            merged = old.merge(record)
        elif record.started_ms < old.started_ms and record.ended_ms < old.ended_ms:
            merged = record.merge(old)
        else:
            return  # already part of the row
        row = merged.row()
        del row["call_sid"]
        await conn.execute(calls.update().where(calls.c.call_sid == record.call_sid).values(**row))

    async def forget(self, caller_key: str) -> int:
        """Delete every record of this caller. Returns how many."""
        async with self.engine.begin() as conn:
            result = await conn.execute(calls.delete().where(calls.c.caller_key == caller_key))
            return int(result.rowcount or 0)

    async def purge(self, before_ms: int) -> int:
        """Delete the calls that started before ``before_ms``. Returns how many."""
        async with self.engine.begin() as conn:
            result = await conn.execute(calls.delete().where(calls.c.started_ms < before_ms))
            return int(result.rowcount or 0)

    # ---------------------------------------------------------------- reads

    async def get(self, call_sid: str) -> CallRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(calls).where(calls.c.call_sid == call_sid))).first()
        return CallRecord.from_row(row) if row is not None else None

    async def history(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        caller_key: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> tuple[list[CallRecord], str | None]:
        """Newest first; returns the page and the cursor of the next (None: the last page).

        Raises:
            ValueError: a cursor this method did not give.
        """
        query = sa.select(calls)
        if cursor:
            ms, sid = _decode_cursor(cursor)
            query = query.where(
                sa.or_(
                    calls.c.started_ms < ms,
                    sa.and_(calls.c.started_ms == ms, calls.c.call_sid < sid),
                )
            )
        if caller_key is not None:
            query = query.where(calls.c.caller_key == caller_key)
        if since_ms is not None:
            query = query.where(calls.c.started_ms >= since_ms)
        if until_ms is not None:
            query = query.where(calls.c.started_ms < until_ms)
        query = query.order_by(calls.c.started_ms.desc(), calls.c.call_sid.desc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        page = [CallRecord.from_row(r) for r in rows[:limit]]
        more = len(rows) > limit and page
        return page, (_encode_cursor(page[-1].started_ms, page[-1].call_sid) if more else None)

    async def recent(self, caller_key: str, count: int) -> list[CallRecord]:
        """This caller's last ``count`` calls, newest first."""
        page, _ = await self.history(limit=count, caller_key=caller_key)
        return page

    async def aclose(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Any, target: str) -> str:
    command.upgrade(_alembic(connection), target)
    revision = MigrationContext.configure(connection).get_current_revision()
    return revision or ""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
