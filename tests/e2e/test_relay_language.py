"""A ConversationRelay app switches the voice's language mid-call, over real sockets (the real
app on uvicorn, the local voice speaking ElevenLabs' protocol, a Twilio side in real time, an
app written from Twilio's documented messages).

ElevenLabs takes ``language_code`` per connection (a query parameter of ``stream-input`` /
``multi-stream-input``): after a ``language`` message the call's speech must go through a
connection opened with the new ``language_code``, where the local voice speaks with eSpeak NG's
voice of that language (its connection records say which voice spoke which text). A ``text``
token's ``lang`` overrides the session's language for its reply (ConversationRelay's precedence:
``language`` < ``ttsLanguage`` < the latest ``language`` message < a token's ``lang``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection

from hotline.server.settings import ListenSettings
from tests.e2e.test_conversation import App, caller_says, relay_app, relay_script, session
from tests.support.aio import arun
from tests.support.server import Running, running_server
from tests.support.twilio import FakeTwilio

SPANISH = "Hola, soy la línea de Wren. ¿En qué puedo ayudarte?"
FRENCH = "Bonjour, je parle français maintenant."
SPANISH_AGAIN = "Muy bien, seguimos en español."


class LanguageApp(App):
    """Switches the session to Spanish when asked, answers one reply with a French ``lang``
    token, and ends the call when told goodbye."""

    async def handler(self, ws: ServerConnection) -> None:
        async for frame in ws:
            msg = json.loads(frame)
            self.received.append(msg)
            if msg.get("type") != "prompt" or not msg.get("last"):
                continue
            text = msg["voicePrompt"].lower()
            if "spanish" in text:
                await ws.send(
                    json.dumps(
                        {
                            "type": "language",
                            "ttsLanguage": "es-ES",
                            "transcriptionLanguage": "es-ES",
                        }
                    )
                )
                await ws.send(json.dumps({"type": "text", "token": SPANISH, "last": True}))
            elif "french" in text:
                first, rest = FRENCH.split(" ", 1)
                await ws.send(json.dumps({"type": "text", "token": first + " ", "lang": "fr-FR"}))
                await ws.send(json.dumps({"type": "text", "token": rest, "last": True}))
            elif "bye" in text:
                await ws.send(json.dumps({"type": "end"}))
            else:
                await ws.send(json.dumps({"type": "text", "token": SPANISH_AGAIN, "last": True}))


def said_on(run: Running, text: str) -> list[Any]:
    """The local voice's connections that were sent ``text`` (stripped, as one message)."""
    return [
        r
        for r in run.voice.records
        if any(str(m.get("text", "")).strip() == text.strip() for m in r.messages)
    ]


def language_of(record: Any) -> str | None:
    return record.query.get("language_code")


async def reply_heard(run: Running, tw: FakeTwilio, n: int) -> None:
    """Utterance ``n`` has played to its end mark."""
    await tw.wait_for(lambda: tw.mark_echoed(f"u{n}-end"), 20)


def test_a_language_message_moves_the_voice_to_a_connection_in_that_language(
    tmp_path: Path,
) -> None:
    arun(lambda: language_message_moves_the_voice(tmp_path), 90)


