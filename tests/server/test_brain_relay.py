"""The relay brain against a ConversationRelay app written here from Twilio's documented
messages. It validates X-Twilio-Signature the way Twilio's own agent SDK (twilio-agent-connect)
does on a ConversationRelay upgrade: ``RequestValidator.validate`` over the URL rebuilt from the
Host header and the path *without* the query, the query's parameters (``parse_qs``, first
value) as the params."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator
from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from hotline.core.brain import (
    BrainOutput,
    CallEnding,
    CallerDigit,
    CallerTurn,
    CallStarted,
    EndCall,
    Fallback,
    Interrupted,
    PlayAudio,
    SayText,
    SendDigits,
    SetLanguage,
)
from hotline.core.script import CallScript, Interruptible, RelaySettings, default_script
from hotline.loopback import free_port
from hotline.server.brain_relay import RelayBrain, relay_signature

TOKEN = "relay-test-auth-token-0123456789"
CALL = CallStarted(
    call_sid="CA" + "a" * 32,
    stream_sid="MZ" + "b" * 32,
    to="+15550009999",
    custom_parameters={"lang": "en"},
    account_sid="AC" + "c" * 32,
)
SETUP_FIELDS = {
    "type",
    "sessionId",
    "accountSid",
    "parentCallSid",
    "callSid",
    "from",
    "to",
    "forwardedFrom",
    "callType",
    "callerName",
    "direction",
    "callStatus",
    "customParameters",
}


class App:
    """A ConversationRelay app: what a developer writes against Twilio's docs."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.url = ""
        self.rejected = 0
        self.closed = asyncio.Event()
        self.close_code: int | None = None

    def check_signature(self, conn: ServerConnection, request: Request) -> Response | None:
        signature = request.headers.get("X-Twilio-Signature", "")
        target = urlsplit(request.path)
        url = f"ws://{request.headers['Host']}{target.path}"
        params = {k: v[0] for k, v in parse_qs(target.query).items()}
        if not RequestValidator(TOKEN).validate(url, params, signature):
            self.rejected += 1
            return conn.respond(HTTPStatus.FORBIDDEN, "bad signature\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        try:
            async for frame in ws:
                msg = json.loads(frame)
                self.received.append(msg)
                await self.on(ws, msg)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            self.closed.set()

    async def on(self, ws: ServerConnection, msg: dict[str, Any]) -> None:
        if msg["type"] == "prompt":
            said = msg["voicePrompt"]
            if said == "crash":
                await ws.close(1011)
                return
            if said == "garbage":
                for _ in range(10):
                    await ws.send('{"type": "text"}')
                return
            if said == "media":
                await ws.send(
                    json.dumps({"type": "play", "source": "https://x.test/a.mp3", "loop": 2})
                )
                await ws.send(json.dumps({"type": "sendDigits", "digits": "1w2"}))
                await ws.send(
                    json.dumps(
                        {
                            "type": "language",
                            "ttsLanguage": "es-ES",
                            "transcriptionLanguage": "es-ES",
                        }
                    )
                )
                return
            if said == "switch":
                await ws.send(json.dumps({"type": "language", "transcriptionLanguage": "fr-FR"}))
                return
            if said.startswith("interruptible"):
                await ws.send(json.dumps({"type": "text", "token": "a"}))
                await ws.send(json.dumps({"type": "text", "token": "b", "interruptible": True}))
                return
            for token, last in (("Hello", False), (" world", False), ("! ", True)):
                await ws.send(json.dumps({"type": "text", "token": token, "last": last}))
        elif msg["type"] == "dtmf" and msg["digit"] == "0":
            await ws.send(
                json.dumps({"type": "end", "handoffData": json.dumps({"reason": "done"})})
            )


#: The app's TwiML as the tests' [relay] table: dtmfDetection="true".
RELAY_SCRIPT = dataclasses.replace(default_script(), relay=RelaySettings(dtmf_detection=True))


def run(
    test: Callable[[App, RelayBrain, list[BrainOutput]], Awaitable[None]],
    *,
    token: str = TOKEN,
    script: CallScript = RELAY_SCRIPT,
) -> None:
    async def main() -> None:
        app = App()
        async with serve(
            app.handler, "127.0.0.1", 0, process_request=app.check_signature
        ) as server:
            port = server.sockets[0].getsockname()[1]
            app.url = f"ws://127.0.0.1:{port}/relay?tenant=wren"
            brain = RelayBrain(app.url, script, auth_token=token, caller="+1555***0123")
            out: list[BrainOutput] = []

            async def emit(o: BrainOutput) -> None:
                out.append(o)

            await brain.start(CALL, emit)
            try:
                await test(app, brain, out)
            finally:
                await brain.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))


