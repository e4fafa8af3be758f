"""Harness for the fault matrix. The fault matrix (issue 5) runs against ONE hotline server per
TTS transport for the whole package: the real app on a real uvicorn on 127.0.0.1 (ephemeral
port), in a thread with its own event loop (tests.support.server.ServerThread), with the
embedded local voice, on the production defaults. Every test hits it with one fault (from the
caller simulator's fault flags or the local voice's fault modes) and then checks that the
server is still fine: /health answers, a normal call completes, /calls is empty, no task is
left in the server's loop, no socket is left open, the error is counted in /metrics and logged
once with the CallSid.

Sharing one server is deliberate: a fault that leaves damage behind (a stuck task, a leaked
socket, a wedged loop) shows up in the tests that follow, as it would in production.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from hotline.sim.call_report import CallReport
from hotline.sim.caller import place_call
from hotline.sim.load import Scrape, parse_metrics
from hotline.sim.options import CallOptions
from tests.support.aio import arun
from tests.support.server import ServerThread as BaseServerThread
from tests.support.tts import FaultSwitch

__all__ = ["arun"]  # re-exported for the fault tests

AUTH_TOKEN = "faults-twilio-auth-token-0123456789"
ADMIN_TOKEN = "faults-admin-token-abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TTS_TIMEOUT = 1.5  # seconds without TTS audio before an utterance ends (HOTLINE_TTS_TIMEOUT)

# Short lines keep the suite quick. No goodbye key: a DTMF storm must not end the call.
SCRIPT = """
greeting = "Hello there."
invalid_digit = "That key does nothing."
goodbye = "Goodbye now."
[menu]
1 = "Tour dates are on the website."
2 = "The record is out now."
"""

SENTENCE = "Here is the next line, in full."
_case = itertools.count(1)


def unique(text: str) -> str:
    """``text`` made unique, so the phrase cache cannot answer it and the TTS path runs."""
    return f"{text.rstrip('.')}, case {next(_case)}."


FAULTY = "This line meets a fault in the voice."


class ServerThread(BaseServerThread):
    """A shared server (tests.support.server.ServerThread) with the fault matrix's switch.

    It runs the production defaults (phrase cache) on one TTS transport (see conftest.py: a
    server per transport); the lines that must reach the voice are made unique so the cache
    cannot answer them. Its app builds each call's TTS through a :class:`FaultSwitch`, so the
    next utterances can be pointed at a fault (:meth:`set_tts`).
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        self.switch = FaultSwitch()
        super().__init__(settings, tts_factory=self.switch)

    def set_tts(self, *, fault: str | None = None, **changes: Any) -> None:
        """Point the next utterances' TTS at a fault mode (or other TTSConfig changes)."""
        self.call_on_loop(lambda: self.switch.arm(fault, **changes))

    def reset_tts(self) -> None:
        self.call_on_loop(self.switch.disarm)

    def log_records(self, call_sid: str, level: str = "WARNING") -> list[dict[str, Any]]:
        hub = self.hub
        assert hub is not None
        return [r for r in hub.ring.snapshot() if r["level"] == level and call_sid in r["message"]]


# ----------------------------------------------------------------------------- running a call


