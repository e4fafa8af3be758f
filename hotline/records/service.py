"""Records as the server uses them: the store, the writer, the retention purge, caller memory,
the summary and the notifications, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hotline.records import privacy
from hotline.records.model import CallRecord
from hotline.records.store import RecordStore
from hotline.records.summary import LlmSummariser, plain_summary
from hotline.records.writer import RecordWriter

__all__ = ["Memory", "Records", "RecordsConfig"]

log = logging.getLogger("hotline.records")

PURGE_EVERY = 3600.0
DAY_MS = 86_400_000
#: Memory lookups started at a webhook and not yet taken by a stream: kept at most this long.
PREFETCH_TTL = 60.0
PREFETCH_MAX = 10_000


@dataclass(frozen=True)
class RecordsConfig:
    """What :class:`Records` needs (the server fills it from its settings).

    Attributes:
        url: ``sqlite:///path`` or ``postgresql://...``.
        key: the caller-hash key (:func:`hotline.records.privacy.derive_key`).
        store_numbers: keep the caller's number itself (``HOTLINE_STORE_CALLER_NUMBERS``).
        retention_days: records older than this are purged (0: kept).
        memory_calls: summaries a returning caller's brain gets (0: no memory).
        queue: records kept in memory while the database is away.
        spool: the spool file past ``queue``.
    """

    url: str
    key: bytes
    store_numbers: bool = False
    retention_days: int = 90
    memory_calls: int = 3
    queue: int = 1000
    spool: Path | None = None


@dataclass(frozen=True)
class Memory:
    """One earlier call of a returning caller, as a brain gets it."""

    date: str  # YYYY-MM-DD (UTC)
    summary: str

    def as_dict(self) -> dict[str, str]:
        return {"date": self.date, "summary": self.summary}


class Records:
    """The records of one process.

    Args:
        config: see :class:`RecordsConfig`.
        summariser: the LLM summariser (None: plain summaries).
        notifiers: called with each summarised record (webhook, SMS).
        clock: wall-clock seconds.
    """

    def __init__(
        self,
        config: RecordsConfig,
        *,
        summariser: LlmSummariser | None = None,
        notifiers: tuple[Any, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = RecordStore(config.url)
        self.summariser = summariser
        self.notifiers = notifiers
        self.clock = clock
        self.writer = RecordWriter(
            self.store,
            memory_max=config.queue,
            spool=config.spool,
            summarise=self._summarise,
            on_summarised=self._notify,
        )
        self._purge: asyncio.Task[None] | None = None
        self.revision: str | None = None
        #: Records deleted by the retention purge since start.
        self.purged = 0
        self._prefetched: dict[str, tuple[float, asyncio.Task[list[Memory]]]] = {}

    async def start(self) -> None:
        """Migrate the database (under its lock), then start the writer and the purge.

        Raises:
            Exception: the database cannot be reached or migrated (start-up fails loudly).
        """
        try:
            self.revision = await asyncio.wait_for(self.store.start(), 30.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Calls go on; their records wait (memory, then the spool) and the writer migrates
            # before its first write.
            log.error(
                "records: the database cannot be reached or migrated (%s: %s); records wait "
                "until it can",
                type(exc).__name__,
                str(exc)[:200],
            )
        self.writer.start()
        if self.config.retention_days > 0:
            self._purge = asyncio.create_task(self._purge_loop(), name="hotline-records-purge")
        log.info(
            "records: %s database at schema %s; retention %s; caller numbers %s",
            self.store.dialect,
            self.revision,
            f"{self.config.retention_days} days" if self.config.retention_days else "forever",
            "kept" if self.config.store_numbers else "hashed and masked",
        )

    async def aclose(self, timeout: float = 5.0) -> None:
        """Write what is pending (spool the rest), tell the owner what is in flight, close."""
        for _, task in self._prefetched.values():
            task.cancel()
        self._prefetched.clear()
        if self._purge is not None:
            self._purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purge
        await self.writer.close(timeout)
        for notifier in self.notifiers:
            await notifier.aclose(timeout)
        if self.summariser is not None:
            await self.summariser.aclose()
        await self.store.aclose()

    # ------------------------------------------------------------------ callers

    def key_of(self, number: str) -> str | None:
        return privacy.caller_key(self.config.key, number)

    def caller_fields(self, number: str) -> dict[str, Any]:
        """The record's caller columns for ``number``."""
        return {
            "caller_key": self.key_of(number),
            "caller_masked": privacy.mask(number),
            "caller_number": privacy.normalise(number) or None
            if self.config.store_numbers
            else None,
        }

    async def memory(self, number: str) -> list[Memory]:
        """The summaries of this caller's last calls, newest first (none: a stranger, an
        erased caller, no number, or memory off)."""
        key = self.key_of(number)
        if key is None or self.config.memory_calls <= 0:
            return []
        records = await self.store.recent(key, self.config.memory_calls)
        out = []
        for record in records:
            if record.summary:
                day = datetime.fromtimestamp(record.started_ms / 1000, tz=timezone.utc)
                out.append(Memory(day.strftime("%Y-%m-%d"), record.summary))
        return out

    def prefetch(self, call_sid: str, number: str) -> None:
        """Look up a caller's memory now (at the webhook, never awaited) for :meth:`take`."""
        now = time.monotonic()
        if len(self._prefetched) >= PREFETCH_MAX or (
            self._prefetched and next(iter(self._prefetched.values()))[0] < now - PREFETCH_TTL
        ):
            for sid, (at, stale) in list(self._prefetched.items()):
                if at < now - PREFETCH_TTL or len(self._prefetched) >= PREFETCH_MAX:
                    stale.cancel()
                    del self._prefetched[sid]
        if call_sid in self._prefetched:
            return
        task = self.lookup(number)
        if task is not None:
            self._prefetched[call_sid] = (now, task)

    def lookup(self, number: str) -> asyncio.Task[list[Memory]] | None:
        """Start looking up a caller's memory (None: no number, memory off, or the database
        is known to be away: a call is not held up waiting for it)."""
        if self.config.memory_calls <= 0 or not number or self.writer.down:
            return None
        return asyncio.get_running_loop().create_task(
            self._memory_quietly(number), name="hotline-memory"
        )

    async def _memory_quietly(self, number: str) -> list[Memory]:
        try:
            return await asyncio.wait_for(self.memory(number), 5.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("records: a caller's memory could not be read (%s)", type(exc).__name__)
            return []

    def take(self, call_sid: str) -> asyncio.Task[list[Memory]] | None:
        """The lookup :meth:`prefetch` started for this call (None: none). It never raises:
        a failed lookup is an empty memory."""
        entry = self._prefetched.pop(call_sid, None)
        return entry[1] if entry is not None else None

    async def forget(self, number: str) -> int:
        """Erase a caller: their records (waiting ones too). Returns how many were deleted."""
        key = self.key_of(number)
        if key is None:
            return 0
        waiting = [r for r in self.writer.pending if r.caller_key == key]
        for record in waiting:
            self.writer.pending.remove(record)
        return len(waiting) + await self.store.forget(key)

    # ------------------------------------------------------------------ records

    def submit(self, record: CallRecord) -> None:
        self.writer.submit(record)

    async def get(self, call_sid: str) -> CallRecord | None:
        waiting = self.writer.find(call_sid)
        if waiting is not None:
            return waiting
        return await self.store.get(call_sid)

    async def purge(self) -> int:
        """Delete the records past the retention. Returns how many."""
        if self.config.retention_days <= 0:
            return 0
        before = int(self.clock() * 1000) - self.config.retention_days * DAY_MS
        count = await self.store.purge(before)
        self.purged += count
        if count:
            log.info(
                "records: %d record(s) older than %d days purged", count, self.config.retention_days
            )
        return count

    async def _purge_loop(self) -> None:
        while True:
            try:
                await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("records: the retention purge failed (%s)", type(exc).__name__)
            await asyncio.sleep(PURGE_EVERY)

    async def _summarise(self, record: CallRecord) -> None:
        text = None
        if self.summariser is not None:
            text = await self.summariser.summarise(record)
        if text is not None:
            record.summary, record.summary_by = text, "llm"
        else:
            record.summary, record.summary_by = plain_summary(record), "plain"

    def _notify(self, record: CallRecord) -> None:
        for notifier in self.notifiers:
            notifier.notify(record)
