"""End to end with real speech: eSpeak questions, spoken by the Twilio side as real-time 20 ms
µ-law frames, recognised by the real local ear (pocketsphinx, Scribe protocol) through the real
STT client. Nothing here injects a transcript.
"""

from __future__ import annotations

import array
import asyncio
import logging
import random
import time
from typing import Any

import httpx
import pytest

from hotline.codec import ulaw_encode
from hotline.core.script import default_script
from hotline.ear.config import EarConfig
from hotline.ear.phrases import phrase_ulaw
from hotline.ear.server import LocalEar
from hotline.server.settings import ListenSettings
from hotline.sim.noise import cough as cough_burst
from tests.support.aio import arun
from tests.support.server import ADMIN, Running, running_server
from tests.support.twilio import FakeTwilio

pytestmark = pytest.mark.slow  # pocketsphinx in real time, ~140 s: `make test-all`, not `make test`

SCRIPT = default_script()

#: (what the caller says, the intent it must reach). "Goodbye" alone came out of the ear as
#: "tour bye" (eSpeak's "good" is close to "tour"); a caller who is done says a bit more.
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("What are the tour dates?", "tour"),
    ("Where can I buy merch?", "merch"),
    ("Tell me about the new album", "album"),
    ("Can you repeat that?", "repeat"),
    ("That's all, goodbye", "goodbye"),
)


def frames(ulaw: bytes) -> list[bytes]:
    ulaw += b"\xff" * (-len(ulaw) % 160)
    return [ulaw[i : i + 160] for i in range(0, len(ulaw), 160)]


def spoken(text: str) -> list[bytes]:
    return frames(phrase_ulaw(text))


def cough(ms: int = 200) -> list[bytes]:
    """A cough: a burst of loud noise on a 150 Hz voiced buzz (speech to the VAD)."""
    rng = random.Random(7)
    n = ms * 8
    pcm = array.array("h")
    for i in range(n):
        env = min(1.0, i / 80, (n - i) / 400)
        buzz = 6000 if (i % 53) < 6 else -800
        pcm.append(int(env * (buzz + rng.uniform(-9000, 9000))))
    return frames(ulaw_encode(pcm.tobytes()))


