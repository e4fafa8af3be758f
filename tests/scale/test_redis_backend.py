"""The Redis link on its own: registry with expiry, command routing, shared phrases, outages."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from hotline.server.redis_backend import Cluster, RedisPhraseStore
from tests.scale.conftest import RedisServer
from tests.support.aio import arun


class Replica:
    def __init__(self, url: str) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self.commands: list[tuple[str, str, dict[str, Any]]] = []
        self.cluster = Cluster(url, heartbeat=0.2, expiry=1.0, probe_interval=0.1)

    def act(self, call_sid: str, op: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if call_sid not in self.calls:
            return 404, {"detail": "no such active call"}
        self.commands.append((call_sid, op, body))
        return 202, {"call_sid": call_sid, "op": op}

    async def start(self) -> None:
        await self.cluster.start(lambda: self.calls, self.act)

    async def add(self, call_sid: str) -> None:
        self.calls[call_sid] = {"call_sid": call_sid, "state": "active"}
        await self.cluster.register(call_sid, self.calls[call_sid])


async def wait(cond: Any, timeout: float, what: str) -> None:
    for _ in range(int(timeout / 0.02)):
        if await cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out: {what}")


def test_registry_routing_and_expiry(redis_server: RedisServer) -> None:
    async def main() -> None:
        a, b = Replica(redis_server.url), Replica(redis_server.url)
        await a.start()
        await b.start()
        try:
            await a.add("CAone")
            listed = await b.cluster.calls()
            assert [(c["call_sid"], c["replica"]) for c in listed] == [("CAone", a.cluster.replica)]
            answer = await b.cluster.forward("CAone", "say", {"text": "Hi", "interrupt": False})
            assert answer == (202, {"call_sid": "CAone", "op": "say"})
            assert a.commands == [("CAone", "say", {"text": "Hi", "interrupt": False})]
            assert await b.cluster.forward("CAnobody", "hangup", {}) is None
            # The heartbeat keeps the key alive past its expiry...
            await asyncio.sleep(1.5)
            assert [c["call_sid"] for c in await b.cluster.calls()] == ["CAone"]
            # ...until the replica dies without a word: then it expires everywhere.
            for task in a.cluster._tasks:
                task.cancel()
            await asyncio.gather(*a.cluster._tasks, return_exceptions=True)
            await a.cluster.client.aclose()

            async def gone() -> bool:
                return await b.cluster.calls() == []

            await wait(gone, 3.0, "the dead replica's call to expire")
            assert await b.cluster.forward("CAone", "say", {"text": "x"}) is None
        finally:
            a.cluster._tasks = []
            await a.cluster.aclose()
            await b.cluster.aclose()

    arun(main)


def test_shared_phrases(redis_server: RedisServer) -> None:
    async def main() -> None:
        a, b = Replica(redis_server.url), Replica(redis_server.url)
        await a.start()
        await b.start()
        try:
            store_a = RedisPhraseStore(a.cluster, 1 << 20)
            store_b = RedisPhraseStore(b.cluster, 1 << 20)
            assert await store_b.get("k1") is None
            await store_a.put("k1", b"\x01\x02" * 500)
            assert await store_b.get("k1") == b"\x01\x02" * 500
            assert store_b.stats.remote_hits == 1 and store_b.stats.misses == 1
            assert await store_b.get("k1") == b"\x01\x02" * 500  # now from its own memory
            assert store_b.stats.remote_hits == 1 and store_b.stats.hits == 2
        finally:
            await a.cluster.aclose()
            await b.cluster.aclose()

    arun(main)


def test_outage_logged_once_served_locally_then_recovered(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        a = Replica(redis_server.url)
        await a.start()
        store = RedisPhraseStore(a.cluster, 1 << 20)
        try:
            await a.add("CAsurvivor")
            redis_server.stop()
            with caplog.at_level(logging.WARNING, logger="hotline.redis"):
                for _ in range(5):  # everything keeps working on this replica alone
                    await a.add("CAlocal")
                    await store.put("k", b"abc")
                    assert await store.get("k") == b"abc"
                    assert {c["call_sid"] for c in await a.cluster.calls()} == {
                        "CAsurvivor",
                        "CAlocal",
                    }
                    assert await a.cluster.forward("CAelsewhere", "say", {}) is None
                    await asyncio.sleep(0.1)
            outage_logs = [r for r in caplog.records if "unreachable" in r.getMessage()]
            assert len(outage_logs) == 1 and not a.cluster.up
            redis_server.start()  # same port

            async def back() -> bool:
                return a.cluster.up

            await wait(back, 5.0, "recovery")
            b = Replica(redis_server.url)
            await b.start()
            try:

                async def listed() -> bool:
                    calls = await b.cluster.calls()
                    return {c["call_sid"] for c in calls} == {"CAsurvivor", "CAlocal"}

                await wait(listed, 3.0, "the calls to be registered again")

                async def routed() -> bool:
                    return await b.cluster.forward("CAlocal", "hangup", {}) == (
                        202,
                        {"call_sid": "CAlocal", "op": "hangup"},
                    )

                await wait(routed, 3.0, "commands to be routed again")
            finally:
                await b.cluster.aclose()
            assert a.cluster.outages == 1
        finally:
            await a.cluster.aclose()

    arun(main)
