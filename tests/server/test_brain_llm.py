"""The LLM brain with the official openai client against the stand-in on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hotline.core.brain import (
    BrainOutput,
    CallEnding,
    CallerDigit,
    CallerTurn,
    CallStarted,
    EndCall,
    Fallback,
    Interrupted,
    SayText,
)
from hotline.core.script import CallScript, default_script, load_script
from hotline.loopback import free_port
from hotline.server.brain_llm import LlmBrain, make_client
from hotline.sim.llm_server import END_CALL, TRANSFER, StandIn
from tests.support.server import serve

TOUR = (
    "We play Portland on the twelfth, Seattle on the fourteenth, and Vancouver. Tickets are online!"
)

FAST = """
greeting = "Hi."
goodbye = "Thanks for calling!"
invalid_digit = "No."
[menu]
1 = "Tour line."
[llm]
system_prompt = "You are a test hotline."
max_history_turns = 3
first_token_timeout_s = 0.6
total_timeout_s = 2.0
"""


class Rig:
    def __init__(self, standin: StandIn, brain: LlmBrain) -> None:
        self.standin = standin
        self.brain = brain
        self.out: list[BrainOutput] = []
        self.arrived = asyncio.Event()

    async def emit(self, o: BrainOutput) -> None:
        self.out.append(o)
        self.arrived.set()

    async def turn(self, text: str) -> list[BrainOutput]:
        self.out.clear()
        await self.brain.handle(CallerTurn(text))
        await self.brain.wait_idle()
        return list(self.out)


def run(
    test: Callable[[Rig], Awaitable[None]], script: CallScript | None = None, **standin: Any
) -> None:
    async def main() -> None:
        s = StandIn(replies={"tour": TOUR, "bye": END_CALL + "|Bye, see you at a show!"}, **standin)
        async with serve(s.app()) as base:
            brain = LlmBrain(
                script or load_script(FAST), make_client(base + "/v1", "sk-test"), model="standin-1"
            )
            rig = Rig(s, brain)
            await brain.start(CallStarted("CA1", "MZ1"), rig.emit)
            try:
                await test(rig)
            finally:
                await brain.aclose()

    asyncio.run(asyncio.wait_for(main(), 60))


def spoken(out: list[BrainOutput]) -> str:
    return "".join(o.token for o in out if isinstance(o, SayText))


def test_streams_phrases_and_the_recognised_text_reaches_the_model() -> None:
    async def t(rig: Rig) -> None:
        out = await rig.turn("When is the TOUR coming?")
        assert spoken(out) == TOUR
        assert all(isinstance(o, SayText) for o in out) and len(out) >= 3
        assert [o.last for o in out if isinstance(o, SayText)] == [False] * (len(out) - 1) + [True]
        body = rig.standin.requests[-1]
        assert body["messages"][0] == {"role": "system", "content": "You are a test hotline."}
        assert body["messages"][-1] == {"role": "user", "content": "When is the TOUR coming?"}
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        assert (
            body["max_completion_tokens"] == 150
            and body["tools"][0]["function"]["name"] == "end_call"
        )
        t0 = rig.brain.timings[-1]
        assert t0.outcome == "ok" and t0.first_token is not None and t0.last_token is not None
        assert t0.request_sent <= t0.first_token <= t0.last_token
        assert t0.usage is not None and t0.usage.completion_tokens > 0
        # The next request carries the history.
        await rig.turn("and merch?")
        msgs = rig.standin.requests[-1]["messages"]
        assert msgs[-2] == {"role": "assistant", "content": TOUR}

    run(t)


def test_first_piece_arrives_before_the_models_last_token() -> None:
    async def t(rig: Rig) -> None:
        gate = rig.standin.hold_before_last = asyncio.Event()
        await rig.brain.handle(CallerTurn("tour?"))
        await asyncio.wait_for(rig.arrived.wait(), 10)
        first = rig.out[0]
        assert isinstance(first, SayText) and not first.last
        n_tokens = len(TOUR.split())
        assert rig.standin.tokens_sent < n_tokens  # the last token is still held
        gate.set()
        await rig.brain.wait_idle()
        assert spoken(rig.out) == TOUR and rig.standin.tokens_sent == n_tokens

    run(t)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("500", "http_500"),
        ("timeout", "first_token_timeout"),
        ("slow_first", "first_token_timeout"),
        ("malformed", "bad_stream"),
        ("cut", "bad_stream"),
        ("error_chunk", "bad_stream"),
    ],
)
def test_each_fault_is_a_fallback_and_the_next_turn_works(fault: str, reason: str) -> None:
    async def t(rig: Rig) -> None:
        rig.standin.faults.append(fault)
        out = await rig.turn("tour please")
        assert out[-1] == Fallback(reason)
        says = [o for o in out if isinstance(o, SayText)]
        assert not says or says[-1] == SayText("", last=True)  # a started reply is closed
        assert rig.brain.timings[-1].outcome == reason
        out = await rig.turn("tour please")
        assert spoken(out) == TOUR and out[-1] == SayText(out[-1].token, last=True)  # type: ignore[union-attr]

    run(t, slow_first_s=3.0)


def test_whole_reply_without_done_stands() -> None:
    async def t(rig: Rig) -> None:
        rig.standin.faults.append("no_done")
        out = await rig.turn("tour")
        assert spoken(out) == TOUR and not any(isinstance(o, Fallback) for o in out)
        assert rig.brain.timings[-1].outcome == "ok"

    run(t)


def test_total_timeout() -> None:
    async def t(rig: Rig) -> None:
        out = await rig.turn("tour")
        assert out[-1] == Fallback("total_timeout")

    run(t, token_delay=0.25)


def test_interrupt_cancels_and_history_keeps_what_was_heard() -> None:
    async def t(rig: Rig) -> None:
        rig.standin.hold_before_last = asyncio.Event()  # never set: the reply hangs
        await rig.brain.handle(CallerTurn("tour"))
        await asyncio.wait_for(rig.arrived.wait(), 10)
        await rig.brain.handle(Interrupted("We play Portland", 900))
        assert rig.brain.timings[-1].outcome == "cancelled"
        n = len(rig.out)
        rig.standin.hold_before_last = None
        await rig.turn("what about merch")
        assert n >= 1
        msgs = rig.standin.requests[-1]["messages"]
        assert msgs[-3:] == [
            {"role": "user", "content": "tour"},
            {"role": "assistant", "content": "We play Portland"},
            {"role": "user", "content": "what about merch"},
        ]

    run(t)


def test_end_call_tool_says_goodbye_then_ends() -> None:
    async def t(rig: Rig) -> None:
        out = await rig.turn("ok bye")
        assert out == [SayText("Bye, see you at a show!", last=True), EndCall("goodbye")]
        assert rig.brain.timings[-1].outcome == "end_call"

    run(t)


def test_transfer_to_human_tool_ends_the_call_as_a_handoff_when_a_person_is_there() -> None:
    async def main(handoff: bool) -> tuple[list[BrainOutput], dict[str, Any]]:
        reply = TRANSFER + "|Let me put you through to Wren's team.|wants a refund"
        s = StandIn(replies={"person": reply})
        async with serve(s.app()) as base:
            client = make_client(base + "/v1", "sk-test")
            brain = LlmBrain(load_script(FAST), client, model="standin-1", handoff=handoff)
            rig = Rig(s, brain)
            await brain.start(CallStarted("CA1", "MZ1"), rig.emit)
            try:
                return await rig.turn("a person please"), s.requests[-1]
            finally:
                await brain.aclose()

    out, body = asyncio.run(asyncio.wait_for(main(True), 30))
    assert [t["function"]["name"] for t in body["tools"]] == ["end_call", "transfer_to_human"]
    data = json.dumps({"reason": "transfer_to_human", "summary": "wants a refund"})
    assert out == [
        SayText("Let me put you through to Wren's team.", last=True),
        EndCall("handoff", handoff_data=data),
    ]
    # Nobody to transfer to: the tool is not offered (and a model that calls it anyway is not
    # obeyed: the reply simply ends).
    out, body = asyncio.run(asyncio.wait_for(main(False), 30))
    assert [t["function"]["name"] for t in body["tools"]] == ["end_call"]
    assert not any(isinstance(o, EndCall) for o in out)


def test_digits_use_the_menu_and_call_ending_is_quiet() -> None:
    async def t(rig: Rig) -> None:
        await rig.brain.handle(CallerDigit("1"))
        assert rig.out == [SayText("Tour line.", last=True)]
        await rig.brain.handle(CallEnding())
        await rig.brain.handle(CallerTurn("partial", final=False))
        assert len(rig.standin.requests) == 0

    run(t)


def test_history_bound_and_legacy_max_tokens_with_the_default_script() -> None:
    async def main() -> None:
        s = StandIn(default="Sure.")
        async with serve(s.app()) as base:
            brain = LlmBrain(
                default_script(), make_client(base + "/v1", "k"), model="m", legacy_max_tokens=True
            )
            out: list[BrainOutput] = []

            async def emit(o: BrainOutput) -> None:
                out.append(o)

            await brain.start(CallStarted("CA1", "MZ1"), emit)
            for n in range(12):
                await brain.handle(CallerTurn(f"question {n}"))
                await brain.wait_idle()
            await brain.aclose()
        body = s.requests[-1]
        assert body["max_tokens"] == 150 and "max_completion_tokens" not in body
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        assert users == [f"question {n}" for n in range(4, 12)]  # max_history_turns = 8
        assert "Wren Calloway" in body["messages"][0]["content"]

    asyncio.run(asyncio.wait_for(main(), 60))


def test_unreachable_server_is_a_fallback() -> None:
    async def main() -> None:
        port = free_port()  # nothing listens there
        brain = LlmBrain(
            load_script(FAST), make_client(f"http://127.0.0.1:{port}/v1", "k"), model="m"
        )
        out: list[BrainOutput] = []

        async def emit(o: BrainOutput) -> None:
            out.append(o)

        await brain.start(CallStarted("CA1", "MZ1"), emit)
        await brain.handle(CallerTurn("hello"))
        await brain.wait_idle()
        await brain.aclose()
        assert out == [Fallback("connection")]

    asyncio.run(asyncio.wait_for(main(), 30))


def test_make_brain_factory_and_the_script_brain_adapter() -> None:
    from hotline.server.brain_relay import RelayBrain
    from hotline.server.brains import SansIOBrain, make_brain
    from hotline.server.settings import BrainKind

    async def main() -> None:
        brain = make_brain(BrainKind.SCRIPT, default_script())
        assert isinstance(brain, SansIOBrain)
        out: list[BrainOutput] = []

        async def emit(o: BrainOutput) -> None:
            out.append(o)

        await brain.start(CallStarted("CA1", "MZ1"), emit)
        await brain.handle(CallerTurn("any new merch?"))
        await brain.handle(CallerTurn("bye"))
        await brain.aclose()
        assert isinstance(out[0], SayText) and "shop" in out[0].token
        assert out[-1] == EndCall("goodbye")
        llm = make_brain(BrainKind.LLM, default_script(), llm_url="http://127.0.0.1:9/v1")
        assert isinstance(llm, LlmBrain)
        await llm.aclose()
        relay = make_brain(
            BrainKind.RELAY,
            default_script(),
            relay_url="wss://app.test/relay",
            twilio_auth_token="t",
        )
        assert isinstance(relay, RelayBrain)
        for kind in (BrainKind.LLM, BrainKind.RELAY):  # without a URL
            with pytest.raises(ValueError):
                make_brain(kind, default_script())
        with pytest.raises(ValueError, match="ws:// or wss://"):
            make_brain(BrainKind.RELAY, default_script(), relay_url="https://app.test/relay")

    asyncio.run(main())
