"""The owner told: after a real call, a signed ``call.ended`` webhook (retried past a receiver
that fails twice, the same event id every time) and the summary by SMS through the official
``twilio`` client against a stand-in of Twilio's Messages API; nothing of the caller's number
or words in the logs."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hotline.errors import ConfigError
from hotline.records.notify import sign
from hotline.server.settings import RecordsSettings, Settings
from tests.records.calls import NUMBER_A, place_call, records_settings, script_file, sid
from tests.records.twilio_api import TwilioApi
from tests.support.aio import arun, wait_until
from tests.support.server import AUTH_TOKEN, running_server, serve_asgi

SECRET = "notify-secret-0123"
ACCOUNT = "AC" + "2" * 32
OWNER = "+15555550177"
SENDER = "+15555550100"


class Receiver:
    """The owner's webhook endpoint: fails ``fail`` times, then answers 200."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.got: list[tuple[dict[str, str], bytes]] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        self.got.append((dict(request.headers), await request.body()))
        if len(self.got) <= self.fail:
            return Response("try later", status_code=503)
        return Response(status_code=204)


def url_of(server: Any, path: str) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def test_the_owner_gets_a_signed_webhook_and_an_sms_after_a_call(tmp_path: Path) -> None:
    receiver = Receiver(fail=2)
    twilio = TwilioApi(ACCOUNT, AUTH_TOKEN, faults=[500])

    async def main() -> None:
        async with serve_asgi(receiver.app()) as hook, serve_asgi(twilio.app()) as api:
            settings = records_settings(
                f"sqlite:///{tmp_path}/r.sqlite3",
                notify_url=url_of(hook, "/hook"),
                notify_secret=SECRET,
                owner_number=OWNER,
                twilio_account_sid=ACCOUNT,
                sms_from=SENDER,
                twilio_api_url=url_of(api, ""),
            )
            async with running_server(records=settings, script_path=script_file(tmp_path)) as run:
                await place_call(run, sid(1), NUMBER_A)
                await wait_until(lambda: len(receiver.got) >= 3, 20, "three webhook attempts")
                await wait_until(lambda: len(twilio.messages) == 1, 20, "the SMS")
                logs = json.dumps(run.hub.ring.snapshot(limit=1000))

        # the webhook: three attempts (two refused), one event id, each signed over its body
        ids = {headers["x-hotline-event-id"] for headers, _ in receiver.got}
        assert len(receiver.got) == 3 and len(ids) == 1
        for headers, body in receiver.got:
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["x-hotline-signature"] == expected == sign(SECRET, body)
            assert headers["content-type"] == "application/json"
        event = json.loads(receiver.got[-1][1])
        assert event["type"] == "call.ended" and event["id"] in ids
        call = event["call"]
        assert call["call_sid"] == sid(1) and call["caller"] == "+1555***0123"
        assert "What about the tour?" in call["summary"]
        assert [t["speaker"] for t in call["turns"]] == ["hotline", "caller", "hotline"]

        # the SMS: one refused with a 500, then sent (twilio's client, basic auth, the form)
        assert twilio.attempts == 2
        (message,) = twilio.messages
        assert message["To"] == OWNER and message["From"] == SENDER
        assert call["summary"] in message["Body"] and "+1555***0123" in message["Body"]

        # never a number, a summary or the caller's words in the logs
        for secret in ("5555550123", "5555550177", "What about the tour", call["summary"]):
            assert secret not in logs, secret

    arun(main, 90)


def test_a_webhook_that_never_answers_2xx_is_given_up_after_its_attempts(tmp_path: Path) -> None:
    from hotline.records.model import CallRecord
    from hotline.records.notify import WebhookNotifier

    receiver = Receiver(fail=100)

    async def main() -> None:
        async with serve_asgi(receiver.app()) as hook:
            notifier = WebhookNotifier(url_of(hook, "/hook"), None, attempts=3, backoff=0.05)
            notifier.notify(CallRecord("CA1", 0, 1000, "x", "caller", "script", "***"))
            await wait_until(lambda: notifier.failed == 1, 10, "the notifier to give up")
            await notifier.aclose()
        assert len(receiver.got) == 3
        assert "x-hotline-signature" not in receiver.got[0][0]  # no secret: unsigned

    arun(main, 30)


def test_sms_settings_are_checked_up_front() -> None:
    with pytest.raises(ConfigError, match="HOTLINE_SMS_FROM"):
        RecordsSettings(owner_number=OWNER, twilio_account_sid=ACCOUNT)
    with pytest.raises(ConfigError, match=r"E\.164"):
        RecordsSettings(owner_number="555-0177", twilio_account_sid=ACCOUNT, sms_from=SENDER)
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        Settings(
            records=RecordsSettings(owner_number=OWNER, twilio_account_sid=ACCOUNT, sms_from=SENDER)
        )
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1"):
        RecordsSettings(twilio_api_url="https://api.twilio.com")
    for bad in ("mysql://x/y", "sqlite://", "postgresql:///nohost", "redis://h"):
        with pytest.raises(ConfigError, match="HOTLINE_DATABASE_URL"):
            Settings.from_env({"HOTLINE_DATABASE_URL": bad})
    assert Settings.from_env({"DATABASE_URL": "postgres://u:p@db:5432/r"}).records.database_url == (
        "postgres://u:p@db:5432/r"
    )
    assert not Settings.from_env({"HOTLINE_DATABASE_URL": "OFF"}).records.enabled
