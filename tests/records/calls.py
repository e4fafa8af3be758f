"""Calls placed for the records tests: the real app, the real local voice, a Twilio side in real
time (:class:`tests.support.twilio.FakeTwilio`) calling from the number a test chooses, and a
short script (its lines play in a second or two)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from hotline.server.session import CallSession
from hotline.server.settings import RecordsSettings
from tests.support.server import ADMIN, Running
from tests.support.twilio import ACCOUNT_SID, FakeTwilio, sign

SCRIPT = """
greeting = "Hi there."
returning_greeting = "Welcome back."
goodbye = "Bye now."
invalid_digit = "No."
goodbye_digit = "0"

[intents.tour]
phrases = ["tour"]
say = "Portland in May."
"""

NUMBER_A = "+15555550123"
NUMBER_B = "+15555550188"


def script_file(tmp_path: Path) -> str:
    path = tmp_path / "script.toml"
    path.write_text(SCRIPT)
    return str(path)


def records_settings(url: str, **kw: Any) -> RecordsSettings:
    return RecordsSettings(database_url=url, **kw)


class Caller(FakeTwilio):
    """FakeTwilio calling from ``number``."""

    def __init__(self, run: Running, call_sid: str, number: str) -> None:
        super().__init__(run, call_sid)
        self.number = number

    async def webhook(
        self, path: str = "/voice", form: dict[str, str] | None = None
    ) -> httpx.Response:
        form = form or {
            "CallSid": self.call_sid,
            "AccountSid": ACCOUNT_SID,
            "From": self.number,
            "To": "+15555550100",
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        url = self.run.base + path
        async with httpx.AsyncClient() as client:
            return await client.post(
                url, data=form, headers={"X-Twilio-Signature": sign(url, form)}
            )


def sid(n: int) -> str:
    return f"CA{n:032d}"


def tts_texts(run: Running) -> list[str]:
    out = []
    for rec in run.voice.records:
        for msg in rec.messages:
            text = msg.get("text")
            if isinstance(text, str) and text.strip():
                out.append(text.strip())
    return out


async def place_call(
    run: Running, call_sid: str, number: str, says: tuple[str, ...] = ("What about the tour?",)
) -> Caller:
    """A whole call: greeted, each line said and answered, hung up; its record written."""
    tw = Caller(run, call_sid, number)
    await tw.start()
    await tw.wait_for(lambda: tw.mark_echoed("u1-end"), 15)
    for n, text in enumerate(says, start=2):
        live = run.hub.registry.get(call_sid)
        assert isinstance(live, CallSession)
        live.call.transcript_final(text, time.perf_counter())
        live.fed()
        await tw.wait_for(lambda n=n: tw.mark_echoed(f"u{n}-end"), 15)
    await tw.hang_up()
    await written(run)
    return tw


async def written(run: Running) -> None:
    records = run.hub.records
    assert records is not None
    await run_until_registry_empty(run)
    assert await records.writer.idle(20), "the records were not written"


async def run_until_registry_empty(run: Running) -> None:
    from tests.support.aio import wait_until

    await wait_until(lambda: not run.hub.registry.attached, 10, "the call to end")


async def get(run: Running, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient() as client:
        response = await client.get(run.base + path, headers=ADMIN, params=params)
    assert response.status_code == 200, response.text
    return response.json()
