"""The LLM judge over the real Chat Completions wire format (the stand-in on 127.0.0.1)."""

from __future__ import annotations

from hotline.sim.llm_server import StandIn
from hotline.sim.scenario.judge import JudgeConfig, Verdict, judge
from tests.support.aio import arun
from tests.support.server import serve

RUBRIC = "The line gives the caller tour dates."


def ask(standin: StandIn, conversation: str, *, key: str | None = None) -> Verdict:
    async def main() -> Verdict:
        async with serve(standin.app()) as base:
            return await judge(
                JudgeConfig(base + "/v1", "standin-1", key, 5.0), RUBRIC, conversation
            )

    return arun(main, 20)


def standin(**kw: object) -> StandIn:
    s = StandIn(replies={"portland": "PASS: it names Portland and a date."}, **kw)  # type: ignore[arg-type]
    s.default = "FAIL. The caller heard nothing about dates."
    return s


def test_pass_and_fail_verdicts_with_their_reasons() -> None:
    s = standin()
    v = ask(s, "CALLER: (say 'tour?')\nLINE (as the caller heard it): Portland on April 12")
    assert v == Verdict(True, "it names Portland and a date")
    v = ask(s, "CALLER: (say 'tour?')\nLINE (as the caller heard it): Merch is at the shop")
    assert v == Verdict(False, "The caller heard nothing about dates")
    body = s.requests[-1]
    assert body["messages"][0]["role"] == "system" and RUBRIC in body["messages"][1]["content"]
    assert "Merch is at the shop" in body["messages"][1]["content"] and not body.get("stream")


def test_the_key_is_sent_as_a_bearer_token() -> None:
    s = standin(api_key="sk-judge")
    assert ask(s, "Portland", key="sk-judge").ok is True
    assert ask(s, "Portland", key="wrong") == Verdict(None, "judge answered HTTP 401")


def test_no_verdict_from_an_error_or_an_answer_that_is_neither() -> None:
    assert ask(standin(fault="500"), "Portland") == Verdict(None, "judge answered HTTP 500")
    vague = standin()
    vague.replies = {}
    vague.default = "Well, it depends."
    v = ask(vague, "Portland")
    assert v.ok is None and "neither PASS nor FAIL" in v.reason


def test_an_unreachable_judge_is_a_verdict_not_an_exception() -> None:
    async def main() -> Verdict:
        from hotline.loopback import free_port

        url = f"http://127.0.0.1:{free_port()}/v1"
        return await judge(JudgeConfig(url, timeout=2.0), RUBRIC, "x")

    v = arun(main, 10)
    assert v.ok is None and v.reason.startswith("judge unreachable")