async def transcript(run: Running, sid: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{run.base}/calls/{sid}/transcript", headers=ADMIN)
        assert r.status_code == 200, r.text
        return dict(r.json())


async def metrics(run: Running) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{run.base}/metrics")).text


def held_back(text: str) -> float:
    """``hotline_stt_audio_held_back_bytes_total`` from a /metrics page."""
    for line in text.splitlines():
        if line.startswith("hotline_stt_audio_held_back_bytes_total "):
            return float(line.split()[1])
    return 0.0


def entries(t: dict[str, Any], speaker: str) -> list[dict[str, Any]]:
    return [e for e in t["entries"] if e["speaker"] == speaker]


async def wait_entries(
    run: Running, tw: FakeTwilio, speaker: str, n: int, timeout: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        t = await transcript(run, tw.call_sid)
        if len(entries(t, speaker)) >= n:
            return t
        if time.monotonic() > deadline:
            raise AssertionError(f"no {speaker} entry #{n}: {t}")
        await asyncio.sleep(0.1)


async def greeted(tw: FakeTwilio) -> None:
    await tw.start()
    await tw.wait_for(lambda: tw.mark_echoed("u1-end"), 25)


async def ask(run: Running, tw: FakeTwilio, question: str) -> tuple[dict[str, Any], float]:
    """Speak ``question`` once the last line has played; the new hotline entry and when the
    question's last frame went out."""
    before = len(entries(await transcript(run, tw.call_sid), "hotline"))
    speech = spoken(question)
    tw.speak(speech)
    await tw.wait_for(lambda: not tw._speech, 10)
    spoke_at = time.monotonic()
    t = await wait_entries(run, tw, "hotline", before + 1, 25)
    line = entries(t, "hotline")[before]
    await tw.wait_for(lambda: tw.mark_echoed(f"u{line['utterance_id']}-end"), 30)
    return t, spoke_at


def expected_line(intent: str, previous: str) -> str:
    if intent == "repeat":
        return previous
    if intent == "goodbye":
        return SCRIPT.goodbye
    found = next(i for i in SCRIPT.intents if i.name == intent)
    assert found.say is not None
    return found.say


# --------------------------------------------------------------------------- 1. questions


def test_spoken_questions_are_recognised_and_answered_with_the_intent_line() -> None:
    arun(spoken_questions_are_recognised_and_answered_with_the_intent_line, 150)


async def spoken_questions_are_recognised_and_answered_with_the_intent_line() -> None:
    async with running_server(listen=ListenSettings(stt="local")) as run:
        tw = FakeTwilio(run)
        await greeted(tw)
        previous = SCRIPT.greeting
        for question, intent in QUESTIONS:
            t, spoke_at = await ask(run, tw, question)
            callers = entries(t, "caller")
            assert callers, t
            heard = callers[-1]["text"]
            match = SCRIPT.match_intent(heard)
            assert match is not None and match.name == intent, (question, heard)
            line = entries(t, "hotline")[-1]
            want = expected_line(intent, previous)
            assert line["text"].strip() == want.strip(), (question, line)
            # The answer's audio arrived after the question was spoken.
            # over 1 s of reply audio (µ-law bytes: outbound media messages are batched)
            assert sum(len(f) for wall, _, f in tw.heard.frames if wall > spoke_at) > 50 * 160
            previous = want
            if intent == "goodbye":
                await tw.wait_for(lambda: tw.stopped.is_set(), 20)
        assert tw.heard.bad == [] or tw.heard.bad == ["reader: ConnectionClosedOK"], tw.heard.bad
        await tw.close()
        # Each question came after a line that played for seconds, with the line's silence
        # held back from the ear (the shipped HOTLINE_STT_SEND_SILENCE=0): the preroll sent
        # with each question's first sound was enough for every one of them.
        deadline = time.monotonic() + 10
        while (held := held_back(await metrics(run))) == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert held > 8000, "no silence was held back from the recogniser"


def test_spoken_handoff_says_its_line_and_ends_the_call() -> None:
    arun(spoken_handoff_says_its_line_and_ends_the_call, 90)


async def spoken_handoff_says_its_line_and_ends_the_call() -> None:
    # A person to hand the caller to (without one the intent's promise is not said).
    listen = ListenSettings(stt="local")
    async with running_server(listen=listen, handoff_number="+15555550100") as run:
        tw = FakeTwilio(run)
        await greeted(tw)
        tw.speak(spoken("I want to talk to a person"))
        await tw.wait_for(lambda: tw.stopped.is_set(), 40)
        await tw.wait_for(lambda: run.hub.transcripts.get(tw.call_sid) is not None, 5)
        kept = run.hub.transcripts.get(tw.call_sid)
        assert kept is not None
        said = kept.as_dict()["entries"]
        caller = [e["text"] for e in said if e["speaker"] == "caller"]
        match = SCRIPT.match_intent(caller[-1])
        assert match is not None and match.name == "person", caller
        assert match.say is not None
        assert any(e["speaker"] == "hotline" and e["text"] == match.say for e in said)
        await tw.close()


def test_coughs_after_the_greeting_leave_the_call_going_and_words_still_end_it() -> None:
    arun(coughs_after_the_greeting_leave_the_call_going_and_words_still_end_it, 120)


async def coughs_after_the_greeting_leave_the_call_going_and_words_still_end_it() -> None:
    """The shipped defaults (script brain, the local grammar ear): three coughs that the ear
    once heard as "hang up", "bye" and "person" (the call ended or was handed off) are no
    turn at all; the caller's own goodbye then ends the call."""
    async with running_server(listen=ListenSettings(stt="local")) as run:
        tw = FakeTwilio(run)
        await greeted(tw)
        for seed, smooth in ((1, 0.9), (3, 0.5), (0, 0.95)):
            tw.speak(frames(cough_burst(200, seed=seed, smooth=smooth)))
            await tw.wait_for(lambda: not tw._speech, 5)
            # the ear's segment closes after 500 ms of silence, the turn after 700 ms
            await asyncio.sleep(2.0)
        t = await transcript(run, tw.call_sid)
        assert entries(t, "caller") == [], t
        assert [e["text"] for e in entries(t, "hotline")] == [SCRIPT.greeting], t
        assert not tw.stopped.is_set()
        t, _ = await ask(run, tw, "That's all, goodbye")
        assert entries(t, "hotline")[-1]["text"].strip() == SCRIPT.goodbye.strip()
        await tw.wait_for(lambda: tw.stopped.is_set(), 20)
        await tw.close()


# ---------------------------------------------------------------------- 2. barge-in: words


def test_words_barge_in_ignores_a_cough_and_a_spoken_sentence_cuts_the_line() -> None:
    arun(words_barge_in_ignores_a_cough_and_a_spoken_sentence_cuts_the_line, 90)


async def words_barge_in_ignores_a_cough_and_a_spoken_sentence_cuts_the_line() -> None:
    async with running_server(listen=ListenSettings(stt="local", barge_in="words")) as run:
        tw = FakeTwilio(run)
        await tw.start()
        await tw.wait_for(lambda: len(tw.heard.played) > 8000, 15)  # a second of greeting
        tw.speak(cough(200))
        # Long enough for the ear to segment, decode and commit the cough (silence 700 ms).
        played = len(tw.heard.played)
        await tw.wait_for(lambda: len(tw.heard.played) > played + 8000 * 2.5, 15)
        assert tw.heard.clears == [], "a cough cut the line"
        assert not tw.mark_echoed("u1-end")  # the greeting is still playing
        tw.speak(spoken("Tell me about the new album"))
        await tw.wait_for(lambda: bool(tw.heard.clears), 15)
        t = await wait_entries(run, tw, "heard", 1, 10)
        (cut,) = entries(t, "heard")
        assert cut["utterance_id"] == 1 and cut["heard_ms"] > 2000
        assert cut["text"] and SCRIPT.greeting.strip().startswith(cut["text"].strip()[:20])
        assert len(cut["text"]) < len(SCRIPT.greeting.strip())
        await tw.hang_up()


# ------------------------------------------------------------------------------ 3. faults


def stt_failures(text: str, kind: str) -> float:
    for line in text.splitlines():
        if line.startswith(f'hotline_stt_failures_total{{kind="{kind}"}}'):
            return float(line.split()[-1])
    return 0.0


def failure_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "hotline.call" and "speech-to-text failed" in r.getMessage()
    ]


async def press_and_hear(run: Running, tw: FakeTwilio, digit: str) -> None:
    """DTMF still works: the menu line for ``digit`` is said and played."""
    before = len(entries(await transcript(run, tw.call_sid), "hotline"))
    await tw.dtmf(digit)
    t = await wait_entries(run, tw, "hotline", before + 1, 15)
    line = entries(t, "hotline")[before]
    assert line["text"] == SCRIPT.entry_for(digit).say
    heard_before = len(tw.heard.audio())
    await tw.wait_for(lambda: len(tw.heard.audio()) > heard_before + 50 * 160, 15)


def test_stt_refused_at_connect_the_call_goes_on_with_dtmf(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    arun(lambda: stt_refused_at_connect_the_call_goes_on_with_dtmf(caplog), 60)


async def stt_refused_at_connect_the_call_goes_on_with_dtmf(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with LocalEar(EarConfig(fault="refuse")) as ear:
        async with running_server(listen=ListenSettings(stt="local")) as run:
            run.hub.stt_url = ear.url  # the refusing ear instead of the embedded one
            tw = FakeTwilio(run)
            await greeted(tw)
            assert ear.stats.faults_injected >= 1
            assert stt_failures(await metrics(run), "auth_error") == 1
            assert len(failure_logs(caplog)) == 1
            await press_and_hear(run, tw, "1")
            # Nobody transcribes this; with the recogniser down its onset cuts the line (speech
            # barge-in, as without STT). Keys still work once the caller is quiet again.
            tw.speak(spoken("What are the tour dates?"))
            await tw.wait_for(lambda: not tw._speech, 10)
            await asyncio.sleep(1.5)
            await press_and_hear(run, tw, "2")
            assert ear.stats.connections == 1  # an auth failure is not retried
            assert len(failure_logs(caplog)) == 1
            await tw.hang_up()


def test_stt_dropped_mid_call_reconnects_and_the_next_spoken_turn_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    arun(lambda: stt_dropped_mid_call_reconnects_and_the_next_spoken_turn_works(caplog), 90)


async def stt_dropped_mid_call_reconnects_and_the_next_spoken_turn_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with LocalEar(EarConfig(fault="drop", drop_after_chunks=10)) as ear:
        async with running_server(listen=ListenSettings(stt="local")) as run:
            run.hub.stt_url = ear.url
            tw = FakeTwilio(run)
            await tw.start()
            # The first connection took its fault mode when it opened; the ear then recovers.
            await tw.wait_for(lambda: ear.stats.connections >= 1, 10)
            ear.config = EarConfig()
            await tw.wait_for(lambda: ear.stats.faults_injected == 1, 10)  # reset after ~1 s
            await tw.wait_for(lambda: ear.stats.connections >= 2, 10)  # the client reconnected
            await tw.wait_for(lambda: tw.mark_echoed("u1-end"), 25)
            assert stt_failures(await metrics(run), "dropped") == 1
            assert len(failure_logs(caplog)) == 1
            await press_and_hear(run, tw, "2")
            t, _ = await ask(run, tw, "What are the tour dates?")
            heard = entries(t, "caller")[-1]["text"]
            match = SCRIPT.match_intent(heard)
            assert match is not None and match.name == "tour", heard
            tour = expected_line("tour", "")
            assert entries(t, "hotline")[-1]["text"] == tour
            assert ear.stats.faults_injected == 1 and ear.stats.connections == 2
            assert len(failure_logs(caplog)) == 1
            await tw.hang_up()


def test_a_late_final_is_logged_and_dropped_not_a_second_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    arun(lambda: a_late_final_is_logged_and_dropped_not_a_second_turn(caplog), 90)


async def a_late_final_is_logged_and_dropped_not_a_second_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every result of the ear comes 2.2 s late (past the 2 s wait for a final): the turn
    ends with what it had, and the final that comes after it was answered is logged (its
    length, never its words) and dropped, not made a second turn with a second reply."""
    async with LocalEar(EarConfig(fault="slow", slow_s=2.2)) as ear:
        async with running_server(listen=ListenSettings(stt="local")) as run:
            run.hub.stt_url = ear.url
            tw = FakeTwilio(run)
            await greeted(tw)
            tw.speak(spoken("Tell me about the new album"))
            await tw.wait_for(lambda: not tw._speech, 10)

            def late_logged() -> bool:
                return any(
                    "came after its turn had ended" in r.getMessage() for r in caplog.records
                )

            await tw.wait_for(late_logged, 60)
            await asyncio.sleep(1.0)  # a second turn, if any, would have started by now
            t = await transcript(run, tw.call_sid)
            assert len(entries(t, "caller")) == 1, t
            assert len(entries(t, "hotline")) == 2, t  # the greeting and one reply
            assert any("recogniser timed out" in r.getMessage() for r in caplog.records)
            late = next(r for r in caplog.records if "came after its turn" in r.getMessage())
            assert "album" not in late.getMessage()
            await tw.hang_up()