async def until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


def test_setup_prompt_dtmf_interrupt_and_streamed_text_then_end() -> None:
    async def t(app: App, brain: RelayBrain, out: list[BrainOutput]) -> None:
        await until(lambda: len(app.received) >= 1)
        setup = app.received[0]
        assert app.rejected == 0 and set(setup) == SETUP_FIELDS
        assert setup["sessionId"].startswith("VX") and len(setup["sessionId"]) == 34
        assert setup["callSid"] == CALL.call_sid and setup["accountSid"] == CALL.account_sid
        assert setup["from"] == "+1555***0123" and setup["to"] == "+15550009999"
        assert setup["customParameters"] == {"lang": "en"}

        await brain.handle(CallerTurn("when's the tour", "en-US"))
        await brain.handle(CallerTurn("partial words", final=False))  # not sent
        await until(lambda: len(out) >= 3)
        assert out == [SayText("Hello"), SayText(" world"), SayText("! ", last=True)]  # untrimmed
        assert app.received[1] == {
            "type": "prompt",
            "voicePrompt": "when's the tour",
            "lang": "en-US",
            "last": True,
        }

        await brain.handle(Interrupted("Hello wor", 460))
        await brain.handle(CallerTurn("media"))
        await until(lambda: len(out) >= 6)
        assert out[3:] == [
            PlayAudio("https://x.test/a.mp3", loop=2),
            SendDigits("1w2"),
            SetLanguage("es-ES", "es-ES"),
        ]
        await brain.handle(CallerDigit("0"))
        await until(lambda: len(out) >= 7)
        assert out[6] == EndCall("relay_end", handoff_data='{"reason": "done"}')
        await asyncio.wait_for(app.closed.wait(), 5)
        assert app.close_code == 1000
        assert app.received[2] == {
            "type": "interrupt",
            "utteranceUntilInterrupt": "Hello wor",
            "durationUntilInterruptMs": 460,
        }
        assert app.received[4] == {"type": "dtmf", "digit": "0"}
        assert not any(isinstance(o, Fallback) for o in out)

    run(t)


def test_bad_signature_is_rejected_and_the_call_goes_on_scripted() -> None:
    async def t(app: App, brain: RelayBrain, out: list[BrainOutput]) -> None:
        assert app.rejected == 1 and out == [Fallback("relay_connect")]
        await brain.handle(CallerTurn("tell me about the tour"))
        assert isinstance(out[1], SayText) and "Portland" in out[1].token

    run(t, token="not-the-account-token")


def test_app_gone_mid_call_is_one_fallback_then_the_script() -> None:
    async def t(app: App, brain: RelayBrain, out: list[BrainOutput]) -> None:
        await brain.handle(CallerTurn("crash"))
        await until(lambda: bool(out))
        assert out == [Fallback("relay_gone")] and brain.failure == "relay_gone"
        await brain.handle(CallerTurn("what about merch"))
        await brain.handle(CallerDigit("0"))
        assert isinstance(out[1], SayText) and "shop" in out[1].token
        assert out[-1] == EndCall("digit")

    run(t)


def test_ten_malformed_messages_close_1007_then_fallback() -> None:
    async def t(app: App, brain: RelayBrain, out: list[BrainOutput]) -> None:
        await brain.handle(CallerTurn("garbage"))
        await asyncio.wait_for(app.closed.wait(), 5)
        await until(lambda: bool(out))
        assert app.close_code == 1007
        errors = [m for m in app.received if m["type"] == "error"]
        assert len(errors) == 10 and errors[0]["description"].startswith("Invalid message received")
        assert out == [Fallback("relay_gone")]

    run(t)


