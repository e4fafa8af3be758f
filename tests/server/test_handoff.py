"""Handing a caller to a person, for every brain, over real sockets: the call ends as a handoff
on its stream, and Twilio's ``<Connect action>`` (posted here as Twilio posts it, signed) is
answered with the handoff URL's TwiML (a stand-in of a ConversationRelay app's action URL that
checks the signature with twilio's RequestValidator), ``<Dial>`` the handoff number, or, with
neither, ``<Hangup/>`` after a line that promises nobody; a failing handoff URL; the action
landing on another replica (two apps, one real redis-server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from hotline.core.script import default_script
from hotline.server.handoff import HandoffDesk
from hotline.server.registry import Handoff
from hotline.server.settings import ListenSettings
from tests.e2e.test_conversation import caller_says, greeted, tts_texts
from tests.scale.conftest import RedisServer, redis_server
from tests.support.aio import arun
from tests.support.server import AUTH_TOKEN, CALLER, Running, running_server, serve
from tests.support.twilio import ACCOUNT_SID, FakeTwilio

__all__ = ["redis_server"]  # the fixture, imported for these tests

_PERSON = default_script().match_intent("a person")
assert _PERSON is not None and _PERSON.say is not None
#: What the built-in person intent says: a promise.
PROMISE = _PERSON.say
#: A short call script (the built-in greeting takes 15 s to hear) with the built-in person
#: intent's line.
SCRIPT_TOML = f"""
greeting = "Hi."
goodbye = "Bye now."
invalid_digit = "No."

[intents.person]
phrases = ["person", "talk to a person"]
action = "handoff"
say = {json.dumps(PROMISE)}

[intents.goodbye]
phrases = ["goodbye", "that's all"]
action = "goodbye"
"""
SCRIPT = default_script()


@pytest.fixture
def script(tmp_path: Path) -> str:
    path = tmp_path / "script.toml"
    path.write_text(SCRIPT_TOML)
    return str(path)


NUMBER = "+15555550142"
DIAL_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+15555550199</Dial></Response>'


class ActionUrl:
    """A ConversationRelay app's ``<Connect action>`` handler: checks X-Twilio-Signature as
    Twilio's SDKs do, records the form, answers as told (TwiML, a 500, HTML, or too late)."""

    def __init__(self, answer: str = "twiml") -> None:
        self.answer = answer
        self.url = ""
        self.forms: list[dict[str, str]] = []
        self.bad_signatures = 0

    async def action(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        signature = request.headers.get("X-Twilio-Signature", "")
        if not RequestValidator(AUTH_TOKEN).validate(self.url, form, signature):
            self.bad_signatures += 1
            return Response("forbidden", status_code=403)
        self.forms.append(form)
        if self.answer == "500":
            return Response("oops", status_code=500)
        if self.answer == "html":
            return Response("<html><body>hi</body></html>", media_type="text/html")
        if self.answer == "slow":
            await asyncio.sleep(3)
        return Response(DIAL_TWIML, media_type="application/xml")


@contextlib.asynccontextmanager
async def action_url(answer: str = "twiml") -> AsyncIterator[ActionUrl]:
    handler = ActionUrl(answer)
    app = Starlette(routes=[Route("/handoff", handler.action, methods=["POST"])])
    async with serve(app) as base:
        handler.url = f"{base}/handoff?tenant=wren"
        yield handler


async def connect_action(run: Running, tw: FakeTwilio) -> ET.Element:
    """Twilio's ``<Connect action>`` request once the stream has ended (signed), parsed."""
    await tw.wait_for(lambda: tw.stopped.is_set(), 15)
    await tw.close()
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": tw.call_sid,
        "CallStatus": "in-progress",
        "From": CALLER,
        "To": "+15555550100",
        "Direction": "inbound",
    }
    for _ in range(100):  # the stream's replica records the end before it closes the socket
        if await run.hub.registry.ended_on_purpose(tw.call_sid):
            break
        await asyncio.sleep(0.02)
    r = await tw.webhook("/stream-ended?mode=script", form)
    assert r.status_code == 200, r.text
    return ET.fromstring(r.text)


async def ask_for_a_person(run: Running) -> FakeTwilio:
    tw = FakeTwilio(run)
    await greeted(tw)
    caller_says(run, tw, "Can I talk to a person please?")
    return tw


def test_script_handoff_posts_the_action_url_signed_and_answers_with_its_twiml(
    script: str,
) -> None:
    async def main() -> None:
        async with (
            action_url() as app,
            running_server(handoff_url=app.url, script_path=script) as run,
        ):
            tw = await ask_for_a_person(run)
            twiml = await connect_action(run, tw)
            assert ET.tostring(twiml) == ET.tostring(ET.fromstring(DIAL_TWIML))
            assert app.bad_signatures == 0
            (form,) = app.forms
            assert json.loads(form["HandoffData"]) == {"reason": "handoff", "intent": "person"}
            assert form["CallSid"] == tw.call_sid and form["From"] == CALLER
            assert form["SessionStatus"] == "ended" and int(form["SessionDuration"]) >= 0
            assert any(PROMISE[:20] in t for t in tts_texts(run))  # the promise: kept

    arun(main, 60)


