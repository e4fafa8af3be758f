"""The live calls of this replica: one registry used by the media route, the admin routes, the
Redis cluster and shutdown.

A media stream is *attached* while its socket is open, and *admitted* once its ``start``
passed the token check (one stream per CallSid). :meth:`CallRegistry.release` undoes both.
The registry knows calls only through :class:`LiveCall`, so it imports nothing from the
session module (and the session imports it, not the other way round).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from hotline.core.call import CallStateError
from hotline.server.metrics import Metrics
from hotline.server.redis_backend import Cluster

__all__ = ["Answer", "CallRegistry", "LiveCall"]

#: (HTTP status, JSON body) of a command.
Answer = tuple[int, dict[str, Any]]


class LiveCall(Protocol):
    """What the registry needs from a call (:class:`hotline.server.session.CallSession`)."""

    @property
    def call_sid(self) -> str | None: ...

    def info(self) -> dict[str, Any]: ...

    def say(self, text: str, interrupt: bool) -> int: ...

    def hangup(self, reason: str = ...) -> None: ...

    def transcript_dict(self) -> dict[str, Any] | None: ...


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

    # ------------------------------------------------------------------ life of a call

    def attach(self, call: LiveCall) -> None:
        """A media stream opened (no ``start`` yet)."""
        self._attached.add(call)

    def admit(self, call_sid: str, call: LiveCall) -> bool:
        """``call``'s ``start`` passed the token check: it is now the live call ``call_sid``.

        Returns:
            False if another stream already holds ``call_sid`` (refuse this one).
        """
        if call_sid in self._admitted:
            return False
        self._admitted[call_sid] = call
        self.metrics.calls.inc()
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
        """Admitted calls by CallSid (read-only view)."""
        return self._admitted

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

    # ------------------------------------------------------------------ shutdown

    def hangup_all(self, reason: str) -> None:
        """Hang up every open stream (admitted or not)."""
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
