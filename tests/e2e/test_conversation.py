"""Conversations end to end over real sockets: the real app on uvicorn, the real local voice, a
Twilio side playing in real time, and the brains' real peers on loopback (the OpenAI-compatible
stand-in, a ConversationRelay app written here from Twilio's documented messages).

The caller's words enter where the recogniser hands them over: :meth:`Call.transcript_final`
on the live call (what the speech-to-text stream does with a committed transcript). Audio
barge-in is real: the Twilio side speaks and the VAD hears it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route
from twilio.request_validator import RequestValidator
from websockets.asyncio.server import Request, Response, ServerConnection, serve

from hotline.codec import ulaw_encode
from hotline.core.script import default_script
from hotline.server.session import CallSession
from hotline.server.settings import ListenSettings, RecordsSettings
from hotline.sim.llm_server import StandIn
from tests.support.aio import arun
from tests.support.server import ADMIN, AUTH_TOKEN, Running, running_server, serve_asgi
from tests.support.twilio import FakeTwilio

SCRIPT = default_script()


@contextlib.asynccontextmanager
async def llm(standin: StandIn, keep_alive_s: float | None = None) -> AsyncIterator[str]:
    """The stand-in on uvicorn; ``keep_alive_s``: how long it keeps an idle connection (None:
    uvicorn's own 5 s, as vLLM and other uvicorn-served models do)."""
    config = {} if keep_alive_s is None else {"timeout_keep_alive": keep_alive_s}
    async with serve_asgi(standin.app(), **config) as server:
        sock = server.servers[0].sockets[0]
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def _histogram_sum(metrics: str, name: str, stage: str) -> float:
    """``name``'s ``_sum`` for ``stage`` in a /metrics text."""
    prefix = f'{name}_sum{{stage="{stage}"}} '
    (line,) = [line for line in metrics.splitlines() if line.startswith(prefix)]
    return float(line[len(prefix) :])


def session(run: Running, tw: FakeTwilio) -> CallSession:
    live = run.hub.registry.get(tw.call_sid)
    assert isinstance(live, CallSession)
    return live


def caller_says(run: Running, tw: FakeTwilio, text: str) -> None:
    """The recogniser committed ``text`` (what the STT stream hands the Call)."""
    s = session(run, tw)
    s.call.transcript_final(text, time.perf_counter())
    s.fed()


def tts_texts(run: Running) -> list[str]:
    """Every text the local voice received, in order (all connections)."""
    out = []
    for record in run.voice.records:
        for msg in record.messages:
            text = msg.get("text")
            if isinstance(text, str) and text.strip():
                out.append(text)
    return out


async def greeted(tw: FakeTwilio) -> None:
    await tw.start()
    await tw.wait_for(lambda: tw.mark_echoed("u1-end"), 15)


def tone(ms: int) -> list[bytes]:
    """A loud 300 Hz tone as 20 ms µ-law frames (speech to the VAD)."""
    import array

    n = ms * 8
    pcm = array.array(
        "h", (int(9000 * math.sin(2 * math.pi * 300 * i / 8000)) for i in range(n))
    ).tobytes()
    ulaw = ulaw_encode(pcm)
    return [ulaw[i : i + 160] for i in range(0, len(ulaw), 160)]


async def transcript(run: Running, sid: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{run.base}/calls/{sid}/transcript", headers=ADMIN)
        assert r.status_code == 200, r.text
        return dict(r.json())


# ------------------------------------------------------------------------------------ llm


def test_llm_turn_reaches_the_model_and_streams_into_tts_before_its_last_token() -> None:
    arun(llm_turn_reaches_the_model_and_streams_into_tts_before_its_last_token, 60)


async def llm_turn_reaches_the_model_and_streams_into_tts_before_its_last_token() -> None:
    hold = asyncio.Event()
    standin = StandIn(
        replies={"tour": "Wren plays Portland on the first of May, then Seattle."},
        token_delay=0.01,
        hold_before_last=hold,
    )
    async with llm(standin) as url:
        listen = ListenSettings(stt="off", brain="llm", llm_url=url)
        async with running_server(listen=listen) as run:
            tw = FakeTwilio(run)
            await greeted(tw)
            caller_says(run, tw, "What are the tour dates?")
            await tw.wait_for(lambda: any("Portland" in t for t in tts_texts(run)), 10)
            # The model's stream is still held before its last token: streaming, not buffering.
            assert not hold.is_set()
            assert "Seattle" not in "".join(tts_texts(run))
            (request,) = standin.requests
            assert request["messages"][-1] == {
                "role": "user",
                "content": "What are the tour dates?",
            }
            assert request["stream"] is True
            heard_before = len(tw.heard.audio())  # µ-law bytes: 8 per ms, whatever the message size
            hold.set()
            await tw.wait_for(lambda: any("Seattle" in t for t in tts_texts(run)), 10)
            await tw.wait_for(lambda: len(tw.heard.audio()) > heard_before + 50 * 160, 10)
            await tw.wait_for(lambda: tw.mark_echoed("u2-end"), 15)
            t = await transcript(run, tw.call_sid)
            said = [(e["speaker"], e["text"]) for e in t["entries"]]
            assert ("caller", "What are the tour dates?") in said
            assert ("hotline", "Wren plays Portland on the first of May, then Seattle.") in said
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"{run.base}/metrics")).text
            assert 'hotline_voice_to_voice_seconds_count{stage="hotline"} 1.0' in metrics
            assert 'hotline_voice_to_voice_seconds_count{stage="model"} 1.0' in metrics
            assert _histogram_sum(metrics, "hotline_voice_to_voice_seconds", "model") > 0
            assert _histogram_sum(metrics, "hotline_voice_to_voice_seconds", "voice") > 0
            logged = [
                r["message"]
                for r in run.hub.ring.snapshot(["hotline.call"])
                if "voice to voice" in r["message"]
            ]
            assert len(logged) == 1 and tw.call_sid in logged[0], logged
            await tw.hang_up()
        # Kept after the call ended (the server is gone: read the store directly).
        kept = run.hub.transcripts.get(tw.call_sid)
        assert kept is not None and kept.ended


