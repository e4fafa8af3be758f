"""Caller memory on real calls: a returning caller (the same number) is greeted with the
script's ``returning_greeting`` and their earlier calls' summaries reach the LLM brain's
context; never another caller's, and nothing once they are erased. A relay app gets them in
``setup.customParameters.callerHistory``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from hotline.core.brain import CallStarted
from hotline.core.relay import RelaySession
from hotline.server.settings import ListenSettings
from hotline.sim.llm_server import StandIn
from tests.e2e.test_conversation import llm
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
from tests.support.server import ADMIN, Running, running_server


def test_a_returning_caller_is_greeted_as_one_and_an_erased_one_is_not(
    call_database_url: str, tmp_path: Path
) -> None:
    async def main() -> None:
        settings = records_settings(call_database_url)
        async with running_server(records=settings, script_path=script_file(tmp_path)) as run:
            for n, number in enumerate((NUMBER_A, NUMBER_A, NUMBER_B), start=1):
                await place_call(run, sid(n), number)
            greetings = [(await greeting(run, sid(n))) for n in (1, 2, 3)]
            assert greetings == ["Hi there.", "Welcome back.", "Hi there."]
            assert "Welcome back." in tts_texts(run)  # spoken, not only recorded
            async with httpx.AsyncClient() as client:
                r = await client.delete(f"{run.base}/callers/{NUMBER_A}", headers=ADMIN)
            assert r.json() == {"deleted": 2}
            await place_call(run, sid(4), NUMBER_A)
            assert await greeting(run, sid(4)) == "Hi there."

    arun(main, 120)


async def greeting(run: Running, call_sid: str) -> str:
    """The first line hotline said on the call (from its record)."""
    record = await get(run, f"/history/{call_sid}")
    first = record["turns"][0]
    assert first["speaker"] == "hotline"
    return str(first["text"])


def _system(request: dict[str, object]) -> str:
    messages = request["messages"]
    assert isinstance(messages, list) and messages[0]["role"] == "system"
    return str(messages[0]["content"])


def test_the_llm_brain_gets_the_callers_earlier_calls_and_no_one_elses(tmp_path: Path) -> None:
    async def main() -> None:
        standin = StandIn(
            replies={
                "Caller: I lost my ticket": "Fan lost a ticket for Portland; wants a reissue.",
                "ticket": "Write to tickets at wren calloway dot com.",
                "merch": "The merch table has shirts.",
            }
        )
        async with llm(standin) as url:
            listen = ListenSettings(stt="off", brain="llm", llm_url=url)
            records = records_settings(f"sqlite:///{tmp_path}/r.sqlite3")
            script = script_file(tmp_path)
            async with running_server(listen=listen, records=records, script_path=script) as run:
                await place_call(run, sid(1), NUMBER_A, says=("I lost my ticket",))
                first = run.hub.records
                assert first is not None
                stored = await first.store.get(sid(1))
                assert stored is not None
                assert stored.summary == "Fan lost a ticket for Portland; wants a reissue."
                assert stored.summary_by == "llm"

                turns = len(standin.requests)
                await place_call(run, sid(2), NUMBER_B, says=("Any merch?",))
                stranger = [r for r in standin.requests[turns:] if r.get("stream")]
                assert stranger and "called before" not in _system(stranger[0])
                assert "Fan lost a ticket" not in _system(stranger[0])

                turns = len(standin.requests)
                await place_call(run, sid(3), NUMBER_A, says=("Hello again",))
                again = [r for r in standin.requests[turns:] if r.get("stream")]
                system = _system(again[0])
                assert "called before" in system
                assert "Fan lost a ticket for Portland; wants a reissue." in system
                assert "The merch table has shirts." not in system  # not the other caller's

    arun(main, 150)


def test_a_relay_app_gets_the_callers_history_in_its_setup() -> None:
    history = (
        {"date": "2026-12-01", "summary": "Asked about the Portland show."},
        {"date": "2026-11-20", "summary": "Joined the mailing list."},
    )
    relay = RelaySession()
    relay.send_setup(
        CallStarted("CA1", "MZ1", custom_parameters={"x": "1"}, caller_history=history),
        session_id="VX" + "0" * 32,
    )
    (setup,) = [json.loads(m) for m in relay.data_to_send()]
    params = setup["customParameters"]
    assert params["x"] == "1"
    assert json.loads(params["callerHistory"]) == [dict(h) for h in history]
    stranger = RelaySession()
    stranger.send_setup(CallStarted("CA2", "MZ2"), session_id="VX" + "1" * 32)
    (setup,) = [json.loads(m) for m in stranger.data_to_send()]
    assert "callerHistory" not in setup["customParameters"]
