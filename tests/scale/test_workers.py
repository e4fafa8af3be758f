"""``hotline serve --workers N``: N processes on one port sharing one real redis-server; a
``say`` posted to the port reaches the call whichever worker holds it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
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
from tests.scale.test_server_scale import SCRIPT
from tests.support.spawn import run_serve, spawn_serve, wait_healthy

TOKEN = "workers-test-twilio-token-123456"
ADMIN = {"Authorization": "Bearer workers-test-admin-token-abcdef"}


def test_workers_refused_without_redis() -> None:
    r = run_serve("--insecure-dev", "--workers", "2")
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.startswith("hotline serve:")]
    assert len(lines) == 1 and "HOTLINE_REDIS_URL" in lines[0], r.stderr


def test_workers_refuse_zero() -> None:
    r = run_serve("--insecure-dev", "--workers", "0")
    assert r.returncode == 2 and "--workers must be >= 1" in r.stderr


@pytest.mark.slow
def test_say_reaches_the_call_whichever_worker_holds_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    script = tmp_path / "script.toml"
    script.write_text(SCRIPT)
    log_path = tmp_path / "serve.log"
    env = dict(
        TWILIO_AUTH_TOKEN=TOKEN,
        HOTLINE_PUBLIC_URL=base,
        HOTLINE_ADMIN_TOKEN=ADMIN["Authorization"].split()[1],
        HOTLINE_SCRIPT=str(script),
        HOTLINE_REDIS_URL=redis_server.url,
        HOTLINE_REDIS_HEARTBEAT="0.2",
        HOTLINE_REDIS_CALL_EXPIRY="1.5",
        HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY="0.05",
        PORT=str(port),
    )
    with log_path.open("wb") as log:
        proc = spawn_serve("--workers", "2", env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(base, proc, 30, lambda: log_path.read_text("utf-8", "replace"))
            asyncio.run(asyncio.wait_for(_route_says(base, redis_server.port), 90))
        finally:
            proc.terminate()
            try:
                code = proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                raise
    out = log_path.read_text("utf-8", "replace")
    assert code == 0, out
    assert out.count("worker ") >= 2 and "Traceback" not in out, out


async def _until(cond: Any, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _route_says(base: str, redis_port: int) -> None:
    client = redis.Redis(port=redis_port)
    calls: dict[str, tuple[asyncio.Task[CallReport], list[CallReport], CallControl]] = {}
    holders: dict[str, str] = {}
    try:
        # Calls until two different workers hold one (the kernel picks the worker per connection).
        for i in range(16):
            sid = f"CA{i:02d}" + "c3" * 15
            live: list[CallReport] = []
            control = CallControl()
            opts = CallOptions(
                url=base,
                auth_token=TOKEN,
                call_sid=sid,
                max_seconds=30,
                on_started=live.append,
                control=control,
            )
            calls[sid] = (asyncio.create_task(place_call(opts)), live, control)

            def held(sid: str = sid) -> bool:
                return client.get(f"hotline:call:{sid}") is not None

            await _until(held, 10, f"call {sid} to be registered")
            holders[sid] = json.loads(client.get(f"hotline:call:{sid}"))["replica"]  # type: ignore[arg-type]
            if len(set(holders.values())) == 2:
                break
        assert len(set(holders.values())) == 2, holders
        # Every say goes on a new connection to the one port, so to either worker: the holder
        # acts on its own, the other forwards through Redis. Each must reach the call.
        for sid, (_task, live, _control) in calls.items():
            await _until(lambda live=live: live and live[0].marks_received >= 1, 10, "greeting")
            last = 0
            for n in range(4):
                async with httpx.AsyncClient(
                    base_url=base, headers=ADMIN, limits=httpx.Limits(max_keepalive_connections=0)
                ) as http:
                    r = await http.post(f"/calls/{sid}/say", json={"text": f"Line {n}."})
                assert r.status_code == 202, r.text
                last = r.json()["utterance_id"]
            assert last == 5  # greeting + four lines, all queued on the holder

            def heard(live: list[CallReport] = live, last: int = last) -> bool:
                return any(u.mark == f"u{last}-end" for u in live[0].utterances)

            await _until(heard, 20, f"the last line of {sid} to play")
        for _task, _live, control in calls.values():
            control.hang_up()
        reports = await asyncio.wait_for(asyncio.gather(*(t for t, _, _ in calls.values())), 15)
        assert all(r.errors == [] for r in reports), [r.errors for r in reports]
    finally:
        for task, _, control in calls.values():
            control.hang_up()
            task.cancel()
        client.close()
