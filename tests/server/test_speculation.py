"""Speculative replies through the real BrainRunner, a real Call, the real LLM brain and the LLM
stand-in on 127.0.0.1: a speculative reply goes to TTS at once, but nothing of it is sent to the
caller, written to the transcript or counted as speaking; a cancelled one has its TTS cancelled
and its audio dropped unheard, the stand-in sees its request cancelled, and the brain's history
keeps only the confirmed turn; a confirmed one is heard with the audio already in hand, without
asking the model again; the relay brain never speculates."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from hotline.core.actions import (
    Action,
    CallerTurn,
    CancelTTS,
    Started,
    StartTTS,
    TTSText,
    UtteranceEnded,
    UtteranceOutcome,
    UtteranceSource,
)
from hotline.core.call import Call
from hotline.core.events import TTSAudio
from hotline.core.script import CallScript, load_script
from hotline.core.turns import TurnConfig
from hotline.server.brain_llm import LlmBrain, make_client
from hotline.server.brain_runner import BrainRunner
from hotline.server.listen import Listener
from hotline.server.metrics import Metrics
from hotline.server.settings import BrainKind
from hotline.sim.llm_server import StandIn
from tests.core.test_call import make_call, start_msg
from tests.support.server import serve

TOUR = "We play Portland on the twelfth and Seattle on the fourteenth."
ELSE = "Sorry, I only know a few things about the band and the tour so far."
SCRIPT = """
greeting = "Hi."
goodbye = "Bye."
invalid_digit = "No."
[llm]
system_prompt = "You are a test hotline."
first_token_timeout_s = 2.0
total_timeout_s = 10.0
"""


class Host:
    """The Listener's host: a real Call; the Call's actions are kept as the session drains them."""

    def __init__(self, call: Call, script: CallScript, brain: BrainKind = BrainKind.LLM) -> None:
        self.call = call
        listen = SimpleNamespace(brain=brain)
        self.hub = SimpleNamespace(
            script=script, metrics=Metrics(), settings=SimpleNamespace(listen=listen)
        )
        self.label = "CA-spec"
        self.caller = ""
        self.caller_history: tuple[dict[str, str], ...] = ()
        self.actions: list[Action] = []

    def fed(self) -> None:
        self.actions += self.call.actions()

    def to_tts(self) -> dict[int, str]:
        """The text that went to TTS, per reply (StartTTS of a streamed reply, TTSText)."""
        out: dict[int, str] = {}
        for a in self.actions:
            if isinstance(a, StartTTS) and a.streaming:
                out[a.utterance_id] = out.get(a.utterance_id, "") + a.text
            elif isinstance(a, TTSText):
                out[a.utterance_id] = out.get(a.utterance_id, "") + a.text
        return out

    def cancelled(self) -> set[int]:
        return {a.utterance_id for a in self.actions if isinstance(a, CancelTTS)}

    def said(self) -> str:
        """What went to TTS for replies whose TTS was not cancelled."""
        gone = self.cancelled()
        return "".join(t for uid, t in self.to_tts().items() if uid not in gone)

    def transcript(self) -> list[str]:
        """hotline's lines in the call's transcript after the greeting."""
        t = self.call.transcript
        assert t is not None
        return [e.text for e in t.entries if e.speaker.value == "hotline"][1:]

    def sent_media(self, uid: int) -> int:
        """Give reply ``uid`` a second of audio from its TTS, pump: the media messages sent."""
        now = 5.0
        self.call.pump(now)  # what was due before (the greeting) goes first
        self.call.data_to_send()
        self.call.receive_tts(uid, TTSAudio(b"\x7f" * 8000, None, None), now)
        self.fed()
        self.call.pump(now)
        return sum('"event":"media"' in m for m in self.call.data_to_send())


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)


def run(test: Callable[[Host, BrainRunner, LlmBrain, StandIn], Awaitable[None]]) -> None:
    async def main() -> None:
        standin = StandIn(replies={"tour": TOUR}, default=ELSE, token_delay=0.05)
        script = load_script(SCRIPT)
        async with serve(standin.app()) as base:
            brain = LlmBrain(script, make_client(base + "/v1", "sk-test"), model="standin-1")
            call = make_call(recognise=True, turns=TurnConfig(), script=script)
            call.receive_text(start_msg(), 0.0)
            (started,) = [a for a in call.actions() if isinstance(a, Started)]
            call.accept(0.0)
            call.play_recorded(1, b"\xff" * 800, 0.0)  # the greeting, done with
            call.actions()
            host = Host(call, script)
            listener = BrainRunner(host, brain)  # type: ignore[arg-type]
            listener.start(started.start)
            try:
                await test(host, listener, brain, standin)
            finally:
                await listener.aclose()

    asyncio.run(asyncio.wait_for(main(), 60))


def turn(text: str) -> CallerTurn:
    return CallerTurn(text, 0, 0, 0.0, 0.0, 0.0)


def test_a_cancelled_speculation_is_never_heard_and_the_model_sees_the_cancel() -> None:
    async def t(host: Host, listener: BrainRunner, brain: LlmBrain, standin: StandIn) -> None:
        assert listener.speculates
        listener.speculate("What are the")  # the caller paused mid-question
        await until(lambda: standin.tokens_sent >= 3)  # the model is answering it
        await until(lambda: bool(host.to_tts()))  # ... and its words go to TTS at once
        (spec,) = host.to_tts()
        assert host.sent_media(spec) == 0  # but the caller hears none of its audio
        assert not host.call.is_speaking(60.0) and host.transcript() == []
        listener.unspeculate()  # the caller went on
        await until(lambda: standin.cancelled == 1)
        await until(lambda: spec in host.cancelled())  # its TTS cancelled, its audio dropped
        dropped = UtteranceEnded(
            spec, UtteranceSource.BRAIN, UtteranceOutcome.DROPPED, "speculative reply retracted"
        )
        assert dropped in host.actions
        listener.caller_turn(turn("What are the tour dates?"))
        await until(lambda: standin.finished == 1)
        await brain.wait_idle()
        await until(lambda: host.said() == TOUR)
        assert not any(word in host.said() for word in ("Sorry", "band"))
        assert host.transcript() == [TOUR]  # nothing of the retracted reply
        # The second request carries the whole turn only; the first is forgotten.
        users = [m["content"] for m in standin.requests[-1]["messages"] if m["role"] == "user"]
        assert users == ["What are the tour dates?"]
        assert [m["role"] for m in brain.conversation.messages()] == [
            "system",
            "user",
            "assistant",
        ]
        assert (listener.speculations, listener.retracted, listener.confirmed) == (1, 1, 0)
        assert [t.outcome for t in brain.timings] == ["retracted", "ok"]

    run(t)


def test_a_confirmed_speculation_is_released_without_a_second_request() -> None:
    async def t(host: Host, listener: BrainRunner, brain: LlmBrain, standin: StandIn) -> None:
        listener.speculate("When's the tour")
        await until(lambda: standin.finished == 1)
        await brain.wait_idle()
        await until(lambda: host.said() == TOUR)  # its TTS runs before the turn is confirmed
        (spec,) = host.to_tts()
        assert host.sent_media(spec) == 0  # ... and its audio waits, unheard, unwritten
        assert host.transcript() == [] and not host.call.is_speaking(60.0)
        listener.caller_turn(turn("when's the TOUR?"))  # case and punctuation aside, the same
        await until(lambda: host.transcript() == [TOUR])
        host.call.pump(5.0)  # the audio in hand goes out at once
        assert sum('"event":"media"' in m for m in host.call.data_to_send()) > 0
        assert host.call.is_speaking(60.0) and host.to_tts() == {spec: TOUR}
        assert len(standin.requests) == 1 and standin.cancelled == 0 and not host.cancelled()
        assert (listener.speculations, listener.retracted, listener.confirmed) == (1, 0, 1)

    run(t)


def test_a_turn_held_for_the_fallback_is_answered_ahead_but_not_voiced() -> None:
    """Speculate.likely False (unfinished or unsure words: the caller usually goes on): the
    brain answers ahead, but its reply is held before TTS (no characters paid for a guess)."""

    async def t(host: Host, listener: BrainRunner, brain: LlmBrain, standin: StandIn) -> None:
        listener.speculate("When's the tour", voice=False)
        await until(lambda: standin.finished == 1)
        await brain.wait_idle()
        await asyncio.sleep(0.05)
        assert host.to_tts() == {}
        listener.caller_turn(turn("When's the tour"))
        await until(lambda: host.said() == TOUR)
        assert len(standin.requests) == 1 and (listener.confirmed, listener.retracted) == (1, 0)

    run(t)


def test_a_different_confirmed_turn_retracts_and_asks_again() -> None:
    async def t(host: Host, listener: BrainRunner, brain: LlmBrain, standin: StandIn) -> None:
        listener.speculate("I want to ask about")
        await until(lambda: standin.tokens_sent >= 2)
        listener.caller_turn(turn("I want to ask about the tour"))
        await until(lambda: host.said() == TOUR)
        assert standin.cancelled == 1 and len(standin.requests) == 2
        users = [m["content"] for m in standin.requests[-1]["messages"] if m["role"] == "user"]
        assert users == ["I want to ask about the tour"]

    run(t)


def test_the_relay_brain_never_speculates() -> None:
    from hotline.server.brain_relay import RelayBrain

    script = load_script(SCRIPT)
    brain: Any = RelayBrain("ws://127.0.0.1:9/relay", script, auth_token="t")
    host = Host(make_call(script=script), script, BrainKind.RELAY)
    listener = BrainRunner(host, brain)  # type: ignore[arg-type]
    assert not listener.speculates


def test_the_judge_runs_off_the_event_loop_and_its_verdict_ends_the_turn() -> None:
    """A judge-shaped function (a deterministic rule, not the model): the shell runs it in the
    judge's worker thread at the pause and the Call ends the turn on its answer."""
    import threading

    from hotline.core.actions import JudgeTurn
    from tests.core.test_call import SILENCE, _tone_frame, media_msg

    threads: list[str] = []

    def judge(ulaw: bytes) -> float:
        threads.append(threading.current_thread().name)
        return 0.9 if len(ulaw) >= 8000 else 0.1  # a second of turn or more: done

    async def main() -> None:
        script = load_script(SCRIPT)
        call = make_call(recognise=True, turns=TurnConfig(judge=True), script=script)
        call.receive_text(start_msg(), 0.0)
        call.accept(0.0)
        call.play_recorded(1, b"\xff" * 800, 0.0)
        call.actions()
        host = Host(call, script)
        listener = Listener(host, judge)  # type: ignore[arg-type]
        now, ts = 1.0, 1000
        asks: list[JudgeTurn] = []
        for i in range(80):  # 1 s of voice, then 600 ms of silence
            payload = _tone_frame(ts * 8) if i < 50 else SILENCE
            call.receive_text(media_msg(ts, payload), now)
            call.pump(now)
            call.data_to_send()
            for a in call.actions():
                if isinstance(a, JudgeTurn):
                    asks.append(a)
                    listener.judge_turn(a)
                host.actions.append(a)
            ts += 20
            now += 0.02
        call.transcript_final("Where can I buy merch?", now)
        host.fed()
        assert len(asks) == 1 and not any(isinstance(a, CallerTurn) for a in host.actions)
        await until(lambda: any(isinstance(a, CallerTurn) for a in host.actions))
        (turn_,) = [a for a in host.actions if isinstance(a, CallerTurn)]
        assert turn_.text == "Where can I buy merch?"
        assert threads and all(name.startswith("hotline-judge") for name in threads)
        await listener.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))
