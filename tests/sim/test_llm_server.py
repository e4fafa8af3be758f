"""The OpenAI-compatible stand-in speaks the real wire format (checked with raw HTTP)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx
import pytest

from hotline.sim.llm_server import END_CALL, StandIn
from tests.support.server import serve

BODY = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "any TOUR dates?"},
    ],
    "stream": True,
    "stream_options": {"include_usage": True},
}


def run(standin: StandIn, test: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with (
            serve(standin.app()) as base,
            httpx.AsyncClient(base_url=base, timeout=10) as client,
        ):
            await test(client)

    asyncio.run(asyncio.wait_for(main(), 30))


async def events(client: httpx.AsyncClient, body: object) -> tuple[httpx.Response, list[str]]:
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        raw = (await r.aread()).decode()
    assert raw.endswith("\n\n")
    return r, [block for block in raw.split("\n\n") if block]


def test_sse_stream_shape() -> None:
    s = StandIn(replies={"tour": "We play Portland."})

    async def t(client: httpx.AsyncClient) -> None:
        r, blocks = await events(client, BODY)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert all(b.startswith("data: ") for b in blocks) and blocks[-1] == "data: [DONE]"
        chunks = [json.loads(b[6:]) for b in blocks[:-1]]
        assert len({c["id"] for c in chunks}) == 1
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text == "We play Portland."
        finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert finish[-1] == "stop" and set(finish[:-1]) == {None}
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
        assert all(c["usage"] is None for c in chunks[:-1])
        assert s.requests == [BODY]

    run(s, t)


def test_no_usage_chunk_unless_asked_and_tool_call_fragments() -> None:
    s = StandIn(default=END_CALL + "|Bye!")

    async def t(client: httpx.AsyncClient) -> None:
        _, blocks = await events(client, {**BODY, "stream_options": None})
        chunks = [json.loads(b[6:]) for b in blocks[:-1]]
        assert all(c["choices"] for c in chunks)
        calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
        assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "end_call"
        assert all(set(tc) == {"index", "function"} for tc in calls[1:])
        args = "".join(tc["function"]["arguments"] for tc in calls)
        assert json.loads(args) == {"goodbye": "Bye!"}
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    run(s, t)


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [(b"{nope", 400, "invalid_request_error"), (b'{"model": "m"}', 400, "invalid_request_error")],
)
def test_error_bodies(body: bytes, status: int, kind: str) -> None:
    async def t(client: httpx.AsyncClient) -> None:
        r = await client.post("/v1/chat/completions", content=body)
        assert r.status_code == status
        err = r.json()["error"]
        assert err["type"] == kind and set(err) == {"message", "type", "param", "code"}

    run(StandIn(), t)


def test_500_401_and_non_streaming() -> None:
    s = StandIn(api_key="sk-right", faults=["500"])

    async def t(client: httpx.AsyncClient) -> None:
        r = await client.post(
            "/v1/chat/completions", json=BODY, headers={"Authorization": "Bearer sk-right"}
        )
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
        r = await client.post(
            "/v1/chat/completions", json=BODY, headers={"Authorization": "Bearer x"}
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = await client.post(
            "/v1/chat/completions",
            json={**BODY, "stream": False},
            headers={"Authorization": "Bearer sk-right"},
        )
        whole = r.json()
        assert (
            whole["object"] == "chat.completion"
            and whole["choices"][0]["message"]["role"] == "assistant"
        )
        assert (await client.get("/v1/chat/completions")).status_code == 405

    run(s, t)


@pytest.mark.parametrize("fault", ["cut", "malformed", "no_done", "error_chunk"])
def test_stream_faults(fault: str) -> None:
    s = StandIn(default="one two three four five six", fault=fault)

    async def t(client: httpx.AsyncClient) -> None:
        _, blocks = await events(client, BODY)
        assert blocks[-1] != "data: [DONE]"
        if fault == "malformed":
            with pytest.raises(ValueError):
                json.loads(blocks[-1][6:])
        if fault == "error_chunk":
            assert "error" in json.loads(blocks[-1][6:])
        if fault == "no_done":
            assert json.loads(blocks[-1][6:])["choices"] == []
        if fault == "cut":
            assert all(json.loads(b[6:])["choices"][0]["finish_reason"] is None for b in blocks)

    run(s, t)
