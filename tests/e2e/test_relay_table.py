"""The call script's ``[relay]`` table on a real call (real app on uvicorn, the local voice, a
Twilio side in real time, a ConversationRelay app on loopback): the app's welcomeGreeting
instead of the hotline's, and what ``interruptible`` / ``dtmfDetection`` mean for the caller."""

from __future__ import annotations

from pathlib import Path

from hotline.core.script import default_script
from hotline.server.settings import ListenSettings
from tests.e2e.test_conversation import (
    App,
    caller_says,
    relay_app,
    relay_script,
    session,
    tone,
    tts_texts,
)
from tests.e2e.test_spoken import spoken
from tests.support.aio import arun
from tests.support.server import running_server
from tests.support.twilio import FakeTwilio

TABLE = 'welcomeGreetingInterruptible = "none"\ninterruptible = "none"\n'


def test_welcome_greeting_and_nothing_cuts_the_app_when_interruptible_is_none(
    tmp_path: Path,
) -> None:
    arun(lambda: welcome_greeting_and_nothing_cuts(tmp_path), 60)


async def welcome_greeting_and_nothing_cuts(tmp: Path) -> None:
    app = App()
    # relay_script sets welcomeGreeting and dtmfDetection = true; this table adds the rest.
    path = relay_script(tmp, TABLE)
    async with relay_app(app) as url:
        listen = ListenSettings(stt="off", brain="relay", relay_url=url)
        # The caller's "voice" is a tone: speech to the energy detector (Silero would not call
        # it speech, and "nothing cuts" would hold without being tested).
        async with running_server(listen=listen, script_path=path, vad="energy") as run:
            tw = FakeTwilio(run)
            await tw.start()
            await tw.wait_for(lambda: bool(tts_texts(run)), 10)
            assert tts_texts(run)[0].startswith("Hi, this is the Wren line.")
            assert not any(default_script().greeting[:30] in t for t in tts_texts(run))
            # The caller talks over the welcome greeting: it is not cut (none).
            tw.speak(tone(600))
            await tw.wait_for(lambda: tw.mark_echoed("u1-end"), 15)
            assert session(run, tw).call.barge_ins == 0

            # A long reply: neither the caller's voice nor a key cuts it (interruptible none);
            # the key still reaches the app (dtmfDetection).
            caller_says(run, tw, "Tell me a story")
            await tw.wait_for(lambda: any("Once upon" in t for t in tts_texts(run)), 10)
            played = len(tw.heard.played)
            await tw.wait_for(lambda: len(tw.heard.played) > played + 8000 * 0.6, 15)
            tw.speak(tone(600))
            await tw.dtmf("5")
            await tw.wait_for(lambda: bool(app.of("dtmf")), 5)
            await tw.wait_for(lambda: tw.mark_echoed("u2-end"), 20)
            assert session(run, tw).call.barge_ins == 0 and not app.of("interrupt")
            await tw.hang_up()


def test_languages_reach_the_recogniser_and_the_voice(tmp_path: Path) -> None:
    arun(lambda: language_message(tmp_path), 60)


async def language_message(tmp: Path) -> None:
    app = App()
    path = relay_script(tmp, 'transcriptionLanguage = "en-GB"\nttsLanguage = "es-ES"\n')
    async with relay_app(app) as url:
        # The local ear (grammar: quick to start) speaks Scribe's protocol, language_code included.
        listen = ListenSettings(stt="local", ear_model="grammar", brain="relay", relay_url=url)
        async with running_server(listen=listen, script_path=path) as run:
            tw = FakeTwilio(run)
            await tw.start()
            await tw.wait_for(lambda: run.hub.registry.get(tw.call_sid) is not None, 5)
            listener = session(run, tw).listener
            assert listener is not None
            # the stream opens once the call has begun (after its caller's memory lookup)
            await tw.wait_for(lambda: listener.stt is not None, 5)
            first = listener.stt
            assert first is not None
            assert first.config.language == "en-GB"
            caller_says(run, tw, "hablo español")
            await tw.wait_for(lambda: listener.stt is not first, 10)
            assert listener.stt.config.language == "es-ES"
            caller_says(run, tw, "tell me about the tour")
            await tw.wait_for(lambda: len(app.of("prompt")) == 2, 10)
            assert [p["lang"] for p in app.of("prompt")] == ["en-GB", "es-ES"]
            # ttsLanguage: the voice's socket asks for Spanish (ElevenLabs' language_code).
            assert {r.query.get("language_code") for r in run.voice.records} == {"es"}
            await tw.hang_up()


def test_partial_prompts_from_the_local_ear_reach_the_app_with_last_false(tmp_path: Path) -> None:
    arun(lambda: partial_prompts(tmp_path), 60)


async def partial_prompts(tmp: Path) -> None:
    # Nothing injected: eSpeak speech in real-time 20 ms frames from the Twilio side, the real
    # local ear (Scribe's protocol: partial_transcript while the caller speaks, then
    # committed_transcript), the real STT client, the listener, the relay brain.
    app = App()
    path = relay_script(tmp, "partialPrompts = true\n")
    async with relay_app(app) as url:
        listen = ListenSettings(stt="local", ear_model="grammar", brain="relay", relay_url=url)
        async with running_server(listen=listen, script_path=path) as run:
            tw = FakeTwilio(run)
            await tw.start()
            await tw.wait_for(lambda: tw.mark_echoed("u1-end"), 20)  # the welcome greeting
            listener = session(run, tw).listener
            assert listener is not None
            await tw.wait_for(lambda: listener.stt is not None and bool(app.of("setup")), 5)
            tw.speak(spoken("Tell me about the new album"))
            await tw.wait_for(lambda: any(p["last"] for p in app.of("prompt")), 20)
            prompts = [(p["voicePrompt"], p["last"]) for p in app.of("prompt")]
            finals = [text for text, last in prompts if last]
            assert finals == ["tell me about the new album"], prompts
            partials = prompts[: prompts.index((finals[0], True))]
            # Unfinalised prompts came first, each a growing guess at the same words.
            assert partials and all(last is False for _, last in partials), prompts
            words = set("tell me about the new album".split())
            assert any(set(text.split()) & words for text, _ in partials), prompts
            await tw.hang_up()
