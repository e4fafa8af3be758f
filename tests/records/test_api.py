"""Call records through the API, on real calls: ``/history``, ``/history/{CallSid}``,
``DELETE /callers/{number}``, ``/calls/{CallSid}/transcript`` served from the record; a restart
keeps them; the admin token guards every one; numbers are hashed and masked at rest."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from hotline.records import privacy
from tests.records.calls import (
    NUMBER_A,
    NUMBER_B,
    get,
    place_call,
    records_settings,
    script_file,
    sid,
    tts_texts,
)
from tests.support.aio import arun
from tests.support.server import ADMIN, running_server


def test_a_call_is_recorded_and_served_by_the_api(call_database_url: str, tmp_path: Path) -> None:
    async def main() -> None:
        settings = records_settings(call_database_url)
        async with running_server(records=settings, script_path=script_file(tmp_path)) as run:
            await place_call(run, sid(1), NUMBER_A)
            await place_call(run, sid(2), NUMBER_B, says=("Is there a tour?", "Thanks"))

            listing = await get(run, "/history")
            assert [c["call_sid"] for c in listing["calls"]] == [sid(2), sid(1)]
            assert listing["next"] is None
            first = listing["calls"][1]
            assert first["caller"] == "+1555***0123"
            assert first["outcome"] == "twilio stop" and first["ended_by"] == "caller"
            assert first["started_at"].endswith("Z") and first["ended_at"] >= first["started_at"]
            assert "What about the tour?" in first["summary"]

            page = await get(run, "/history", limit=1)
            assert [c["call_sid"] for c in page["calls"]] == [sid(2)]
            rest = await get(run, "/history", limit=1, cursor=page["next"])
            assert [c["call_sid"] for c in rest["calls"]] == [sid(1)]
            mine = await get(run, "/history", caller="+1 555 555 0123")
            assert [c["call_sid"] for c in mine["calls"]] == [sid(1)]
            later = await get(run, "/history", since="2999-01-01")
            assert later["calls"] == []

            whole = await get(run, f"/history/{sid(1)}")
            said = [(t["speaker"], t["text"]) for t in whole["turns"]]
            assert said == [
                ("hotline", "Hi there."),
                ("caller", "What about the tour?"),
                ("hotline", "Portland in May."),
            ]
            reply = whole["turns"][2]
            assert set(reply["latency_ms"]) >= {"final", "first_audio", "sent"}
            assert reply["topic"] == "tour" and "Answered: tour." in whole["summary"]
            assert whole["summary_by"] == "plain" and whole["brain"] == "script"
            assert "caller_number" not in whole

            transcript = await get(run, f"/calls/{sid(1)}/transcript")
            assert [e["text"] for e in transcript["entries"]] == [t for _, t in said]
            assert transcript["ended"] is True

            async with httpx.AsyncClient() as client:
                for method, path in (
                    ("GET", "/history"),
                    ("GET", f"/history/{sid(1)}"),
                    ("GET", f"/calls/{sid(1)}/transcript"),
                    ("DELETE", f"/callers/{NUMBER_A}"),
                ):
                    for headers in ({}, {"Authorization": "Bearer wrong"}):
                        r = await client.request(method, run.base + path, headers=headers)
                        assert r.status_code == 401, (method, path, r.status_code)
                r = await client.get(run.base + "/history", headers=ADMIN, params={"cursor": "x"})
                assert r.status_code == 422
                r = await client.get(run.base + "/history/CA404", headers=ADMIN)
                assert r.status_code == 404
                r = await client.delete(run.base + f"/callers/{NUMBER_A}", headers=ADMIN)
                assert r.status_code == 200 and r.json() == {"deleted": 1}
            remaining = await get(run, "/history")
            assert [c["call_sid"] for c in remaining["calls"]] == [sid(2)]
            records = run.hub.records
            assert records is not None
            stored = await records.store.get(sid(2))
            assert stored is not None and stored.caller_number is None
            assert stored.caller_key == privacy.caller_key(records.config.key, NUMBER_B)
            assert NUMBER_B not in str(stored.row()) and "5555550188" not in str(stored.row())

    arun(main, 120)


def test_records_survive_a_restart_and_numbers_are_kept_only_when_asked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/records.sqlite3"

    async def main() -> None:
        script = script_file(tmp_path)
        async with running_server(records=records_settings(url), script_path=script) as run:
            await place_call(run, sid(1), NUMBER_A)
        settings = records_settings(url, store_caller_numbers=True)
        async with running_server(records=settings, script_path=script) as run:
            listing = await get(run, "/history")
            assert [c["call_sid"] for c in listing["calls"]] == [sid(1)]
            await place_call(run, sid(2), NUMBER_B)
            assert (await get(run, f"/history/{sid(2)}"))["caller_number"] == NUMBER_B
            assert "caller_number" not in await get(run, f"/history/{sid(1)}")
            # tts of both calls' greetings: the first caller is not back, the second is new
            assert "Welcome back." not in tts_texts(run)

    arun(main, 120)
    raw = (tmp_path / "records.sqlite3").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("records.sqlite3-*")
    )
    assert b"5555550123" not in raw


def test_records_off_keeps_the_transcripts_in_memory(tmp_path: Path) -> None:
    async def main() -> None:
        settings = records_settings("off")
        async with running_server(records=settings, script_path=script_file(tmp_path)) as run:
            assert run.hub.records is None
            tw = await place_call_off(run)
            transcript = await get(run, f"/calls/{tw}/transcript")
            assert transcript["entries"]
            async with httpx.AsyncClient() as client:
                r = await client.get(run.base + "/history", headers=ADMIN)
            assert r.status_code == 404 and "off" in r.text

    async def place_call_off(run: object) -> str:
        from tests.records.calls import Caller
        from tests.support.aio import wait_until

        caller = Caller(run, sid(9), NUMBER_A)  # type: ignore[arg-type]
        await caller.start()
        await caller.wait_for(lambda: caller.mark_echoed("u1-end"), 15)
        await caller.hang_up()
        await wait_until(lambda: not run.hub.registry.attached, 10)  # type: ignore[attr-defined]
        return sid(9)

    arun(main, 60)


@pytest.mark.parametrize("bad", ["123", "not-a-number"])
def test_bad_caller_filters_are_refused(tmp_path: Path, bad: str) -> None:
    async def main() -> None:
        url = f"sqlite:///{tmp_path}/r.sqlite3"
        async with running_server(records=records_settings(url)) as run:
            async with httpx.AsyncClient() as client:
                r = await client.get(run.base + "/history", headers=ADMIN, params={"since": bad})
                assert r.status_code == (200 if bad == "123" else 422)
                r = await client.delete(run.base + "/callers/%20", headers=ADMIN)
                assert r.status_code == 422

    arun(main, 60)