def test_llm_faults_each_speak_the_fallback_and_the_next_turn_works() -> None:
    arun(llm_faults_each_speak_the_fallback_and_the_next_turn_works, 60)


async def llm_faults_each_speak_the_fallback_and_the_next_turn_works() -> None:
    standin = StandIn(replies={"tour": "Wren plays Portland."}, faults=["500", "malformed"])
    async with llm(standin) as url:
        listen = ListenSettings(stt="off", brain="llm", llm_url=url)
        async with running_server(listen=listen) as run:
            tw = FakeTwilio(run)
            await greeted(tw)
            for n, _fault in enumerate(("500", "malformed"), start=1):
                caller_says(run, tw, "What are the tour dates?")
                await tw.wait_for(
                    lambda n=n: "".join(tts_texts(run)).count("trouble") >= n,
                    10,
                )
            caller_says(run, tw, "What about the tour?")
            await tw.wait_for(lambda: any("Portland" in t for t in tts_texts(run)), 10)
            fallbacks = [
                sample
                for metric in run.hub.metrics.brain_fallbacks.collect()
                for sample in metric.samples
                if sample.name == "hotline_brain_fallbacks_total"
            ]
            assert sum(sample.value for sample in fallbacks) == 2
            await tw.hang_up()


def test_calls_share_one_connection_to_the_model() -> None:
    arun(calls_share_one_connection_to_the_model, 60)


async def ask_twice(run: Running, sids: tuple[str, str], gap_s: float = 0.0) -> None:
    """A turn in each call of ``sids`` (the same call twice, or two calls one after the other),
    ``gap_s`` apart, each answered in full."""
    tw: FakeTwilio | None = None
    for n, sid in enumerate(sids, start=1):
        if tw is None or tw.call_sid != sid:
            if tw is not None:
                await tw.hang_up()
            tw = FakeTwilio(run, call_sid=sid)
            await greeted(tw)
        await asyncio.sleep(gap_s if n > 1 else 0.0)
        caller_says(run, tw, "What are the tour dates?")
        await tw.wait_for(lambda n=n: "".join(tts_texts(run)).count("Portland") >= n, 10)
    assert tw is not None
    await tw.hang_up()