async def language_message_moves_the_voice(tmp: Path) -> None:
    app = LanguageApp()
    path = relay_script(tmp)  # language en-US (the default): the call's socket has no code
    async with relay_app(app) as url:
        listen = ListenSettings(stt="off", brain="relay", relay_url=url)
        async with running_server(listen=listen, script_path=path) as run:
            tw = FakeTwilio(run)
            await tw.start()
            await reply_heard(run, tw, 1)  # the welcome greeting, in the call's own voice
            (home,) = [r for r in run.voice.records if r.kind == "multi-stream-input"]
            assert language_of(home) is None

            caller_says(run, tw, "can we speak spanish")
            await reply_heard(run, tw, 2)
            # The reply after the language message: a connection opened with language_code=es,
            # where the Spanish voice spoke it; never the call's English socket.
            (spanish,) = said_on(run, SPANISH)
            assert spanish.kind == "multi-stream-input"
            assert language_of(spanish) == "es" and spanish.espeak_voice == "es"
            assert spanish.query.get("model_id") == "eleven_flash_v2_5"
            assert spanish.audio_messages > 0 and home.espeak_voice == "en-us"

            # A token's lang beats the session's language: this reply goes to a French socket.
            caller_says(run, tw, "and in french")
            await reply_heard(run, tw, 3)
            french = said_on(run, "Bonjour,") or said_on(run, FRENCH)
            assert [language_of(r) for r in french] == ["fr"]
            assert french[0].espeak_voice == "fr"
            # ...for that reply only: the next one is the session's Spanish again, on the same
            # Spanish socket (the call keeps it), not on a new one.
            caller_says(run, tw, "and then")
            await reply_heard(run, tw, 4)
            assert said_on(run, SPANISH_AGAIN) == [spanish]

            # What the caller heard: every line played to its end mark, in order, on one
            # stream of frames with nothing malformed; the transcript says what was said.
            marks = [name for name, _ in tw.heard.marks if name.endswith("-end")]
            assert marks == ["u1-end", "u2-end", "u3-end", "u4-end"]
            assert not tw.heard.bad and not tw.heard.clears
            said = [
                e["text"]
                for e in session(run, tw).transcript_dict()["entries"]  # type: ignore[index]
                if e["speaker"] == "hotline"
            ]
            assert said[1:] == [SPANISH, FRENCH, SPANISH_AGAIN]
            assert {r.query.get("language_code") for r in run.voice.records} == {None, "es", "fr"}

            await tw.hang_up()

            # The call gave its Spanish and French sockets back: kept open for the next call
            # in those languages.
            pool = run.hub.speech.pool
            await tw.wait_for(lambda: pool.idle_sockets == 2, 5)

            # A second call, English throughout, ends with the goodbye line: a fixed line, in
            # the phrase cache from now on (keyed with the call's own voice).
            goodbye = run.hub.script.goodbye
            tw2 = FakeTwilio(run, call_sid="CA" + "0" * 31 + "2")
            await tw2.start()
            await reply_heard(run, tw2, 1)
            caller_says(run, tw2, "bye")
            await tw2.wait_for(lambda: tw2.heard.closed_at is not None, 20)
            await tw2.close()
            english_goodbye = said_on(run, goodbye)
            assert [language_of(r) for r in english_goodbye] == [None]

            # A third call switches to Spanish: its reply on the Spanish connection the first
            # call gave back (reused across calls: no new handshake), and its goodbye spoken
            # there in Spanish, never the English recording from the cache.
            tw3 = FakeTwilio(run, call_sid="CA" + "0" * 31 + "3")
            await tw3.start()
            await reply_heard(run, tw3, 1)
            caller_says(run, tw3, "can we speak spanish")
            await reply_heard(run, tw3, 2)
            assert pool.stats.lent_idle == 1
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"{run.base}/metrics")).text
            assert 'hotline_tts_language_sockets_lent_total{socket="idle"} 1.0' in metrics
            assert said_on(run, SPANISH) == [spanish]
            assert sum(1 for r in run.voice.records if language_of(r) == "es") == 1
            caller_says(run, tw3, "bye")
            await tw3.wait_for(lambda: tw3.heard.closed_at is not None, 20)
            await tw3.close()
            numbers = {r.number for r in said_on(run, goodbye)}
            assert numbers == {english_goodbye[0].number, spanish.number}
            marks = [name for name, _ in tw3.heard.marks if name.endswith("-end")]
            assert marks == ["u1-end", "u2-end", "u3-end"] and not tw3.heard.bad


def test_the_single_transport_opens_its_utterance_sockets_in_the_language(
    tmp_path: Path,
) -> None:
    arun(lambda: single_transport(tmp_path), 60)


async def single_transport(tmp: Path) -> None:
    app = LanguageApp()
    path = relay_script(tmp)
    async with relay_app(app) as url:
        listen = ListenSettings(stt="off", brain="relay", relay_url=url)
        async with running_server(
            listen=listen, script_path=path, elevenlabs_transport="single"
        ) as run:
            tw = FakeTwilio(run)
            await tw.start()
            await reply_heard(run, tw, 1)
            caller_says(run, tw, "can we speak spanish")
            await reply_heard(run, tw, 2)
            (spanish,) = said_on(run, SPANISH)
            assert spanish.kind == "stream-input"
            assert language_of(spanish) == "es" and spanish.espeak_voice == "es"
            caller_says(run, tw, "and in french")
            await reply_heard(run, tw, 3)
            french = said_on(run, "Bonjour,") or said_on(run, FRENCH)
            assert [(r.kind, language_of(r)) for r in french] == [("stream-input", "fr")]
            await tw.hang_up()
            assert run.hub.speech.pool.stats.lent_new == 0  # nothing kept open on single


def test_a_model_without_language_enforcement_speaks_on_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hotline.tts")
    arun(lambda: model_without_language(tmp_path), 60)
    warnings = [r for r in caplog.records if "takes no language_code" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "eleven_multilingual_v2" in warnings[0].getMessage()


async def model_without_language(tmp: Path) -> None:
    app = LanguageApp()
    path = relay_script(tmp)
    async with relay_app(app) as url:
        listen = ListenSettings(stt="off", brain="relay", relay_url=url)
        async with running_server(
            listen=listen, script_path=path, elevenlabs_model_id="eleven_multilingual_v2"
        ) as run:
            tw = FakeTwilio(run)
            await tw.start()
            await reply_heard(run, tw, 1)
            for n, ask in enumerate(("can we speak spanish", "and in french"), start=2):
                caller_says(run, tw, ask)
                await reply_heard(run, tw, n)
            # ElevenLabs refuses language_code with this model (so does the local voice): the
            # replies were spoken on the call's own socket, without one.
            assert {language_of(r) for r in run.voice.records} == {None}
            assert len(said_on(run, SPANISH)) == 1 and not any(
                r.error_sent for r in run.voice.records
            )
            await tw.hang_up()
