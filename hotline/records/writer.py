"""Records written off the call's hot path.

:meth:`RecordWriter.submit` never awaits and never fails: the record joins a bounded queue in
memory (``memory_max``); past that bound it is appended to a local spool file (JSON lines).
One task drains the queue: it summarises each record that has no summary (all of a batch at
once; ``on_summarised`` then tells the owner), writes the batch in one transaction and, while
the database is down or slow, keeps the batch and tries again with backoff; once a write
succeeds, it takes the spooled records back. :meth:`RecordWriter.close` (shutdown, the SIGTERM
drain) writes what is pending within its timeout and spools whatever it could not write: the
next start of a process with the same spool file writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from hotline.records.model import CallRecord
from hotline.records.store import RecordStore

__all__ = ["RecordWriter"]

log = logging.getLogger("hotline.records")

Summarise = Callable[[CallRecord], Awaitable[None]]
BATCH = 50


class RecordWriter:
    """The queue between ended calls and the database.

    Args:
        store: the database.
        memory_max: records kept in memory while the database is away (then: the spool).
        spool: the spool file (None: past ``memory_max`` the oldest waiting record is dropped,
            and counted in ``dropped``).
        summarise: fills a record's summary (never raises).
        on_summarised: called with each record once summarised (notifications).
        backoff_max: longest wait between two attempts while the database is away (s).
    """

    def __init__(
        self,
        store: RecordStore,
        *,
        memory_max: int = 1000,
        spool: Path | None = None,
        summarise: Summarise | None = None,
        on_summarised: Callable[[CallRecord], None] | None = None,
        backoff_max: float = 5.0,
    ) -> None:
        self.store = store
        self.memory_max = max(1, memory_max)
        self.spool = spool
        self.summarise = summarise
        self.on_summarised = on_summarised
        self.backoff_max = backoff_max
        self.pending: deque[CallRecord] = deque()
        self.written = 0
        self.spooled = 0
        self.dropped = 0
        #: The database refused the last write (until one succeeds).
        self.down = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------------ the call's side

    def submit(self, record: CallRecord) -> None:
        """Queue ``record`` (never awaits, never raises)."""
        if len(self.pending) >= self.memory_max:
            if not self._spool_append([record]):
                self.dropped += 1
                log.error("records: queue full and no spool: a call's record was dropped")
                return
        else:
            self.pending.append(record)
        self._idle.clear()
        self._wake.set()

    def find(self, call_sid: str) -> CallRecord | None:
        """A record still waiting in memory (the API shows it before it is written)."""
        for record in reversed(self.pending):
            if record.call_sid == call_sid:
                return record
        return None

    # ------------------------------------------------------------------ the task

    def start(self) -> None:
        if self._spool_size():
            self._idle.clear()
            self._wake.set()
        self._task = asyncio.create_task(self._run(), name="hotline-records")

    async def idle(self, timeout: float) -> bool:
        """Wait until nothing is pending (tests, the drain). Returns whether it is so."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending or self._spool_size():
                if not self.pending:
                    if not self._spool_take():
                        break  # unreadable: tried again at the next wake-up
                    continue
                batch = [self.pending[i] for i in range(min(BATCH, len(self.pending)))]
                await self._summarise(batch)
                try:
                    await self.store.write(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not self.down:
                        log.warning(
                            "records: the database refused a write (%s); %d record(s) wait in "
                            "memory%s",
                            type(exc).__name__,
                            len(self.pending),
                            ", more in the spool file" if self._spool_size() else "",
                        )
                    self.down = True
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
                for _ in batch:
                    self.pending.popleft()
                self.written += len(batch)
                if self.down:
                    log.info("records: the database is back; writing what waited")
                self.down = False
                backoff = 0.1
                if len(self.pending) < self.memory_max // 2:
                    self._spool_take()
            self._idle.set()

    async def _summarise(self, batch: list[CallRecord]) -> None:
        todo = [r for r in batch if r.summary is None]
        if not todo or self.summarise is None:
            return
        await asyncio.gather(*(self.summarise(r) for r in todo))
        if self.on_summarised is not None:
            for record in todo:
                try:
                    self.on_summarised(record)
                except Exception:
                    log.exception("records: notifying a summary failed")

    async def close(self, timeout: float) -> None:
        """Write what is pending within ``timeout`` s; spool the rest; stop the task."""
        deadline = time.monotonic() + timeout
        if self._task is not None and (self.pending or self._spool_size()) and not self.down:
            await self.idle(max(deadline - time.monotonic(), 0.0))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.pending:
            left = list(self.pending)
            self.pending.clear()
            if self._spool_append(left):
                log.warning(
                    "records: %d record(s) spooled to be written at the next start", len(left)
                )
            else:
                self.dropped += len(left)
                log.error("records: %d record(s) could not be written or spooled", len(left))

    # ------------------------------------------------------------------ the spool

    def _spool_size(self) -> int:
        if self.spool is None:
            return 0
        try:
            return self.spool.stat().st_size
        except OSError:
            return 0

    def _spool_append(self, records: list[CallRecord]) -> bool:
        if self.spool is None:
            return False
        try:
            self.spool.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.spool, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as out:
                for record in records:
                    out.write(json.dumps(record.journal(), separators=(",", ":")) + "\n")
        except OSError as exc:
            log.error("records: cannot write the spool file (%s)", exc.strerror)
            return False
        self.spooled += len(records)
        return True

    def _spool_take(self) -> bool:
        """Move spooled records back to memory (as many as fit); the rest stay spooled.
        Returns False when the spool file cannot be read or rewritten."""
        if self.spool is None or not self._spool_size():
            return True
        room = self.memory_max - len(self.pending)
        try:
            lines = self.spool.read_text("utf-8").splitlines()
        except OSError as exc:
            log.error("records: cannot read the spool file (%s)", exc.strerror)
            return False
        taken, rest = lines[:room], lines[room:]
        for line in taken:
            try:
                self.pending.append(CallRecord.from_journal(json.loads(line)))
            except (ValueError, TypeError):
                log.warning("records: a malformed line of the spool file skipped")
        tmp = self.spool.with_name(self.spool.name + ".tmp")
        try:
            if rest:
                tmp.write_text("".join(line + "\n" for line in rest), "utf-8")
                tmp.replace(self.spool)
            else:
                self.spool.unlink()
        except OSError as exc:
            log.error("records: cannot rewrite the spool file (%s)", exc.strerror)
            return False
        return True
