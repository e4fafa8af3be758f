"""The writer off the hot path: a database that goes away (a real PostgreSQL cluster stopped)
never blocks ``submit``; records wait in memory, then in the spool file, and are written once
it is back; a shutdown spools what it could not write and the next start writes it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hotline.records.store import RecordStore
from hotline.records.writer import RecordWriter
from tests.records.conftest import PostgresCluster
from tests.records.test_store import record
from tests.support.aio import arun, wait_until


def test_records_wait_while_the_database_is_down_and_arrive_when_it_is_back(
    own_postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = own_postgres.create_database()
    spool = tmp_path / "records.spool"

    async def main() -> None:
        store = RecordStore(url)
        await store.start()
        writer = RecordWriter(store, memory_max=3, spool=spool, backoff_max=0.3)
        writer.start()
        try:
            writer.submit(record("CA-up", 1000))
            assert await writer.idle(10)
            await asyncio.to_thread(own_postgres.stop)
            took = []
            for i in range(8):
                t0 = time.perf_counter()
                writer.submit(record(f"CA-down-{i}", 2000 + i))
                took.append(time.perf_counter() - t0)
            assert max(took) < 0.05  # never waits for the database
            await wait_until(lambda: writer.down, 10, "the writer to see the database down")
            # three in memory, the rest spooled to the file
            assert len(writer.pending) == 3 and writer.spooled == 5
            assert spool.read_text().count("\n") == 5
            assert "hello from CA-down-7" in spool.read_text()
            await asyncio.to_thread(own_postgres.start)
            assert await writer.idle(30), "records not written after the database came back"
            assert not spool.exists() and not writer.down
            page, _ = await store.history(limit=50)
            assert {r.call_sid for r in page} == {"CA-up", *(f"CA-down-{i}" for i in range(8))}
            assert writer.dropped == 0
        finally:
            await writer.close(5)
            await store.aclose()

    arun(main, 90)


def test_shutdown_spools_what_it_cannot_write_and_the_next_start_writes_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db" / "records.sqlite3"
    spool = tmp_path / "records.spool"

    async def main() -> None:
        # a database that cannot be opened: the directory is a file
        (tmp_path / "db").write_text("not a directory")
        store = RecordStore(f"sqlite:///{db}")
        writer = RecordWriter(store, spool=spool, backoff_max=0.2)
        writer.start()
        writer.submit(record("CA-1", 1000))
        writer.submit(record("CA-2", 2000))
        await wait_until(lambda: writer.down, 10, "the write to fail")
        await writer.close(0.5)
        await store.aclose()
        assert spool.read_text().count("\n") == 2

        (tmp_path / "db").unlink()  # the database can be reached again: the next start
        store = RecordStore(f"sqlite:///{db}")
        writer = RecordWriter(store, spool=spool)
        writer.start()
        try:
            assert await writer.idle(10)
            assert await store.get("CA-1") is not None and await store.get("CA-2") is not None
            assert not spool.exists()
        finally:
            await writer.close(5)
            await store.aclose()

    arun(main, 60)


def test_the_retention_purge_runs_at_start_and_keeps_the_recent(database_url: str) -> None:
    from hotline.records.privacy import derive_key
    from hotline.records.service import DAY_MS, Records, RecordsConfig

    now_s = 1_800_000_000.0
    now_ms = int(now_s * 1000)

    async def main() -> None:
        store = RecordStore(database_url)
        await store.start()
        await store.write(
            [record("CA-old", now_ms - 91 * DAY_MS), record("CA-recent", now_ms - 89 * DAY_MS)]
        )
        await store.aclose()
        config = RecordsConfig(url=database_url, key=derive_key("k"), retention_days=90)
        records = Records(config, clock=lambda: now_s)
        await records.start()  # the purge's first round runs now
        try:
            await wait_until(
                lambda: records._purge is not None and records.purged == 1, 10, "the purge"
            )
            assert await records.store.get("CA-old") is None
            assert await records.store.get("CA-recent") is not None
        finally:
            await records.aclose()

    arun(main, 60)