def test_call_ending_closes_the_socket_normally() -> None:
    async def t(app: App, brain: RelayBrain, out: list[BrainOutput]) -> None:
        await until(lambda: bool(app.received))
        await brain.handle(CallEnding())
        await asyncio.wait_for(app.closed.wait(), 5)
        assert app.close_code == 1000 and out == []

    run(t)


def test_unreachable_app() -> None:
    async def main() -> None:
        port = free_port()  # nothing listens there
        brain = RelayBrain(f"ws://127.0.0.1:{port}/x", default_script(), auth_token=TOKEN)
        out: list[BrainOutput] = []

        async def emit(o: BrainOutput) -> None:
            out.append(o)

        await brain.start(CALL, emit)
        await brain.aclose()
        assert out == [Fallback("relay_connect")]

    asyncio.run(asyncio.wait_for(main(), 20))


def test_signature_of_a_url_with_a_query_is_the_sdks() -> None:
    # D1: the vector. Signing the URL with its query gave iQdTuH3o...; Twilio's SDK
    # validates the URL without it, the query as parameters.
    token, url = "0123456789abcdef0123456789abcdef", "wss://app.example.com/ws?tenant=acme"
    signature = relay_signature(url, token)
    assert signature == "uHAVdyYEi8w92jS+KgCCtW3SHZo="
    assert RequestValidator(token).validate(
        "wss://app.example.com/ws", {"tenant": "acme"}, signature
    )
    # Several parameters, percent-encoding, a port: what the SDK's parse_qs rebuilds.
    url = "wss://app.example.com:8443/ws/v1?tenant=acme&token=a%2Bb&lang=en-US"
    signature = relay_signature(url, token)
    params = {"tenant": "acme", "token": "a+b", "lang": "en-US"}
    assert RequestValidator(token).validate("wss://app.example.com:8443/ws/v1", params, signature)


def test_a_refused_handshake_is_logged_with_its_status(caplog: Any) -> None:
    # D5: a wrong auth token read "relay app unreachable: InvalidStatus", like an outage.
    caplog.set_level("WARNING", logger="hotline.brain")

    async def t(app: App, brain: RelayBrain, out: list[BrainOutput]) -> None:
        assert app.rejected == 1 and out == [Fallback("relay_connect")]

    run(t, token="not-the-account-token")
    lines = [r.getMessage() for r in caplog.records if r.name == "hotline.brain"]
    assert len(lines) == 1 and "HTTP 403" in lines[0] and "unreachable" not in lines[0]
    assert "auth token" in lines[0]


def test_the_relay_table_is_the_session_dtmf_lang_partials_interruptible() -> None:
    # What <ConversationRelay language="es-MX" partialPrompts="true" interruptible="dtmf">
    # (dtmfDetection unset: false) means for the app.
    relay = RelaySettings(
        transcription_language="es-MX", partial_prompts=True, interruptible=Interruptible.DTMF
    )
    script = dataclasses.replace(default_script(), relay=relay)

    async def t(app: App, brain: RelayBrain, out: list[BrainOutput]) -> None:
        await until(lambda: len(app.received) >= 1)
        await brain.handle(CallerDigit("5"))  # no dtmfDetection: not sent
        await brain.handle(CallerTurn("cuando", final=False))
        await brain.handle(CallerTurn("cuando es", final=True))
        await until(lambda: len(app.received) >= 3)
        assert app.received[1:] == [
            {"type": "prompt", "voicePrompt": "cuando", "lang": "es-MX", "last": False},
            {"type": "prompt", "voicePrompt": "cuando es", "lang": "es-MX", "last": True},
        ]
        await brain.handle(CallerTurn("switch"))
        await until(lambda: any(isinstance(o, SetLanguage) for o in out))
        await brain.handle(CallerTurn("interruptible"))
        await until(lambda: isinstance(out[-1], SayText) and out[-1].token == "b")
        assert app.received[-1]["lang"] == "fr-FR"  # the language message applied
        said = [o for o in out if isinstance(o, SayText)][-2:]
        assert said == [SayText("a", interruptible=False), SayText("b", interruptible=True)]
        assert not any(m["type"] == "dtmf" for m in app.received)

    run(t, script=script)
