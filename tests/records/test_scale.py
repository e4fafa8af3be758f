"""Records at scale and under failure, on a real PostgreSQL: two replicas that start together
share one database (a call on A, then the same caller on B, is remembered; ``/history`` on
either shows both); the database stopped mid-call (the call never notices; its record arrives
once the database is back); SIGTERM with the database down (the record is spooled, and the
next start writes it)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from hotline.server.session import CallSession
from hotline.sim.caller import place_call as sim_call
from hotline.sim.messages import CONNECTED
from hotline.sim.options import CallOptions
from hotline.sim.webhook import parse_twiml
from tests.records.calls import (
    NUMBER_A,
    Caller,
    get,
    place_call,
    records_settings,
    script_file,
    sid,
)
from tests.records.conftest import PostgresCluster
from tests.records.test_memory import greeting
from tests.support.aio import arun, wait_until
from tests.support.server import ADMIN, running_server, sign
from tests.support.spawn import hotline_serve


def test_two_replicas_on_one_postgresql_remember_and_list_each_others_calls(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = postgres.create_database()

    async def main() -> None:
        script = script_file(tmp_path)
        async with contextlib.AsyncExitStack() as stack:
            # started together: both migrate the empty database at once (one does, under the lock)
            a, b = await asyncio.gather(
                *(
                    stack.enter_async_context(
                        running_server(records=records_settings(url), script_path=script)
                    )
                    for _ in range(2)
                )
            )
            await place_call(a, sid(1), NUMBER_A)
            await place_call(b, sid(2), NUMBER_A)
            assert await greeting(b, sid(2)) == "Welcome back."  # A's call, remembered on B
            # the webhook answered by A, the stream landing on B: B looks the caller up itself
            tw = Caller(b, sid(3), NUMBER_A)
            tw.run = a  # the webhook goes to A ...
            response = await tw.webhook()
            _, tw.params = parse_twiml(response.text)
            tw.run = b  # ... the stream to B, with A's token (the replicas share the key)
            ws_url = b.ws_url
            tw.ws = await connect(
                ws_url, additional_headers={"X-Twilio-Signature": sign(ws_url, {})}
            )
            await tw.ws.send(CONNECTED)
            await tw.ws.send(tw.msgs.start(tw.params))
            tw._tasks = [asyncio.create_task(tw._reader()), asyncio.create_task(tw._ticker())]
            await tw.wait_for(lambda: tw.mark_echoed("u1-end"), 15)
            await tw.hang_up()
            assert b.hub.records is not None and await b.hub.records.writer.idle(20)
            assert await greeting(b, sid(3)) == "Welcome back."
            for run in (a, b):
                listing = await get(run, "/history")
                assert [c["call_sid"] for c in listing["calls"]] == [sid(3), sid(2), sid(1)]
                assert (await get(run, f"/calls/{sid(1)}/transcript"))["entries"]

    arun(main, 120)


def test_the_database_down_mid_call_is_never_noticed_and_the_record_arrives_later(
    own_postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = own_postgres.create_database()

    async def main() -> None:
        settings = records_settings(url)
        async with running_server(records=settings, script_path=script_file(tmp_path)) as run:
            records = run.hub.records
            assert records is not None
            tw = Caller(run, sid(1), NUMBER_A)
            await tw.start()
            await tw.wait_for(lambda: tw.mark_echoed("u1-end"), 15)
            await asyncio.to_thread(own_postgres.stop)  # mid-call
            live = run.hub.registry.get(sid(1))
            assert isinstance(live, CallSession)
            live.call.transcript_final("What about the tour?", time.perf_counter())
            live.fed()
            await tw.wait_for(lambda: tw.mark_echoed("u2-end"), 15)  # answered as ever
            await tw.hang_up()
            assert tw.heard.bad == [] and tw.heard.underrun_ms == 0
            await wait_until(lambda: records.writer.down, 15, "the write to fail")
            async with httpx.AsyncClient() as client:
                r = await client.get(f"{run.base}/history", headers=ADMIN)
                assert r.status_code == 503  # said plainly, not a 500
                # waiting in memory, the record is already served by CallSid
                r = await client.get(f"{run.base}/history/{sid(1)}", headers=ADMIN)
                assert r.status_code == 200 and r.json()["call_sid"] == sid(1)
            await asyncio.to_thread(own_postgres.start)
            assert await records.writer.idle(30)
            listing = await get(run, "/history")
            assert [c["call_sid"] for c in listing["calls"]] == [sid(1)]
            assert listing["calls"][0]["summary"]

    arun(main, 120)


TOKEN = "records-drain-token-0123456789abcdef"


@pytest.mark.slow  # two real `hotline serve` processes in real time
def test_sigterm_with_the_database_down_spools_the_record_and_the_next_start_writes_it(
    own_postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = own_postgres.create_database()
    spool = tmp_path / "records.spool"
    env = {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "HOTLINE_ADMIN_TOKEN": "admin-token-for-drain",
        "HOTLINE_SCRIPT": script_file(tmp_path),
        "HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY": "0.05",
        "HOTLINE_DATABASE_URL": url,
        "HOTLINE_RECORDS_SPOOL": str(spool),
        "HOTLINE_STT": "off",
    }
    admin = {"Authorization": "Bearer admin-token-for-drain"}
    with hotline_serve("--insecure-dev", **env) as served:

        async def call() -> None:
            report = await sim_call(
                CallOptions(url=served.base, auth_token=TOKEN, max_seconds=4, from_number=NUMBER_A)
            )
            assert report.utterances, report

        own_postgres.stop()
        arun(call, 60)
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(30) == 0
    assert spool.exists() and spool.read_text().count("\n") == 1
    assert "5555550123" not in spool.read_text()  # hashed and masked in the spool too
    own_postgres.start()
    with hotline_serve("--insecure-dev", **env) as served:
        deadline = time.monotonic() + 30
        while True:
            calls = httpx.get(served.base + "/history", headers=admin, timeout=5).json()["calls"]
            if calls or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(calls) == 1 and calls[0]["caller"] == "+1555***0123"
        mine = httpx.get(
            served.base + "/history", headers=admin, params={"caller": NUMBER_A}, timeout=5
        )
        assert [c["call_sid"] for c in mine.json()["calls"]] == [calls[0]["call_sid"]]
        gone = httpx.delete(served.base + f"/callers/{NUMBER_A}", headers=admin, timeout=5)
        assert gone.json() == {"deleted": 1}
    assert not spool.exists()
    # the number went through a query and a path: the access log shows it masked only
    assert "/callers/" in served.stderr and "5555550123" not in served.stderr