async def calls_share_one_connection_to_the_model() -> None:
    """One ``AsyncOpenAI`` per process, its idle connections kept a minute: the second call's
    turn, seconds later, goes over the connection the first call's turn opened (each call had
    its own client, and httpx dropped idle connections after 5 s, so turns paid a TCP and TLS
    handshake to the model's host), and a call's end does not close it for the next."""
    standin = StandIn(replies={"tour": "Wren plays Portland."})
    async with llm(standin, keep_alive_s=75.0) as url:  # nginx's default, before most APIs
        listen = ListenSettings(stt="off", brain="llm", llm_url=url)
        records = RecordsSettings(database_url="off")  # no summary request in between
        async with running_server(listen=listen, records=records) as run:
            await ask_twice(run, ("CA" + "0" * 31 + "1", "CA" + "0" * 31 + "2"), gap_s=5.5)
            assert len(standin.client_ports) == 2
            assert standin.client_ports[0] == standin.client_ports[1], standin.client_ports
        assert run.hub.llm_client is None  # closed with the server


def test_a_connection_the_model_closed_is_not_reused() -> None:
    arun(a_connection_the_model_closed_is_not_reused, 60)


async def a_connection_the_model_closed_is_not_reused() -> None:
    """A host that closes idle connections sooner than hotline keeps them (uvicorn's 5 s, here
    1 s): the next turn opens a new one and is answered, no fallback line."""
    standin = StandIn(replies={"tour": "Wren plays Portland."})
    async with llm(standin, keep_alive_s=1.0) as url:
        listen = ListenSettings(stt="off", brain="llm", llm_url=url)
        records = RecordsSettings(database_url="off")
        async with running_server(listen=listen, records=records) as run:
            sid = "CA" + "0" * 31 + "1"
            await ask_twice(run, (sid, sid), gap_s=2.0)
            assert len(set(standin.client_ports)) == 2, standin.client_ports
            assert "trouble" not in "".join(tts_texts(run))


# ---------------------------------------------------------------------------------- relay


