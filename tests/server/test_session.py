"""Session logic in-process: Starlette's TestClient drives ``create_app`` (its lifespan starts
the real local voice on 127.0.0.1), a media stream over ``websocket_connect``, the registry
through the app's own event loop. No uvicorn, no fake Twilio playing in real time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketTestSession

from hotline.server.app import create_app
from hotline.server.hub import Hub
from hotline.server.phrases import LocalPhraseStore
from hotline.server.settings import Settings
from hotline.server.speech import SpeechPath

from .harness import ADMIN, ADMIN_TOKEN, AUTH_TOKEN, CALLER, FaultSwitch, sign

PUBLIC = "https://hotline.example.com"
WS_URL = "wss://hotline.example.com/media-stream"
STREAM_SID = "MZ" + "a" * 32
#: Messages a test reads before giving up (a greeting is ~200 frames): no clock involved.
MAX_MESSAGES = 5000
#: Settings overrides for a client with a phrase cache (``indirect`` parametrisation).
CACHED = {"cache_bytes": 1 << 20}


def _settings(**overrides: Any) -> Settings:
    kwargs: dict[str, Any] = {
        "twilio_auth_token": AUTH_TOKEN,
        "public_url": PUBLIC,
        "admin_token": ADMIN_TOKEN,
        "local_voice_first_chunk_delay": 0.0,
        "tts_timeout": 5.0,
        "elevenlabs_transport": "single",
        "cache_bytes": 0,
    }
    kwargs.update(overrides)
    return Settings(**kwargs)


#: A short script: the server paces audio in real time, so short lines keep the tests short.
SCRIPT = """
greeting = "Hello there."
invalid_digit = "No."
goodbye = "Bye."
goodbye_digit = "0"
"""


@pytest.fixture
def script_path(tmp_path: Path) -> str:
    path = tmp_path / "script.toml"
    path.write_text(SCRIPT, "utf-8")
    return str(path)


@pytest.fixture
def client(request: pytest.FixtureRequest, script_path: str) -> Iterator[TestClient]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    with TestClient(create_app(_settings(script_path=script_path, **overrides))) as c:
        yield c


def _hub(client: TestClient) -> Hub:
    hub: Hub = client.app.state.hub  # type: ignore[attr-defined]
    return hub


def _answer(client: TestClient, call_sid: str, path: str = "/voice") -> str:
    """POST the signed webhook; return the per-call token from the TwiML."""
    form = {"CallSid": call_sid, "From": CALLER, "AccountSid": "AC" + "1" * 32}
    r = client.post(path, data=form, headers={"X-Twilio-Signature": sign(PUBLIC + path, form)})
    assert r.status_code == 200, r.text
    params = {p.get("name"): p.get("value") for p in ET.fromstring(r.text).iter("Parameter")}
    token = params["token"]
    assert token
    return token


@dataclass
class Heard:
    media: bytearray = field(default_factory=bytearray)
    marks: list[str] = field(default_factory=list)
    clears: int = 0
    close_code: int | None = None


class Line:
    """Twilio's side of one media stream (sends what Twilio sends, echoes marks at once)."""

    def __init__(self, ws: WebSocketTestSession, call_sid: str) -> None:
        self.ws = ws
        self.call_sid = call_sid
        self.seq = 0
        self.heard = Heard()

    def send(self, event: str, **fields: Any) -> None:
        self.seq += 1
        msg = {"event": event, "sequenceNumber": str(self.seq), "streamSid": STREAM_SID, **fields}
        self.ws.send_text(json.dumps(msg))

    def start(self, token: str) -> None:
        self.ws.send_text(json.dumps({"event": "connected", "protocol": "Call", "version": "1"}))
        params = {"CallSid": self.call_sid, "From": CALLER, "token": token}
        self.send(
            "start",
            start={
                "streamSid": STREAM_SID,
                "callSid": self.call_sid,
                "accountSid": "AC" + "1" * 32,
                "tracks": ["inbound"],
                "customParameters": params,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        )

    def read_until(self, mark: str | None) -> Heard:
        """Read until ``mark`` echoes (None: until the server closes the stream)."""
        for _ in range(MAX_MESSAGES):
            message = self.ws.receive()
            if message["type"] == "websocket.close":
                self.heard.close_code = message.get("code", 1000)
                return self.heard
            msg = json.loads(message["text"])
            if msg["event"] == "media":
                self.heard.media += base64.b64decode(msg["media"]["payload"])
            elif msg["event"] == "mark":
                name = msg["mark"]["name"]
                self.heard.marks.append(name)
                self.send("mark", mark={"name": name})
                if name == mark:
                    return self.heard
            elif msg["event"] == "clear":
                self.heard.clears += 1
        raise AssertionError(f"no {mark or 'close'} within {MAX_MESSAGES} messages")


def _open(client: TestClient) -> Any:
    return client.websocket_connect(
        "/media-stream", headers={"X-Twilio-Signature": sign(WS_URL, {})}
    )


def _wait(client: TestClient, predicate: Any, what: str) -> None:
    """Let the app's loop run until ``predicate()`` (evaluated on that loop) holds."""

    async def poll() -> bool:
        for _ in range(2000):
            if predicate():
                return True
            await asyncio.sleep(0.005)
        return bool(predicate())

    assert client.portal is not None
    assert client.portal.call(poll), what


#: The app's own tasks, as long-lived as the app (not a call's).
APP_TASKS = {"hotline-records", "hotline-records-purge"}


def _call_tasks() -> list[str]:
    """The names of the running loop's unfinished per-call hotline tasks (call on that loop)."""
    return sorted(
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name().startswith("hotline-") and t.get_name() not in APP_TASKS and not t.done()
    )


def _hotline_tasks(client: TestClient) -> list[str]:
    async def names() -> list[str]:
        return _call_tasks()

    assert client.portal is not None
    return client.portal.call(names)


# ------------------------------------------------------------------------------ the start


def test_a_start_with_a_bad_token_is_refused_and_nothing_is_left(client: TestClient) -> None:
    hub = _hub(client)
    _answer(client, "CA" + "b" * 32)  # a token exists, but not this one
    with _open(client) as ws:
        line = Line(ws, "CA" + "b" * 32)
        line.start("not-the-token")
        heard = line.read_until(None)
    assert heard.close_code == 1008
    assert not heard.media
    _wait(client, lambda: not hub.registry.attached, "the session was released")
    assert dict(hub.registry.calls) == {}
    assert (
        'hotline_signature_failures_total{endpoint="start-token"} 1.0'
        in hub.metrics.render().decode()
    )
    # The caller's memory lookup the webhook started is cancelled by the refusal; a cancelled
    # lookup ends once its database call returns (a few ms, on the records' thread).
    _wait(client, lambda: not _call_tasks(), "the refused call's memory lookup ended")
    assert _hotline_tasks(client) == []


def test_a_second_stream_for_a_live_call_is_refused(client: TestClient) -> None:
    sid = "CA" + "c" * 32
    token = _answer(client, sid)
    with _open(client) as ws:
        first = Line(ws, sid)
        first.start(token)
        first.read_until("u1-end")
        second_token = _answer(client, sid)  # Twilio retried the webhook
        with _open(client) as ws2:
            second = Line(ws2, sid)
            second.start(second_token)
            assert second.read_until(None).close_code == 1008
        assert list(_hub(client).registry.calls) == [sid]


# ----------------------------------------------------------------------- say/hangup, registry


def test_say_and_hangup_through_the_registry_and_teardown_leaves_no_task(
    client: TestClient,
) -> None:
    hub = _hub(client)
    sid = "CA" + "d" * 32
    token = _answer(client, sid)
    with _open(client) as ws:
        line = Line(ws, sid)
        line.start(token)
        line.read_until("u1-end")
        assert list(hub.registry.calls) == [sid]
        assert hub.registry.infos()[sid]["caller"] != CALLER  # masked
        assert client.portal is not None
        status, body = client.portal.call(hub.registry.command, sid, "say", {"text": "Via it."})
        assert (status, body["utterance_id"]) == (202, 2)
        line.read_until("u2-end")
        assert client.portal.call(hub.registry.command, sid, "shout", {})[0] == 400
        assert client.portal.call(hub.registry.command, "CA" + "0" * 32, "hangup", {})[0] == 404
        r = client.post(f"/calls/{sid}/say", json={"text": "Over it."}, headers=ADMIN)
        assert r.status_code == 202 and r.json()["utterance_id"] == 3
        line.read_until("u3-end")
        r = client.post(f"/calls/{sid}/hangup", headers=ADMIN)
        assert r.status_code == 202
        assert line.read_until(None).close_code == 1000
    _wait(client, lambda: not hub.registry.attached, "the session was released")
    assert dict(hub.registry.calls) == {}
    assert _hotline_tasks(client) == []
    metrics = hub.metrics.render().decode()
    assert "hotline_active_calls 0.0" in metrics
    assert 'hotline_utterances_total{outcome="played",source="say"} 2.0' in metrics


def test_debug_call_says_one_sentence_and_hangs_up(client: TestClient) -> None:
    sid = "CA" + "e" * 32
    token = _answer(client, sid, "/debug-websocket-voice")
    with _open(client) as ws:
        line = Line(ws, sid)
        line.start(token)
        heard = line.read_until(None)
    assert heard.close_code == 1000
    assert heard.marks == ["u1-end"]
    assert len(heard.media) > 8000  # the debug sentence: seconds of µ-law


def test_shutdown_hangs_up_every_call(script_path: str) -> None:
    app = create_app(_settings(script_path=script_path))
    sid = "CA" + "f" * 32
    with TestClient(app) as c:
        token = _answer(c, sid)
        ws_cm = _open(c)
        ws = ws_cm.__enter__()
        line = Line(ws, sid)
        line.start(token)
        line.read_until("u1-end")
        hub = _hub(c)
        assert c.portal is not None
        c.portal.call(hub.registry.hangup_all, "server shutting down")
        assert line.read_until(None).close_code == 1000
        ws_cm.__exit__(None, None, None)
        _wait(c, lambda: not hub.registry.attached, "released")


# ------------------------------------------------------------------- recording and replay


@pytest.mark.parametrize("client", [CACHED], indirect=True)
def test_a_clean_miss_is_stored_and_a_hit_replays_byte_identical(client: TestClient) -> None:
    hub = _hub(client)
    store = hub.speech.store
    assert store is not None
    first_sid, second_sid = "CA" + "1" * 32, "CA" + "2" * 32
    with _open(client) as ws:
        first = Line(ws, first_sid)
        first.start(_answer(client, first_sid))
        heard_first = bytes(first.read_until("u1-end").media)
        _wait(client, lambda: store.stats.stores == 1, "the greeting was stored")
    with _open(client) as ws:
        second = Line(ws, second_sid)
        second.start(_answer(client, second_sid))
        heard_second = bytes(second.read_until("u1-end").media)
    assert len(heard_first) > 4000  # half a second of µ-law
    assert heard_second == heard_first
    paths = {(r.call_sid, r.path) for r in hub.speech.records}
    assert (second_sid, SpeechPath.CACHE) in paths and (first_sid, SpeechPath.SINGLE) in paths
    assert store.stats.stores == 1  # the replay was not stored again
    # The test client cancels the route when its socket closes: the call still left.
    _wait(client, lambda: not hub.registry.attached, "both sessions were released")
    assert _hotline_tasks(client) == []


@pytest.mark.parametrize("fault", ["error_1008", "corrupt_audio"])
def test_a_dirty_miss_is_not_stored_and_the_call_goes_on(script_path: str, fault: str) -> None:
    switch = FaultSwitch()
    switch.arm(fault)
    app = create_app(_settings(script_path=script_path, **CACHED), tts_factory=switch)
    with TestClient(app) as client:
        _dirty_miss_is_not_stored(client, switch)


def _dirty_miss_is_not_stored(client: TestClient, switch: FaultSwitch) -> None:
    hub = _hub(client)
    store = hub.speech.store
    assert isinstance(store, LocalPhraseStore) and hub.tts is not None
    clean = hub.tts
    sid = "CA" + "3" * 32
    with _open(client) as ws:
        line = Line(ws, sid)
        line.start(_answer(client, sid))
        line.read_until("u1-end")
        switch.disarm()
        assert client.portal is not None
        status, _ = client.portal.call(hub.registry.command, sid, "say", {"text": "Clean."})
        assert status == 202
        line.read_until("u2-end")
        clean_key = hub.speech.phrase_key(clean, "Clean.")
        assert clean_key is not None
        _wait(client, lambda: clean_key in store.cache, "the clean line was stored")
    greeting_key = hub.speech.phrase_key(clean, "Hello there.")
    assert greeting_key is not None and greeting_key not in store.cache
    assert store.stats.stores == 1  # only the clean line
