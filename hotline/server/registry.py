"""The live calls of this replica: one registry used by the media route, the admin routes, the
Redis cluster and shutdown.

A media stream is *attached* while its socket is open, and *admitted* once its ``start``
passed the token check (one stream per CallSid). :meth:`CallRegistry.release` undoes both.
The registry knows calls only through :class:`LiveCall`, so it imports nothing from the
session module (and the session imports it, not the other way round).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hotline.core.callstate import CallStateError
from hotline.server.metrics import Metrics
from hotline.server.redis_backend import Cluster

__all__ = ["ENDED_TTL", "MAX_RESUMES", "Answer", "CallRegistry", "Ended", "Handoff", "LiveCall"]

log = logging.getLogger("hotline.app")

#: Seconds an "ended on purpose" record (and a resume count) is kept: far longer than Twilio
#: takes to request the ``<Connect action>`` once the stream has closed.
ENDED_TTL = 300.0
#: Resumes of one call before the action answers ``<Hangup/>`` (a stream that keeps failing
#: must not keep the caller on the line for ever).
MAX_RESUMES = 5
#: End reasons that are not hotline's choice, though hotline closed the stream itself.
_HANDED_OVER = "server shutting down"

#: (HTTP status, JSON body) of a command.
Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Handoff:
    """A call the brain ended for a person (its ``<Connect action>`` hands the caller on).

    Attributes:
        data: ``HandoffData`` (the relay app's ``end.handoffData``, or the script's / LLM's).
        session_id: the ConversationRelay session (``VX...``; "" for other brains).
        seconds: how long the session lasted (``SessionDuration``).
    """

    data: str
    session_id: str = ""
    seconds: int = 0

    def encode(self) -> bytes:
        """As shared through Redis (``{"handoff": ...}``, never ``b"1"``)."""
        record = {"handoff": self.data, "session": self.session_id, "seconds": self.seconds}
        return json.dumps(record, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Handoff | None:
        """A record of :meth:`encode`, or None (a plain "ended", or not one of ours)."""
        try:
            record = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(record, dict) or not isinstance(record.get("handoff"), str):
            return None
        session, seconds = record.get("session", ""), record.get("seconds", 0)
        return cls(
            record["handoff"],
            session if isinstance(session, str) else "",
            seconds if isinstance(seconds, int) else 0,
        )


@dataclass(frozen=True, slots=True)
class Ended:
    """How hotline ended a call on purpose: ``handoff`` None is a plain end (``<Hangup/>``)."""

    handoff: Handoff | None = None


class LiveCall(Protocol):
    """What the registry needs from a call (:class:`hotline.server.session.CallSession`)."""

    @property
    def call_sid(self) -> str | None: ...

    def info(self) -> dict[str, Any]: ...

    def say(self, text: str, interrupt: bool) -> int: ...

    def hangup(self, reason: str = ...) -> None: ...

    def transcript_dict(self) -> dict[str, Any] | None: ...

    #: Why the call ended ("" while it is live), and the close code hotline sends (0: none).
    end_reason: str
    close_code: int

    @property
    def handoff(self) -> Handoff | None:
        """Set when the brain ended the call for a person."""
        ...


def _finishing(call: LiveCall) -> bool:
    """The call's stream has ended and is being torn down."""
    return bool(getattr(call, "end_reason", ""))


class CallRegistry:
    """This replica's live calls.

    Args:
        metrics: ``hotline_calls`` / ``hotline_active_calls`` are kept here.
        cluster: the link to other replicas (commands for calls held elsewhere), or None.
    """

    def __init__(self, metrics: Metrics, cluster: Cluster | None = None) -> None:
        self.metrics = metrics
        self.cluster = cluster
        self._attached: set[LiveCall] = set()
        self._admitted: dict[str, LiveCall] = {}
        #: SIGTERM seen: ``/health`` answers 503 so the platform routes new calls elsewhere.
        self.draining = False
        # CallSid -> (expiry, how it ended) (no Redis, or Redis down)
        self._ended: dict[str, tuple[float, Ended]] = {}
        self._resumes: dict[str, tuple[int, float]] = {}
        self._stream_errors: dict[str, None] = {}  # CallSids whose stream error was logged

    # ------------------------------------------------------------------ life of a call

    def attach(self, call: LiveCall) -> None:
        """A media stream opened (no ``start`` yet)."""
        self._attached.add(call)

    def admit(self, call_sid: str, call: LiveCall) -> bool:
        """``call``'s ``start`` passed the token check: it is now the live call ``call_sid``.

        Returns:
            False if another stream already holds ``call_sid`` (refuse this one).
        """
        held = self._admitted.get(call_sid)
        if held is not None and not _finishing(held):
            return False
        self._admitted[call_sid] = call
        self.metrics.calls.inc()
        if held is None:  # else: takes over a stream that is ending (its release is a no-op)
            self.metrics.active_calls.inc()
        if self.cluster is not None:
            self.cluster.register_soon(call_sid, call.info())
        return True

    async def release(self, call: LiveCall) -> bool:
        """``call`` is over: forget it (and its entry in the shared registry).

        Returns:
            True if it had been admitted.
        """
        self._attached.discard(call)
        sid = call.call_sid
        if sid is None or self._admitted.get(sid) is not call:
            return False
        del self._admitted[sid]
        self.metrics.active_calls.dec()
        if self.cluster is not None:
            await self.cluster.unregister(sid)
        return True

    # ------------------------------------------------------------------ queries

    @property
    def calls(self) -> Mapping[str, LiveCall]:
        """Admitted calls by CallSid, without streams already ending: a call's new stream
        (its ``<Connect action>`` resumed it here) may take over from one still tearing
        down."""
        return {sid: c for sid, c in self._admitted.items() if not _finishing(c)}

    @property
    def attached(self) -> frozenset[LiveCall]:
        """Every open media stream, admitted or not."""
        return frozenset(self._attached)

    def get(self, call_sid: str) -> LiveCall | None:
        return self._admitted.get(call_sid)

    def infos(self) -> dict[str, dict[str, Any]]:
        """Public info of every admitted call, by CallSid."""
        return {sid: call.info() for sid, call in self._admitted.items()}

    async def all_infos(self) -> list[dict[str, Any]]:
        """Every replica's calls when clustered, else this replica's."""
        if self.cluster is not None:
            return await self.cluster.calls()
        return list(self.infos().values())

    # ------------------------------------------------------------------ commands

    def command(self, call_sid: str, op: str, body: Mapping[str, Any]) -> Answer:
        """Act on a call held here: ``say`` (``text``, ``interrupt``) or ``hangup``.

        Returns:
            202 and the outcome; 404 (no such call here), 409 (the call is not accepting
            speech), 422 (bad body), 400 (unknown operation).
        """
        call = self._admitted.get(call_sid)
        if call is None:
            return 404, {"detail": "no such active call"}
        if op == "hangup":
            call.hangup("hangup requested via API")
            return 202, {"call_sid": call_sid, "hangup": True}
        if op != "say":
            return 400, {"detail": f"unknown operation {op!r}"}
        text = body.get("text")
        interrupt = body.get("interrupt", False)
        if not isinstance(text, str) or not text.strip() or not isinstance(interrupt, bool):
            return 422, {"detail": "text must be a non-blank string, interrupt a boolean"}
        try:
            uid = call.say(text, interrupt)
        except CallStateError as exc:
            return 409, {"detail": f"call is not accepting speech ({exc})"}
        return 202, {"call_sid": call_sid, "utterance_id": uid, "interrupt": interrupt}

    async def command_anywhere(self, call_sid: str, op: str, body: dict[str, Any]) -> Answer:
        """:meth:`command` here if this replica holds the call, else on the replica that does."""
        if call_sid not in self._admitted and self.cluster is not None:
            answer = await self.cluster.forward(call_sid, op, body)
            if answer is not None:
                return answer
        return self.command(call_sid, op, body)

    # ------------------------------------------------------------------ ended on purpose

    async def ending(self, call: LiveCall) -> None:
        """``call`` is about to close its stream: if hotline chose to end it (goodbye, the
        hang-up API, the brain's end), record that *before* the close, so the
        ``<Connect action>`` Twilio then requests (from any replica) answers ``<Hangup/>``,
        or hands the caller to a person when the brain ended it so (:class:`Handoff`).
        A stream closed by a shutdown, or one that Twilio closed, is not recorded."""
        sid = call.call_sid
        if sid is None or self._admitted.get(sid) is not call:
            return
        if call.close_code != 1000 or call.end_reason == _HANDED_OVER:
            return
        handoff = call.handoff
        self._record_ended(sid, Ended(handoff))
        if self.cluster is not None:
            how = handoff.encode() if handoff is not None else b"1"
            await self.cluster.mark_ended(sid, ENDED_TTL, how)

    def refused(self, call_sid: str) -> None:
        """A stream for ``call_sid`` was refused (bad token): hotline's decision, so its
        ``<Connect action>`` hangs up rather than resuming (recorded here, and in Redis)."""
        self._record_ended(call_sid)
        if self.cluster is not None:
            self.cluster.run_soon(self.cluster.mark_ended(call_sid, ENDED_TTL))

    def _record_ended(self, sid: str, how: Ended | None = None) -> None:
        now = time.monotonic()
        self._ended[sid] = (now + ENDED_TTL, how or Ended())
        if len(self._ended) > 10_000:
            self._ended = {k: v for k, v in self._ended.items() if v[0] > now}

    async def ended_on_purpose(self, call_sid: str) -> Ended | None:
        """How hotline (this replica, or another through Redis) ended ``call_sid`` itself, or
        None if it did not."""
        local = self._ended.get(call_sid)
        if local is not None and local[0] > time.monotonic():
            return local[1]
        if self.cluster is not None:
            raw = await self.cluster.was_ended(call_sid)
            if raw:
                return Ended(Handoff.decode(raw))
        return None

    async def count_resume(self, call_sid: str) -> int:
        """Count one more resume of ``call_sid``; returns how many there have been."""
        if self.cluster is not None:
            shared = await self.cluster.count_resume(call_sid, ENDED_TTL)
            if shared is not None:
                return shared
        now = time.monotonic()
        count, expiry = self._resumes.get(call_sid, (0, 0.0))
        count = count + 1 if expiry > now else 1
        self._resumes[call_sid] = (count, now + ENDED_TTL)
        if len(self._resumes) > 10_000:
            self._resumes = {k: v for k, v in self._resumes.items() if v[1] > now}
        return count

    async def last_state(self, call_sid: str) -> dict[str, Any]:
        """What is known of ``call_sid`` from before its stream dropped: the info its replica
        last registered in Redis (mode, utterance counts, state), or ``{}`` without Redis."""
        if self.cluster is None:
            return {}
        info = await self.cluster.call_info(call_sid)
        if info is None:
            return {}
        keep = ("mode", "state", "utterances", "current_utterance", "barge_ins", "replica")
        return {k: info[k] for k in keep if k in info}

    def first_stream_error(self, call_sid: str) -> bool:
        """True the first time a stream error is reported for ``call_sid`` (log it once)."""
        if call_sid in self._stream_errors:
            return False
        self._stream_errors[call_sid] = None
        while len(self._stream_errors) > 10_000:
            del self._stream_errors[next(iter(self._stream_errors))]
        return True

    # ------------------------------------------------------------------ shutdown

    def start_drain(self) -> None:
        """SIGTERM: keep every call (they play on); ``/health`` reports ``draining``."""
        if not self.draining:
            self.draining = True
            log.info(
                "draining: %d live call(s) play on; /health answers 503 draining",
                len(self._attached),
            )

    def hangup_all(self, reason: str = _HANDED_OVER) -> None:
        """Hang up every open stream (admitted or not). With the default reason the calls
        are not recorded as ended on purpose: their ``<Connect action>`` resumes them on
        another replica."""
        for call in list(self._attached):
            call.hangup(reason)

    async def drained(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every stream to be released.

        Returns:
            True if none is left.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._attached and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return not self._attached
