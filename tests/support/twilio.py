"""Twilio's side of one Media Stream for the tests, built from the caller simulator's pieces:
the signed webhook and upgrade and the TwiML reading (:mod:`hotline.sim.webhook`), :class:`hotline.sim.messages.TwilioMessages` for what it sends,
and :class:`hotline.sim.playback.Playback` for the 8 kHz playback clock (marks echoed only
once the audio before them has played, ``clear`` echoes every pending mark).

Unlike ``hotline.sim.caller.place_call`` it is driven step by step from the test (speak now,
press a key now) and records every outbound frame with the wall and media time it arrived.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from hotline.core.ulaw import SILENCE_FRAME
from hotline.sim.messages import CONNECTED, TwilioMessages, b64
from hotline.sim.playback import Playback
from hotline.sim.webhook import parse_twiml

from .server import CALLER, Running, sign

ACCOUNT_SID = "AC" + "1" * 32


@dataclass
class Heard:
    """What the fake Twilio received and played."""

    frames: list[tuple[float, int, bytes]] = field(default_factory=list)  # (wall, media ms, frame)
    played: bytearray = field(default_factory=bytearray)
    marks: list[tuple[str, int]] = field(default_factory=list)  # (name, media ms when echoed)
    clears: list[int] = field(default_factory=list)  # media ms when received
    closed_at: int | None = None
    close_code: int | None = None
    bad: list[str] = field(default_factory=list)
    underrun_ms: int = 0

    def received_ms(self) -> float:
        """Milliseconds of outbound audio received (media messages carry any length)."""
        return sum(len(frame) for _, _, frame in self.frames) / 8

    def audio(self) -> bytes:
        """Every outbound frame received, in order."""
        return b"".join(frame for _, _, frame in self.frames)


class FakeTwilio:
    """One bidirectional Media Stream, played in real time at 8 kHz (one 20 ms tick at a time)."""

    def __init__(self, run: Running, call_sid: str = "CA" + "0" * 31 + "1") -> None:
        self.run = run
        self.call_sid = call_sid
        self.stream_sid = "MZ" + "ab" * 16
        self.msgs = TwilioMessages(self.stream_sid, call_sid, ACCOUNT_SID)
        self.playback = Playback()
        self.heard = Heard()
        self.params: dict[str, str] = {}
        self.ws: ClientConnection | None = None
        self.media_ms = 0  # the inbound media clock (timestamp of the next frame)
        self._speech: list[bytes] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.stopped = asyncio.Event()

    async def webhook(
        self, path: str = "/voice", form: dict[str, str] | None = None
    ) -> httpx.Response:
        form = form or {
            "CallSid": self.call_sid,
            "AccountSid": ACCOUNT_SID,
            "From": CALLER,
            "To": "+15555550100",
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        url = self.run.base + path
        async with httpx.AsyncClient() as client:
            return await client.post(
                url, data=form, headers={"X-Twilio-Signature": sign(url, form)}
            )

    async def start(self, path: str = "/voice", form: dict[str, str] | None = None) -> None:
        response = await self.webhook(path, form)
        assert response.status_code == 200, response.text
        url, self.params = parse_twiml(response.text)  # the simulator's strict TwiML reading
        assert url == self.run.ws_url, url
        self.ws = await connect(url, additional_headers={"X-Twilio-Signature": sign(url, {})})
        await self.ws.send(CONNECTED)
        await self.ws.send(self.msgs.start(self.params))
        self._tasks = [
            asyncio.create_task(self._reader()),
            asyncio.create_task(self._ticker()),
        ]

    async def _send(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send(text)

    def speak(self, frames: list[bytes]) -> int:
        """Start talking (frames go out one per tick); returns the onset media timestamp."""
        self._speech = list(frames)
        return self.media_ms

    async def dtmf(self, digit: str) -> None:
        await self._send(self.msgs.dtmf(digit))

    async def stop(self) -> None:
        await self._send(self.msgs.stop())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()

    async def hang_up(self) -> None:
        """``stop``, wait for the server to close, and close: the end of a normal call."""
        await self.stop()
        await self.stopped.wait()
        await self.close()

    async def _reader(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                if not isinstance(raw, str):
                    self.heard.bad.append("binary frame")
                    continue
                msg = json.loads(raw)
                event = msg.get("event")
                keys = set(msg)
                if event == "media":
                    if keys != {"event", "streamSid", "media"} or set(msg["media"]) != {"payload"}:
                        self.heard.bad.append(f"media shape {sorted(keys)}")
                    frame = base64.b64decode(msg["media"]["payload"])
                    self.heard.frames.append((time.monotonic(), self.media_ms, frame))
                    self.playback.media(frame)
                elif event == "mark":
                    if keys != {"event", "streamSid", "mark"}:
                        self.heard.bad.append(f"mark shape {sorted(keys)}")
                    if self.playback.mark(msg["mark"]["name"]):
                        await self._echo(msg["mark"]["name"])
                elif event == "clear":
                    if keys != {"event", "streamSid"}:
                        self.heard.bad.append(f"clear shape {sorted(keys)}")
                    self.heard.clears.append(self.media_ms)
                    for name in self.playback.clear():
                        await self._echo(name)
                else:
                    self.heard.bad.append(f"unknown event {event!r}")
                if msg.get("streamSid") != self.stream_sid:
                    self.heard.bad.append("wrong streamSid")
        except Exception as exc:  # connection closed abnormally
            self.heard.bad.append(f"reader: {type(exc).__name__}")
        finally:
            self.heard.closed_at = self.media_ms
            self.heard.close_code = self.ws.close_code
            self.stopped.set()

    async def _echo(self, name: str) -> None:
        self.heard.marks.append((name, self.media_ms))
        await self._send(self.msgs.mark(name))

    async def _ticker(self) -> None:
        """Every 20 ms: send one inbound frame, play 20 ms, echo the marks that are due."""
        t0 = time.monotonic()
        tick = 0
        try:
            while not self.stopped.is_set():
                frame = self._speech.pop(0) if self._speech else SILENCE_FRAME
                await self._send(self.msgs.media(b64(frame)))
                played = self.playback.tick()
                for name in played.marks:
                    await self._echo(name)
                self.heard.played += played.frame[: played.got]
                self.heard.underrun_ms += played.underrun_bytes // 8
                tick += 1
                self.media_ms += 20
                await asyncio.sleep(max(0.0, t0 + tick * 0.02 - time.monotonic()))
        except Exception as exc:
            if not self.stopped.is_set():
                self.heard.bad.append(f"ticker: {type(exc).__name__}")

    # -- waiting helpers

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out; heard marks={self.heard.marks} bad={self.heard.bad}"
                )
            await asyncio.sleep(0.01)

    def mark_echoed(self, name: str) -> bool:
        return any(n == name for n, _ in self.heard.marks)