@dataclass
class LiveCall:
    """A simulated call running in a task, observable while it runs."""

    server: ServerThread
    opts: CallOptions
    report: CallReport | None = None
    task: asyncio.Task[CallReport] | None = None
    _started: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def sid(self) -> str:
        return self.opts.call_sid

    async def start(self) -> LiveCall:
        def on_started(report: CallReport) -> None:
            self.report = report
            self._started.set()

        self.opts.on_started = on_started
        self.task = asyncio.create_task(place_call(self.opts))
        done = asyncio.create_task(self._started.wait())
        await asyncio.wait({self.task, done}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if not done.done():
            done.cancel()
            if self.task.done():
                self.report = self.task.result()
                raise AssertionError(f"call did not start: {self.report.errors}")
            raise AssertionError("call did not start within 10 s")
        return self

    @property
    def r(self) -> CallReport:
        assert self.report is not None
        return self.report

    def ended(self, uid: int) -> bool:
        """The server sent utterance ``uid``'s last frame (its end mark)."""
        return f"u{uid}-end" in self.r.mark_names

    def played(self, uid: int) -> bool:
        """Utterance ``uid`` was played to its end: its end mark and every mark before it echoed."""
        return self.ended(uid) and self.r.marks_echoed >= self.r.marks_received

    async def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Wait for ``predicate``; returns the seconds it took."""
        t0 = time.monotonic()
        while not predicate():
            if self.task is not None and self.task.done():
                rep = self.task.result()
                raise AssertionError(
                    f"call ended ({rep.ended_by}, code {rep.close_code}) before: {what}; "
                    f"errors={rep.errors} marks={rep.mark_names[-5:]}"
                )
            if time.monotonic() - t0 > timeout:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for: {what}; "
                    f"marks={self.r.mark_names[-8:]} echoed={self.r.marks_echoed} "
                    f"errors={self.r.errors}"
                )
            await asyncio.sleep(0.01)
        return time.monotonic() - t0

    async def finish(self, timeout: float = 15.0) -> CallReport:
        assert self.task is not None
        self.report = await asyncio.wait_for(self.task, timeout)
        return self.report


def call_options(server: ServerThread, **kw: Any) -> CallOptions:
    kw.setdefault("max_seconds", 30.0)
    return CallOptions(url=server.base, auth_token=AUTH_TOKEN, **kw)


async def admin(server: ServerThread, method: str, path: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base, headers=ADMIN, timeout=10) as client:
        return await client.request(method, path, **kw)


async def say(server: ServerThread, sid: str, text: str, **kw: Any) -> int:
    r = await admin(server, "POST", f"/calls/{sid}/say", json={"text": text, **kw})
    assert r.status_code == 202, (r.status_code, r.text)
    return int(r.json()["utterance_id"])


async def scrape(server: ServerThread) -> Scrape:
    r = await admin(server, "GET", "/metrics")
    assert r.status_code == 200
    return parse_metrics(r.text)


def counter(s: Scrape, name: str, **labels: str) -> float:
    key = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return s.counters.get(name, {}).get(key, 0.0)


def speech_of(report: CallReport, uid: int) -> float:
    """Milliseconds of speech the caller heard in utterance ``uid`` (stretches closed by its marks)."""
    prefix = f"u{uid}-"
    return sum(u.speech_ms for u in report.utterances if u.mark and u.mark.startswith(prefix))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def check_clean(server: ServerThread, fds_before: int | None = None) -> None:
    """Every task and socket of the finished calls is gone; /calls is empty."""
    deadline = time.monotonic() + 6.0
    while True:
        stray = server.stray_tasks()
        r = await admin(server, "GET", "/calls")
        calls = r.json()["calls"]
        hub = server.hub
        assert hub is not None
        voice_open = server.voice.stats.open_connections
        fds = _fds()
        ok = (
            not stray
            and not calls
            and not hub.sessions
            and voice_open == 0
            and (fds_before is None or fds <= fds_before)
        )
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"left behind: tasks={stray} calls={calls} sessions={len(hub.sessions)} "
                f"voice connections={voice_open} fds {fds_before} -> {fds}"
            )
        await asyncio.sleep(0.05)


async def normal_call_works(server: ServerThread) -> None:
    """The server still answers /health and completes a normal call (greeting played)."""
    async with httpx.AsyncClient(base_url=server.base, timeout=5) as client:
        assert (await client.get("/health")).status_code == 200
    call = await LiveCall(server, call_options(server)).start()
    await call.wait(lambda: call.played(1), 10, "the greeting played")
    assert speech_of(call.r, 1) >= 300
    r = await admin(server, "POST", f"/calls/{call.sid}/hangup")
    assert r.status_code == 202
    rep = await call.finish()
    assert rep.ended_by == "server_hangup", rep.summary()
    assert rep.protocol_violations == 0, rep.errors


def ring_mentions(server: ServerThread, call_sid: str, *words: str) -> list[str]:
    return [
        r["message"] for r in server.log_records(call_sid) if all(w in r["message"] for w in words)
    ]
