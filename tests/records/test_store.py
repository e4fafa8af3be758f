"""The records database on real SQLite and a real PostgreSQL: migrations (from empty, from the
previous schema, several replicas at once), writes, merges, reads, erasure, retention."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from hotline.records.model import CallRecord
from hotline.records.schema import calls, metadata
from hotline.records.store import RecordStore, head_revision
from tests.support.aio import arun

DAY_MS = 86_400_000


def record(sid: str, started_ms: int, key: str | None = "k1", **kw: object) -> CallRecord:
    fields: dict[str, object] = {
        "call_sid": sid,
        "started_ms": started_ms,
        "ended_ms": started_ms + 30_000,
        "outcome": "goodbye played",
        "ended_by": "hotline",
        "brain": "script",
        "caller_masked": "+1555***0123",
        "caller_key": key,
        "turns": [{"speaker": "caller", "text": f"hello from {sid}", "at": 1.5}],
    }
    fields.update(kw)
    return CallRecord(**fields)  # type: ignore[arg-type]


def test_migrations_from_empty_build_the_schema_the_queries_use(database_url: str) -> None:
    async def main() -> None:
        store = RecordStore(database_url)
        try:
            assert await store.revision() is None
            assert await store.start() == head_revision() == "0002"
            async with store.engine.connect() as conn:
                columns = await conn.run_sync(
                    lambda c: {
                        t: {col["name"] for col in sa.inspect(c).get_columns(t)}
                        for t in sa.inspect(c).get_table_names()
                    }
                )
                indexes = await conn.run_sync(
                    lambda c: {i["name"] for i in sa.inspect(c).get_indexes("calls")}
                )
            assert columns["calls"] == {c.name for c in calls.columns}
            assert set(columns) == {"calls", "alembic_version"}
            assert indexes == {i.name for i in metadata.tables["calls"].indexes}
            assert await store.start() == "0002"  # started again: nothing to do
        finally:
            await store.aclose()

    arun(main)


def test_migration_from_the_previous_schema_keeps_the_rows(database_url: str) -> None:
    async def main() -> None:
        store = RecordStore(database_url)
        try:
            assert await store.migrate_to("0001") == "0001"
            async with store.engine.begin() as conn:
                old = record("CA-old", 1_000_000).row()
                del old["summary"], old["summary_by"]
                await conn.execute(calls.insert().values(**old))  # the 0001 columns only
            assert await store.start() == "0002"
            kept = await store.get("CA-old")
            assert kept is not None and kept.turns[0]["text"] == "hello from CA-old"
            assert kept.summary is None
        finally:
            await store.aclose()

    arun(main)


def test_replicas_starting_together_migrate_once(database_url: str) -> None:
    async def main() -> None:
        stores = [RecordStore(database_url) for _ in range(4)]
        try:
            revisions = await asyncio.gather(*(s.start() for s in stores))
            assert revisions == ["0002"] * 4
            await stores[0].write([record("CA1", 1000)])
            assert (await stores[3].get("CA1")) is not None
        finally:
            for s in stores:
                await s.aclose()

    arun(main)


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    async def main() -> None:
        store = RecordStore(f"sqlite:///{tmp_path}/r.sqlite3")
        await store.start()
        await store.write([record("CA1", 1000)])
        await store.aclose()

    arun(main)
    with sqlite3.connect(tmp_path / "r.sqlite3") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_history_pages_newest_first_and_filters(database_url: str) -> None:
    async def main() -> None:
        store = RecordStore(database_url)
        try:
            await store.start()
            base = 1_700_000_000_000
            await store.write(
                [
                    record(f"CA{i:02d}", base + (i // 2) * 1000, "k1" if i % 3 else "k2")
                    for i in range(10)
                ]
            )
            seen: list[str] = []
            cursor = None
            while True:
                page, cursor = await store.history(limit=3, cursor=cursor)
                seen += [r.call_sid for r in page]
                if cursor is None:
                    break
            expected = sorted(
                (f"CA{i:02d}" for i in range(10)),
                key=lambda s: (base + (int(s[2:]) // 2) * 1000, s),
                reverse=True,
            )
            assert seen == expected
            k2, _ = await store.history(caller_key="k2")
            assert {r.call_sid for r in k2} == {"CA00", "CA03", "CA06", "CA09"}
            window, _ = await store.history(since_ms=base + 1000, until_ms=base + 3000)
            assert {r.call_sid for r in window} == {"CA02", "CA03", "CA04", "CA05"}
            with pytest.raises(ValueError):
                await store.history(cursor="not-a-cursor")
        finally:
            await store.aclose()

    arun(main)


def test_a_resumed_call_merges_into_its_row_and_a_retry_changes_nothing(database_url: str) -> None:
    async def main() -> None:
        store = RecordStore(database_url)
        try:
            await store.start()
            first = record("CA1", 10_000, turns=[{"speaker": "caller", "text": "one", "at": 1.0}])
            second = record(
                "CA1",
                50_000,
                resumes=1,
                turns=[{"speaker": "caller", "text": "two", "at": 2.0}],
            )
            await store.write([first])
            await store.write([second])
            await store.write([second])  # written again (a retry after a lost commit)
            await store.write([first])  # the first stream's record arriving late
            merged = await store.get("CA1")
            assert merged is not None
            assert [t["text"] for t in merged.turns] == ["one", "two"]
            assert [t["at"] for t in merged.turns] == [1.0, 42.0]
            assert (merged.started_ms, merged.ended_ms, merged.resumes) == (10_000, 80_000, 1)
        finally:
            await store.aclose()

    arun(main)


def test_forget_and_purge(database_url: str) -> None:
    async def main() -> None:
        store = RecordStore(database_url)
        try:
            await store.start()
            now = 1_800_000_000_000
            await store.write(
                [
                    record("CA-old", now - 100 * DAY_MS, "k1"),
                    record("CA-new", now - 1 * DAY_MS, "k1"),
                    record("CA-other", now - 1 * DAY_MS, "k2"),
                ]
            )
            assert await store.purge(now - 90 * DAY_MS) == 1
            assert await store.get("CA-old") is None
            assert await store.forget("k1") == 1
            assert [r.call_sid for r in (await store.history())[0]] == ["CA-other"]
        finally:
            await store.aclose()

    arun(main)