class App:
    """A ConversationRelay app, as a developer writes it from Twilio's documented messages."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[dict[str, Any]] = []
        self.rejected = 0
        self.got = asyncio.Event()
        self.audio_url = ""

    def check(self, conn: ServerConnection, request: Request) -> Response | None:
        # As Twilio's agent SDK checks an upgrade: the URL without its query, the query's
        # parameters as the signed parameters.
        signature = request.headers.get("X-Twilio-Signature", "")
        target = urlsplit(request.path)
        url = f"ws://{request.headers['Host']}{target.path}"
        params = {k: v[0] for k, v in parse_qs(target.query).items()}
        if not RequestValidator(AUTH_TOKEN).validate(url, params, signature):
            self.rejected += 1
            return conn.respond(HTTPStatus.FORBIDDEN, "bad signature\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        async for frame in ws:
            msg = json.loads(frame)
            self.received.append(msg)
            self.got.set()
            kind = msg.get("type")
            if kind == "prompt":
                text = msg["voicePrompt"].lower()
                if "español" in text:
                    await ws.send(
                        json.dumps({"type": "language", "transcriptionLanguage": "es-ES"})
                    )
                elif "bye" in text:
                    await ws.send(json.dumps({"type": "text", "token": "Bye now!", "last": True}))
                    await ws.send(json.dumps({"type": "end", "handoffData": '{"r":"done"}'}))
                elif "story" in text:
                    words = "Once upon a time there was a very long story that went on and on"
                    for word in (words + " and on and on without any end in sight.").split():
                        await ws.send(json.dumps({"type": "text", "token": word + " "}))
                    await ws.send(json.dumps({"type": "text", "token": "", "last": True}))
                else:
                    for token in ("Wren ", "plays ", "Portland ", "in May."):
                        await ws.send(json.dumps({"type": "text", "token": token}))
                    await ws.send(json.dumps({"type": "text", "token": "", "last": True}))
            elif kind == "dtmf" and msg["digit"] == "7":
                await ws.send(json.dumps({"type": "sendDigits", "digits": "12"}))
                await ws.send(json.dumps({"type": "play", "source": self.audio_url}))
            elif kind == "dtmf":
                await ws.send(
                    json.dumps(
                        {"type": "text", "token": f"You pressed {msg['digit']}.", "last": True}
                    )
                )

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("type") == kind]


@contextlib.asynccontextmanager
async def audio_server() -> AsyncIterator[str]:
    """Serves /hold.wav: 0.5 s of 16-bit 8 kHz mono PCM (a 440 Hz tone)."""
    import array
    import struct

    pcm = array.array(
        "h", (int(6000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(4000))
    ).tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    wav = b"RIFF" + struct.pack("<I", len(body)) + body

    async def hold(request: StarletteRequest) -> StarletteResponse:
        return StarletteResponse(wav, media_type="audio/wav")

    app = Starlette(routes=[Route("/hold.wav", hold)])

    async with serve_asgi(app) as server:
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/hold.wav"


def relay_script(tmp: Path, table: str = "") -> str:
    """The built-in script with a ``[relay]`` table (the app's TwiML); its path."""
    from importlib import resources

    text = resources.files("hotline.core").joinpath("default_script.toml").read_text("utf-8")
    path = tmp / "relay.toml"
    greeting = 'welcomeGreeting = "Hi, this is the Wren line. How can I help?"'
    path.write_text(f"{text}\n[relay]\n{greeting}\ndtmfDetection = true\n{table}\n")
    return str(path)


@contextlib.asynccontextmanager
async def relay_app(app: App) -> AsyncIterator[str]:
    async with serve(app.handler, "127.0.0.1", 0, process_request=app.check) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        app.url = f"ws://127.0.0.1:{port}/relay?app=1"
        yield app.url


def test_relay_app_hears_setup_prompt_dtmf_interrupt_and_ends_the_call(tmp_path: Path) -> None:
    arun(lambda: relay_app_hears_setup_prompt_dtmf_interrupt_and_ends_the_call(tmp_path), 60)


async def relay_app_hears_setup_prompt_dtmf_interrupt_and_ends_the_call(tmp: Path) -> None:
    app = App()
    async with relay_app(app) as url:
        listen = ListenSettings(stt="off", brain="relay", relay_url=url)
        # The caller's "voice" below is a tone: the energy detector hears it as speech, Silero
        # (the default when installed) rightly does not.
        async with running_server(
            listen=listen, script_path=relay_script(tmp), vad="energy"
        ) as run:
            tw = FakeTwilio(run)
            await greeted(tw)
            await tw.wait_for(lambda: bool(app.of("setup")), 5)
            assert app.rejected == 0
            (setup,) = app.of("setup")
            assert setup["callSid"] == tw.call_sid and setup["sessionId"].startswith("VX")
            assert "token" not in setup["customParameters"]
            assert setup["to"] == "+15555550100" and setup["direction"] == "inbound"

            caller_says(run, tw, "When are you playing?")
            await tw.wait_for(lambda: bool(app.of("prompt")), 5)
            (prompt,) = app.of("prompt")
            assert prompt["voicePrompt"] == "When are you playing?" and prompt["last"] is True
            assert "lang" in prompt
            await tw.wait_for(lambda: any("Portland" in t for t in tts_texts(run)), 10)
            await tw.wait_for(lambda: tw.mark_echoed("u2-end"), 15)

            await tw.dtmf("5")
            await tw.wait_for(lambda: bool(app.of("dtmf")), 5)
            assert app.of("dtmf")[0]["digit"] == "5"
            await tw.wait_for(lambda: any("pressed 5" in t for t in tts_texts(run)), 10)
            await tw.wait_for(lambda: tw.mark_echoed("u3-end"), 15)

            # sendDigits and play: DTMF tones and a fetched WAV, played as µ-law.
            async with audio_server() as audio_url:
                app.audio_url = audio_url
                heard_before = len(tw.heard.audio())
                await tw.dtmf("7")
                await tw.wait_for(lambda: tw.mark_echoed("u5-end"), 15)
            # 2 tones of 100 ms + 100 ms gaps, then 0.5 s of audio: at least 0.9 s heard.
            assert len(tw.heard.audio()) - heard_before >= 900 * 8
            said = [e["text"] for e in session(run, tw).transcript_dict()["entries"]]  # type: ignore[index]
            assert "[digits 2]" in said and "[audio]" in said

            # A long line, cut by the caller's voice (the VAD hears the Twilio side speak).
            caller_says(run, tw, "Tell me a story")
            played_before = len(tw.heard.played)
            await tw.wait_for(lambda: len(tw.heard.played) > played_before + 8000 * 1.2, 15)
            tw.speak(tone(600))
            await tw.wait_for(lambda: bool(app.of("interrupt")), 10)
            (cut,) = app.of("interrupt")
            heard = cut["utteranceUntilInterrupt"]
            assert heard.startswith("Once upon")
            assert "without any end in sight" not in heard
            assert float(cut["durationUntilInterruptMs"]) > 500

            # The tone was a turn of its own (no words: dropped once its silence is long enough).
            turns = session(run, tw).call.turns
            assert turns is not None
            await tw.wait_for(lambda: not turns.in_turn, 5)
            caller_says(run, tw, "OK bye")
            await tw.wait_for(lambda: tw.stopped.is_set(), 15)  # `end`: goodbye, then hang-up
            assert any("Bye now" in t for t in tts_texts(run))
            t = await transcript_after(run, tw.call_sid)
            assert any(e["speaker"] == "heard" for e in t["entries"])
            await tw.close()


async def transcript_after(run: Running, sid: str) -> dict[str, Any]:
    for _ in range(100):
        kept = run.hub.transcripts.get(sid)
        if kept is not None:
            return kept.as_dict()
        await asyncio.sleep(0.02)
    raise AssertionError("no transcript kept")


def test_setup_carries_what_the_webhook_said_and_the_apps_parameters(tmp_path: Path) -> None:
    # D4: `to` was always empty, forwardedFrom/callerName/parentCallSid empty, direction a
    # constant, customParameters always {} (the app's <Parameter>s had no home).
    arun(lambda: setup_carries_what_the_webhook_said_and_the_apps_parameters(tmp_path), 60)


async def setup_carries_what_the_webhook_said_and_the_apps_parameters(tmp: Path) -> None:
    from tests.support.twilio import ACCOUNT_SID, CALLER

    app = App()
    table = '[relay.parameters]\ncaller_phone = "{{From}}"\ntier = "gold"\n'
    async with relay_app(app) as url:
        listen = ListenSettings(stt="off", brain="relay", relay_url=url)
        async with running_server(listen=listen, script_path=relay_script(tmp, table)) as run:
            tw = FakeTwilio(run)
            form = {
                "CallSid": tw.call_sid,
                "AccountSid": ACCOUNT_SID,
                "From": CALLER,
                "To": "+15555550100",
                "CallStatus": "ringing",
                "Direction": "outbound-api",
                "ForwardedFrom": "+15555550111",
                "CallerName": "WREN FAN",
                "ParentCallSid": "CA" + "9" * 32,
            }
            await tw.start(form=form)
            await tw.wait_for(lambda: bool(app.of("setup")), 5)
            (setup,) = app.of("setup")
            assert setup["to"] == "+15555550100" and setup["direction"] == "outbound-api"
            assert setup["forwardedFrom"] == "+15555550111"
            assert setup["callerName"] == "WREN FAN"
            assert setup["parentCallSid"] == "CA" + "9" * 32
            assert setup["from"] == CALLER
            assert setup["customParameters"] == {"caller_phone": CALLER, "tier": "gold"}
            await tw.hang_up()


def test_relay_app_gone_speaks_the_fallback_and_the_script_answers() -> None:
    arun(relay_app_gone_speaks_the_fallback_and_the_script_answers, 60)


async def relay_app_gone_speaks_the_fallback_and_the_script_answers() -> None:
    app = App()
    async with relay_app(app) as url:
        pass  # the app is gone before the call starts
    listen = ListenSettings(stt="off", brain="relay", relay_url=url)
    async with running_server(listen=listen) as run:
        tw = FakeTwilio(run)
        await greeted(tw)
        await tw.wait_for(lambda: any("trouble" in t for t in tts_texts(run)), 10)
        caller_says(run, tw, "What are the tour dates?")
        tour = SCRIPT.match_intent("tour dates")
        assert tour is not None and tour.say is not None
        await tw.wait_for(lambda: any(tour.say[:20] in t for t in tts_texts(run)), 10)
        await tw.hang_up()