def test_no_handoff_configured_promises_nobody_and_hangs_up(
    caplog: pytest.LogCaptureFixture, script: str
) -> None:
    caplog.set_level(logging.INFO, logger="hotline")

    async def main() -> None:
        async with running_server(script_path=script) as run:
            tw = await ask_for_a_person(run)
            twiml = await connect_action(run, tw)
            assert [e.tag for e in twiml] == ["Hangup"]
            said = " ".join(tts_texts(run))
            assert SCRIPT.no_handoff[:30] in said
            assert PROMISE[:20] not in said

    arun(main, 60)
    startup = [r for r in caplog.records if "handoff to a person" in r.getMessage()]
    assert len(startup) == 1 and "none configured" in startup[0].getMessage()


def test_handoff_number_is_dialled_when_the_action_lands_on_another_replica(
    redis_server: RedisServer, script: str
) -> None:
    async def main() -> None:
        shared = {"redis_url": redis_server.url, "handoff_number": NUMBER, "script_path": script}
        async with running_server(**shared) as a, running_server(**shared) as b:
            tw = await ask_for_a_person(a)
            await tw.wait_for(lambda: tw.stopped.is_set(), 15)
            await tw.close()
            # Replica b has never seen the call: only Redis knows it ended for a person.
            assert b.hub.registry.get(tw.call_sid) is None
            for _ in range(100):
                if await b.hub.registry.ended_on_purpose(tw.call_sid):
                    break
                await asyncio.sleep(0.02)
            tw.run = b
            twiml = await connect_action(b, tw)
            assert [(e.tag, e.text) for e in twiml] == [("Dial", NUMBER)]

    arun(main, 60)


@pytest.mark.parametrize("answer", ["500", "html", "slow"])
@pytest.mark.parametrize("number", [NUMBER, None])
def test_a_failing_handoff_url_apologises_then_dials_or_hangs_up_logged_once(
    answer: str, number: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hotline")

    async def main() -> ET.Element:
        async with action_url(answer) as app:
            desk = HandoffDesk(app.url, number, AUTH_TOKEN, SCRIPT, timeout=0.5)
            form = {"CallSid": "CA" + "7" * 32, "From": CALLER, "CallStatus": "in-progress"}
            twiml = await desk.twiml(form, Handoff('{"why":"refund"}', "VX1", 12), "CA7")
            assert app.bad_signatures == 0 and app.forms[0]["HandoffData"] == '{"why":"refund"}'
            assert app.forms[0]["SessionId"] == "VX1" and app.forms[0]["SessionDuration"] == "12"
            return ET.fromstring(twiml)

    twiml = arun(main, 30)
    (say, then) = list(twiml)
    assert (say.tag, say.text) == ("Say", SCRIPT.handoff_failed)
    assert (then.tag, then.text) == (("Dial", NUMBER) if number else ("Hangup", None))
    lines = [r.getMessage() for r in caplog.records if "handoff URL failed" in r.getMessage()]
    assert len(lines) == 1
    assert {"500": "HTTP 500", "html": "not TwiML", "slow": "no answer"}[answer] in lines[0]
    assert CALLER not in lines[0] and "tenant" not in lines[0]


def test_relay_app_end_with_handoff_data_reaches_the_number() -> None:
    from tests.e2e.test_conversation import App, relay_app

    async def main() -> None:
        app = App()
        async with relay_app(app) as url:
            listen = ListenSettings(stt="off", brain="relay", relay_url=url)
            async with running_server(listen=listen, handoff_number=NUMBER) as run:
                tw = FakeTwilio(run)
                await tw.start()
                await tw.wait_for(lambda: bool(app.of("setup")), 5)
                caller_says(run, tw, "OK bye")  # the app answers "Bye now!", then end+handoffData
                twiml = await connect_action(run, tw)
                assert [(e.tag, e.text) for e in twiml] == [("Dial", NUMBER)]
                assert any("Bye now" in t for t in tts_texts(run))

    arun(main, 60)


def test_a_plain_end_still_hangs_up(script: str) -> None:
    async def main() -> None:
        async with running_server(handoff_number=NUMBER, script_path=script) as run:
            tw = FakeTwilio(run)
            await greeted(tw)
            caller_says(run, tw, "that's all, goodbye")
            twiml = await connect_action(run, tw)
            assert [e.tag for e in twiml] == ["Hangup"]

    arun(main, 60)


def test_the_handoff_data_encoding_round_trips() -> None:
    handoff = Handoff('{"a": "ü"}', "VX" + "1" * 32, 42)
    assert Handoff.decode(handoff.encode()) == handoff
    assert Handoff.decode(b"1") is None and Handoff.decode(b"\xff") is None
    assert Handoff.decode(b'{"handoff": 3}') is None
