"""Scale-out over Redis (``HOTLINE_REDIS_URL``; without it everything stays in-process).

- **Shared phrases**: :class:`RedisPhraseStore` keeps an in-process LRU in front of Redis keys
  ``{prefix}:phrase:{hash}``; what one replica synthesised, the others replay.
- **Call registry**: each replica writes ``{prefix}:call:{CallSid}`` (the call's public info and
  the replica's id) when a call starts and refreshes it every ``heartbeat`` seconds with an
  expiry of ``expiry`` seconds; a crashed replica's calls vanish from every ``/calls`` once
  their keys expire.
- **Commands**: ``say``/``hangup`` posted to a replica that does not hold the call are published
  on the holder's channel ``{prefix}:cmd:{replica}``; the holder acts and pushes the answer to
  ``{prefix}:reply:{id}``, which the first replica waits for. No replica subscribed (the holder
  died) or no registry entry: 404.
- **Redis down**: every operation degrades to the in-process behaviour (local cache, local calls,
  404 for calls held elsewhere), the outage is logged once, a probe retries every
  ``probe_interval`` seconds, and on recovery the live calls are registered again and the
  command channel re-subscribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from hotline.core.cache import CacheStats, PhraseCache

__all__ = ["Cluster", "RedisPhraseStore"]

log = logging.getLogger("hotline.redis")

T = TypeVar("T")
#: (status code, JSON body) of a command acted on by the replica holding the call.
Answer = tuple[int, dict[str, Any]]
LocalCalls = Callable[[], Mapping[str, dict[str, Any]]]
LocalAction = Callable[[str, str, dict[str, Any]], Answer]

#: Seconds the command listener blocks in one read (and so its reaction time to shutdown).
_POLL = 0.2
_ERRORS = (RedisError, OSError, asyncio.TimeoutError)
#: Phrases are kept a week in Redis (its own maxmemory policy bounds it further).
PHRASE_TTL_S = 7 * 24 * 3600


def _redacted(url: str) -> str:
    """The URL without a password (``redis://:secret@host`` -> ``redis://***@host``)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"


class Cluster:
    """One replica's link to the others.

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS).
        heartbeat: seconds between refreshes of this replica's call keys.
        expiry: seconds a call key lives without a refresh.
        prefix: key prefix (several deployments can share one Redis).
        command_timeout: seconds to wait for the holder's answer to a forwarded command.
        probe_interval: seconds between reconnection probes while Redis is down.
    """

    def __init__(
        self,
        url: str,
        *,
        heartbeat: float = 5.0,
        expiry: float = 15.0,
        prefix: str = "hotline",
        command_timeout: float = 2.0,
        probe_interval: float = 0.5,
    ) -> None:
        if not 0 < heartbeat < expiry:
            raise ValueError("heartbeat must be positive and shorter than expiry")
        self.url = url
        self.heartbeat = heartbeat
        self.expiry = expiry
        self.prefix = prefix
        self.command_timeout = command_timeout
        self.probe_interval = probe_interval
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=1.0,
            socket_timeout=command_timeout + 3.0,
            # One immediate retry: a pooled connection may have died with a Redis restart.
            retry=Retry(NoBackoff(), 1),
        )
        self.up = False
        self.outages = 0
        self.forwarded = 0
        self.served = 0
        self._up_event = asyncio.Event()
        self._local_calls: LocalCalls = dict
        self._local_action: LocalAction | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._probe: asyncio.Task[None] | None = None
        self._down_logged = False
        self._closing = False

    # ------------------------------------------------------------------ keys

    def _call_key(self, call_sid: str) -> str:
        return f"{self.prefix}:call:{call_sid}"

    def _ended_key(self, call_sid: str) -> str:
        return f"{self.prefix}:ended:{call_sid}"

    def _phrase_key(self, key: str) -> str:
        return f"{self.prefix}:phrase:{key}"

    @property
    def _channel(self) -> str:
        return f"{self.prefix}:cmd:{self.replica}"

    # ------------------------------------------------------------------ life

    async def start(self, local_calls: LocalCalls, local_action: LocalAction) -> None:
        """Connect (a failure only logs: the replica serves alone until Redis answers)."""
        self._local_calls = local_calls
        self._local_action = local_action
        try:
            await self.client.ping()
        except _ERRORS as exc:
            self._down(exc)
        else:
            self._set_up()
            log.info("redis: %s connected (replica %s)", _redacted(self.url), self.replica)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._heartbeat_loop(), name="hotline-redis-heartbeat"),
            loop.create_task(self._listen_loop(), name="hotline-redis-listen"),
        ]

    async def aclose(self) -> None:
        self._closing = True
        self._up_event.set()  # a listener waiting for Redis wakes up and sees _closing
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        tasks = [*self._tasks, *([self._probe] if self._probe is not None else [])]
        # The listener is not cancelled inside redis-py's get_message (its pubsub cannot always
        # be closed after that); it notices _closing within one poll and closes its pubsub.
        listener = [t for t in tasks if t.get_name() == "hotline-redis-listen"]
        if listener:
            await asyncio.wait(listener, timeout=_POLL * 4)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        self._probe = None
        if self.up:
            calls = list(self._local_calls())
            if calls:
                with contextlib.suppress(*_ERRORS):
                    await self.client.delete(*[self._call_key(sid) for sid in calls])
        with contextlib.suppress(*_ERRORS):
            await self.client.aclose()

    def _set_up(self) -> None:
        self.up = True
        self._down_logged = False
        self._up_event.set()

    def _down(self, exc: BaseException) -> None:
        """Redis failed: serve locally, log once per outage, probe until it answers."""
        if self._closing:
            return
        if self.up or not self._down_logged:
            self.outages += 1
            self._down_logged = True
            log.warning(
                "redis: %s unreachable (%s: %s); serving calls on this replica alone",
                _redacted(self.url),
                type(exc).__name__,
                str(exc)[:200],
            )
        self.up = False
        self._up_event.clear()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(
                self._probe_loop(), name="hotline-redis-probe"
            )

    async def _probe_loop(self) -> None:
        # Pooled connections from before the outage are dead: start afresh after it.
        with contextlib.suppress(*_ERRORS):
            await self.client.connection_pool.disconnect()
        while not self._closing:
            await asyncio.sleep(self.probe_interval)
            try:
                await self.client.ping()
            except _ERRORS:
                continue
            self._set_up()
            log.info("redis: reachable again; calls registered, commands routed")
            await self._register_all()
            return

    async def _guard(self, op: Callable[[], Awaitable[T]], default: T) -> T:
        if not self.up:
            return default
        try:
            return await op()
        except _ERRORS as exc:
            self._down(exc)
            return default

    # ------------------------------------------------------------------ registry

    async def register(self, call_sid: str, info: Mapping[str, Any]) -> None:
        body = json.dumps({**info, "replica": self.replica}, default=str)
        ttl = int(self.expiry * 1000)
        await self._guard(lambda: self.client.set(self._call_key(call_sid), body, px=ttl), None)

    def register_soon(self, call_sid: str, info: Mapping[str, Any]) -> None:
        """:meth:`register` in the background (from synchronous code)."""
        self.run_soon(self.register(call_sid, info))

    def run_soon(self, op: Awaitable[None]) -> None:
        """Run ``op`` (a guarded cluster coroutine) in the background."""

        async def run() -> None:
            await op

        task = asyncio.get_running_loop().create_task(run())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def unregister(self, call_sid: str) -> None:
        await self._guard(lambda: self.client.delete(self._call_key(call_sid)), None)

    async def call_info(self, call_sid: str) -> dict[str, Any] | None:
        """The info a replica last registered for ``call_sid`` (still there for up to
        ``expiry`` seconds after that replica died), or None."""

        async def get() -> dict[str, Any] | None:
            raw = await self.client.get(self._call_key(call_sid))
            if raw is None:
                return None
            try:
                value = json.loads(raw)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None

        return await self._guard(get, None)

    async def mark_ended(self, call_sid: str, ttl: float, how: bytes = b"1") -> None:
        """Record that hotline ended ``call_sid`` on purpose (read by any replica); ``how``:
        ``b"1"``, or what the call was handed to a person with (the registry's encoding)."""
        px = max(1, int(ttl * 1000))
        await self._guard(lambda: self.client.set(self._ended_key(call_sid), how, px=px), None)

    async def was_ended(self, call_sid: str) -> bytes | None:
        """What some replica recorded for ``call_sid`` (``mark_ended``'s ``how``); ``b""``
        if nothing was; None if Redis is not answering (the caller decides alone)."""

        async def get() -> bytes | None:
            value = await self.client.get(self._ended_key(call_sid))
            if value is None:
                return b""
            return value.encode() if isinstance(value, str) else bytes(value)

        return await self._guard(get, None)

    async def count_resume(self, call_sid: str, ttl: float) -> int | None:
        """One more resume of ``call_sid``; the count so far (None if Redis is down)."""

        async def incr() -> int | None:
            key = f"{self.prefix}:resumes:{call_sid}"
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.pexpire(key, max(1, int(ttl * 1000)))
            count, _ = await pipe.execute()
            return int(count)

        return await self._guard(incr, None)

    async def _register_all(self) -> None:
        calls = self._local_calls()
        if not calls:
            return
        ttl = int(self.expiry * 1000)

        async def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            for sid, info in calls.items():
                body = json.dumps({**info, "replica": self.replica}, default=str)
                pipe.set(self._call_key(sid), body, px=ttl)
            await pipe.execute()

        await self._guard(write, None)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            await self._register_all()

    async def calls(self) -> list[dict[str, Any]]:
        """Every replica's live calls (this replica's own from memory, fresh)."""
        local = self._local_calls()
        out = [{**info, "replica": self.replica} for info in local.values()]

        async def remote() -> list[dict[str, Any]]:
            keys = [k async for k in self.client.scan_iter(match=self._call_key("*"), count=500)]
            if not keys:
                return []
            found: list[dict[str, Any]] = []
            for raw in await self.client.mget(keys):
                if raw is None:
                    continue
                with contextlib.suppress(ValueError):
                    info = json.loads(raw)
                    if isinstance(info, dict) and info.get("replica") != self.replica:
                        found.append(info)
            return found

        none: list[dict[str, Any]] = []
        return out + await self._guard(remote, none)

    # ------------------------------------------------------------------ commands

    async def forward(self, call_sid: str, op: str, body: dict[str, Any]) -> Answer | None:
        """Ask the replica holding ``call_sid`` to act.

        Returns:
            The holder's answer; None when no replica holds the call (or Redis is down).
        """

        async def run() -> Answer | None:
            raw = await self.client.get(self._call_key(call_sid))
            if raw is None:
                return None
            try:
                holder = json.loads(raw)["replica"]
            except (ValueError, KeyError, TypeError):
                return None
            if holder == self.replica:
                return None  # our own stale entry: the call is gone
            request_id = secrets.token_hex(8)
            message = json.dumps({"id": request_id, "op": op, "call_sid": call_sid, "body": body})
            receivers = await self.client.publish(f"{self.prefix}:cmd:{holder}", message)
            if not receivers:
                return None  # the holder is gone; its key has not expired yet
            self.forwarded += 1
            reply = await self.client.blpop(
                [f"{self.prefix}:reply:{request_id}"], timeout=self.command_timeout
            )
            if reply is None:
                return 504, {"detail": "the replica holding the call did not answer"}
            status, answer = json.loads(reply[1])
            return int(status), dict(answer)

        return await self._guard(run, None)

    async def _listen_loop(self) -> None:
        while not self._closing:
            await self._up_event.wait()
            if self._closing:
                return
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if self._local_calls():
                    await self._register_all()
                while not self._closing:
                    message = await pubsub.get_message(timeout=_POLL)
                    if message is not None and message.get("type") == "message":
                        await self._serve(message["data"])
            except _ERRORS as exc:
                self._down(exc)
            finally:
                with contextlib.suppress(*_ERRORS):
                    await pubsub.aclose()

    async def _serve(self, data: bytes | str) -> None:
        try:
            msg = json.loads(data)
            request_id = str(msg["id"])
            op = str(msg["op"])
            call_sid = str(msg["call_sid"])
            body = msg.get("body") or {}
            if not isinstance(body, dict):
                raise TypeError("body")
        except (ValueError, KeyError, TypeError):
            log.warning("redis: dropped a malformed command")
            return
        assert self._local_action is not None
        try:
            answer = self._local_action(call_sid, op, body)
        except Exception:
            log.exception("redis: command %s for call %s failed", op, call_sid)
            answer = (500, {"detail": "internal error"})
        self.served += 1
        key = f"{self.prefix}:reply:{request_id}"

        async def reply() -> None:
            pipe = self.client.pipeline(transaction=False)
            pipe.rpush(key, json.dumps(list(answer)))
            pipe.expire(key, 30)
            await pipe.execute()

        await self._guard(reply, None)

    # ------------------------------------------------------------------ phrases

    async def get_phrase(self, key: str) -> bytes | None:
        async def get() -> bytes | None:
            raw = await self.client.get(self._phrase_key(key))
            if raw is None:
                return None
            return raw.encode() if isinstance(raw, str) else bytes(raw)

        return await self._guard(get, None)

    async def put_phrase(self, key: str, ulaw: bytes) -> None:
        await self._guard(
            lambda: self.client.set(self._phrase_key(key), ulaw, ex=PHRASE_TTL_S), None
        )


class RedisPhraseStore:
    """An in-process :class:`PhraseCache` in front of the shared Redis phrases."""

    def __init__(self, cluster: Cluster, max_bytes: int) -> None:
        self.cluster = cluster
        self.cache = PhraseCache(max_bytes)
        self.stats: CacheStats = self.cache.stats

    async def get(self, key: str) -> bytes | None:
        if self.cache.peek(key) is not None:
            return self.cache.get(key)
        remote = await self.cluster.get_phrase(key)
        if remote is None:
            self.stats.misses += 1
            return None
        self.cache.put(key, remote)
        self.stats.hits += 1
        self.stats.remote_hits += 1
        return remote

    async def put(self, key: str, ulaw: bytes) -> None:
        self.cache.put(key, ulaw)
        await self.cluster.put_phrase(key, ulaw)
