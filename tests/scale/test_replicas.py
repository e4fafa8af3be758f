"""Two `hotline serve` processes sharing one real redis-server: calls, commands and phrases
across replicas, a crashed replica's calls expiring, a Redis outage survived."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from hotline.loopback import free_port
from hotline.sim.call_report import CallReport
from hotline.sim.caller import place_call
from hotline.sim.options import CallControl, CallOptions
from tests.scale.conftest import RedisServer
from tests.scale.test_server_scale import SCRIPT, metric
from tests.support.aio import arun
from tests.support.spawn import spawn_serve, wait_healthy

pytestmark = pytest.mark.slow  # real processes in real time: `make test-all`, not `make test`

TOKEN = "replica-test-twilio-token-123456"
ADMIN_TOKEN = "replica-test-admin-token-abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXPIRY = 1.5


class Replica:
    def __init__(self, tmp_path: Path, name: str, redis_url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"{name}.log"
        script = tmp_path / "script.toml"
        script.write_text(SCRIPT)
        env = dict(
            TWILIO_AUTH_TOKEN=TOKEN,
            HOTLINE_PUBLIC_URL=self.base,
            HOTLINE_ADMIN_TOKEN=ADMIN_TOKEN,
            HOTLINE_SCRIPT=str(script),
            HOTLINE_REDIS_URL=redis_url,
            HOTLINE_REDIS_HEARTBEAT="0.2",
            HOTLINE_REDIS_CALL_EXPIRY=str(EXPIRY),
            HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY="0.05",
            PORT=str(self.port),
        )
        self.log = self.log_path.open("wb")
        self.proc = spawn_serve(env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        wait_healthy(self.base, self.proc, 20, self.output)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base, headers=ADMIN) as client:
            return await client.get(path)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base, headers=ADMIN) as client:
            return await client.post(path, **kw)

    async def call_sids(self) -> set[str]:
        r = await self.get("/calls")
        assert r.status_code == 200, r.text
        return {c["call_sid"] for c in r.json()["calls"]}


@pytest.fixture
def replicas(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[Replica]]:
    started: list[Replica] = []

    def spawn(n: int) -> list[Replica]:
        for i in range(n):
            started.append(Replica(tmp_path, f"replica{len(started)}{i}", redis_server.url))
        for rep in started[-n:]:
            rep.wait_ready()
        return started[-n:]

    try:
        yield spawn  # type: ignore[misc]
    finally:
        for rep in started:
            rep.stop()


async def until(cond: Any, timeout: float, what: str) -> float:
    """Poll ``cond`` (sync or async); returns the seconds it took."""
    t0 = time.monotonic()
    while True:
        result = cond()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def start_call(url: str, call_sid: str, **kw: Any) -> tuple[asyncio.Task[CallReport], list[Any]]:
    live: list[CallReport] = []
    options = CallOptions(
        url=url,
        auth_token=TOKEN,
        call_sid=call_sid,
        max_seconds=20,
        on_started=live.append,
        **kw,
    )
    return asyncio.create_task(place_call(options)), live


def test_two_replicas_share_calls_commands_and_phrases(
    replicas: Any, redis_server: RedisServer
) -> None:
    a, b = replicas(2)
    redis_port = redis_server.port

    async def main() -> None:
        sid = "CA" + "a1" * 16
        call, live = start_call(a.base, sid)
        took = await until(lambda: b.call_sids(), 5, "B to list A's call")
        assert sid in await b.call_sids() and sid in await a.call_sids()
        del took
        await until(lambda: live and live[0].marks_received >= 1, 10, "the greeting to play")
        r = await b.post(f"/calls/{sid}/say", json={"text": "Spoken through replica B."})
        assert r.status_code == 202, r.text
        assert r.json()["utterance_id"] == 2
        await until(
            lambda: any(u.mark == "u2-end" for u in live[0].utterances), 10, "the line on A"
        )
        said = next(u for u in live[0].utterances if u.mark == "u2-end")
        assert said.speech_ms > 500  # speech, heard by the caller connected to A
        r = await b.post(f"/calls/{sid}/hangup")
        assert r.status_code == 202, r.text
        report = await asyncio.wait_for(call, 10)
        assert report.ended_by == "server_hangup" and report.errors == []
        await until(lambda: _gone(b, sid), 5, "the call to leave /calls")
        r = await b.post(f"/calls/{sid}/say", json={"text": "Anyone?"})
        assert r.status_code == 404

        # The greeting A synthesised is a cache hit on B, byte for byte.
        sid_b = "CA" + "b2" * 16
        control = CallControl()
        call_b, live_b = start_call(b.base, sid_b, control=control)
        await until(
            lambda: live_b and any(u.mark == "u1-end" for u in live_b[0].utterances),
            10,
            "B's greeting to have played",
        )
        control.hang_up()
        report_b = await asyncio.wait_for(call_b, 10)
        client = redis.Redis(port=redis_port)
        try:
            phrases = [_raw(client.get(k)) for k in client.scan_iter("hotline:phrase:*")]
        finally:
            client.close()
        assert len(phrases) == 2  # the greeting (by A) and the line said through B
        greeting = max(phrases, key=lambda p: p in report_b.heard)
        assert len(greeting) > 8000
        assert greeting in report_b.heard and greeting in report.heard  # played as A rendered it
        metrics_b = (await b.get("/metrics")).text
        assert metric(metrics_b, "hotline_phrase_cache_hits_total") == 1
        assert metric(metrics_b, "hotline_phrase_cache_misses_total") == 0
        assert metric((await a.get("/metrics")).text, "hotline_phrase_cache_misses_total") >= 2

        # A dies without a word: its calls leave B's /calls within the expiry.
        sid_dead = "CA" + "dd" * 16
        call_dead, _ = start_call(a.base, sid_dead)
        await until(lambda: _listed(b, sid_dead), 5, "B to list the doomed call")
        a.proc.kill()
        gone_after = await until(lambda: _gone(b, sid_dead), EXPIRY + 3, "the dead call to expire")
        print(f"dead replica's call left B's /calls after {gone_after:.2f} s (expiry {EXPIRY} s)")
        assert gone_after <= EXPIRY + 1.0
        r = await b.post(f"/calls/{sid_dead}/say", json={"text": "Hello?"})
        assert r.status_code == 404
        await asyncio.wait_for(call_dead, 25)

    arun(main, 80)


def _raw(value: Any) -> bytes:
    assert isinstance(value, bytes)
    return value


async def _listed(rep: Replica, sid: str) -> bool:
    return sid in await rep.call_sids()


async def _gone(rep: Replica, sid: str) -> bool:
    return sid not in await rep.call_sids()


def test_redis_outage_calls_go_on_logged_once_then_recovered(
    replicas: Any, redis_server: RedisServer
) -> None:
    (b,) = replicas(1)

    async def main() -> None:
        sid = "CA" + "c3" * 16
        call, live = start_call(b.base, sid)
        await until(lambda: live and live[0].marks_received >= 1, 10, "the greeting to play")
        key = f"hotline:call:{sid}"
        client = redis.Redis(port=redis_server.port)
        assert client.exists(key)
        client.close()
        redis_server.stop()
        for n in range(2):  # the call goes on: say and /calls work on this replica alone
            r = await b.post(f"/calls/{sid}/say", json={"text": f"Line {n + 2} without Redis."})
            assert r.status_code == 202, r.text
            end = f"u{r.json()['utterance_id']}-end"
            await until(lambda end=end: any(u.mark == end for u in live[0].utterances), 10, end)
            assert await b.call_sids() == {sid}
        assert len(re.findall(r"redis: .* unreachable", b.output())) == 1
        redis_server.start()  # same port, empty: the replica registers its call again
        await until(lambda: "reachable again" in b.output(), 10, "recovery to be logged")
        client = redis.Redis(port=redis_server.port)
        await until(lambda: client.exists(key), 5, "the call to be registered again")
        client.close()
        r = await b.post(f"/calls/{sid}/hangup")
        assert r.status_code == 202
        report = await asyncio.wait_for(call, 10)
        assert report.ended_by == "server_hangup" and report.errors == []
        assert len(re.findall(r"redis: .* unreachable", b.output())) == 1

    arun(main, 60)
