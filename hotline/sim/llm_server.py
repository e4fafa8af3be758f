"""An OpenAI-compatible Chat Completions stand-in on 127.0.0.1 (for tests and offline runs).

``POST /v1/chat/completions`` with ``stream: true`` answers with the real SSE wire format:
``data: {chunk}\\n\\n`` lines (first chunk ``delta.role``, then ``delta.content`` tokens, then a
chunk with ``finish_reason``, then -- with ``stream_options.include_usage`` -- a usage chunk
with ``choices: []``; every other chunk has ``usage: null``), then ``data: [DONE]``. Without
``stream`` it returns one ``chat.completion`` object. Errors are ``{"error": {message, type,
param, code}}`` with the status OpenAI uses (400 invalid JSON/body, 401 bad key when one is
configured, 404 unknown path, 500 the ``500`` fault).

Replies come from a table: the first entry whose key occurs (case-insensitive) in the last
user message, else ``default``. A reply equal to :data:`END_CALL` (or one starting with it
and a goodbye after ``|``) answers with an ``end_call`` tool call, fragmented into pieces the
way OpenAI streams them; :data:`TRANSFER` (``<transfer_to_human>|line|reason``) likewise
with a ``transfer_to_human`` call (``say``, ``reason``). Tokens are words with their leading space, sent ``token_delay`` apart.

Faults (``StandIn.fault`` for every request, or ``StandIn.faults`` consumed one per request):
``500`` (error body), ``timeout`` (headers never come), ``malformed`` (a chunk that is not
JSON), ``slow_first`` (``slow_first_s`` before the first token), ``cut`` (some tokens, then
the body ends without finish_reason or ``[DONE]``), ``error_chunk`` (an ``error`` object
mid-stream), ``no_done`` (the whole reply and usage, then the body ends without ``[DONE]``).
Every request body is kept in ``StandIn.requests``; ``hold_before_last`` lets a
test hold every stream just before its last token (to show pieces arrive before it).

Run it: ``python -m hotline.sim.llm_server --port 8089 --reply "tour=We play Portland." ``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["END_CALL", "FAULTS", "TRANSFER", "StandIn", "listening_socket", "main"]

END_CALL = "<end_call>"
TRANSFER = "<transfer_to_human>"
FAULTS = ("500", "timeout", "malformed", "slow_first", "cut", "error_chunk", "no_done")
_TOKEN = re.compile(r"\s*\S+")


def _tool_call(reply: str) -> tuple[str, str] | None:
    """The tool call a reply stands for: (name, JSON arguments), or None."""
    if reply.startswith(END_CALL):
        return "end_call", json.dumps({"goodbye": reply.partition("|")[2]})
    if reply.startswith(TRANSFER):
        _, _, rest = reply.partition("|")
        say, _, reason = rest.partition("|")
        return "transfer_to_human", json.dumps({"say": say, "reason": reason})
    return None


def _error(status: int, message: str, type_: str, code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


@dataclass
class StandIn:
    """Configuration and recorded traffic of one stand-in server (mutable between requests)."""

    replies: dict[str, str] = field(default_factory=dict)
    default: str = "Sorry, I only know a few things. Try asking about the tour."
    token_delay: float = 0.0
    fault: str | None = None
    faults: list[str] = field(default_factory=list)
    slow_first_s: float = 2.0
    api_key: str | None = None
    model: str = "standin-1"
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: Each request's client port, in order (one port per TCP connection the client opened).
    client_ports: list[int] = field(default_factory=list)
    #: Tests: when set, each stream waits for this event before its last content token.
    hold_before_last: asyncio.Event | None = None
    #: Content tokens sent so far (all streams), for tests.
    tokens_sent: int = 0
    #: Streams the client closed before their end (a cancelled request), and finished ones.
    cancelled: int = 0
    finished: int = 0

    def app(self) -> Starlette:
        """The ASGI application."""
        return Starlette(
            routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])]
        )

    def reply_for(self, messages: list[Any]) -> str:
        last = ""
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                last = content if isinstance(content, str) else json.dumps(content)
                break
        lowered = last.lower()
        for key, reply in self.replies.items():
            if key.lower() in lowered:
                return reply
        return self.default

    async def _completions(self, request: Request) -> Response:
        if self.api_key is not None:
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return _error(
                    401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
                )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property", "invalid_request_error")
        self.requests.append(body)
        if request.client is not None:
            self.client_ports.append(request.client.port)
        fault = self.faults.pop(0) if self.faults else self.fault
        if fault == "500":
            return _error(
                500, "The server had an error while processing your request.", "server_error"
            )
        if fault == "timeout":
            # Never answers; returns (unseen) once the client has gone, so shutdown is clean.
            while not await request.is_disconnected():
                await asyncio.sleep(0.05)
            return Response(status_code=499)
        reply = self.reply_for(body["messages"])
        created = int(time.time())
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        if not body.get("stream"):
            return JSONResponse(self._whole(cid, created, reply))
        usage = isinstance(body.get("stream_options"), dict) and bool(
            body["stream_options"].get("include_usage")
        )
        return StreamingResponse(
            self._counted(self._stream(cid, created, reply, fault, usage, body["messages"])),
            media_type="text/event-stream",
        )

    async def _counted(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``stream``, counted as finished, or as cancelled when the client leaves first."""
        done = False
        try:
            async for data in stream:
                yield data
            done = True
        finally:
            if done:
                self.finished += 1
            else:
                self.cancelled += 1

    def _whole(self, cid: str, created: int, reply: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply, "refusal": None}
        reason = "stop"
        tool = _tool_call(reply)
        if tool is not None:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_" + cid[-8:],
                        "type": "function",
                        "function": {"name": tool[0], "arguments": tool[1]},
                    }
                ],
            }
            reason = "tool_calls"
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": reason, "logprobs": None}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    async def _stream(
        self,
        cid: str,
        created: int,
        reply: str,
        fault: str | None,
        usage: bool,
        messages: list[Any],
    ) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "system_fingerprint": "fp_standin",
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                ],
                "usage": None,
            }
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        if fault == "slow_first":
            await asyncio.sleep(self.slow_first_s)
        tool = _tool_call(reply)
        if tool is not None:
            name, arguments = tool
            first = {
                "index": 0,
                "id": "call_" + cid[-8:],
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            yield chunk({"tool_calls": [first]})
            for i in range(0, len(arguments), 7):
                await asyncio.sleep(self.token_delay)
                piece = {"index": 0, "function": {"arguments": arguments[i : i + 7]}}
                yield chunk({"tool_calls": [piece]})
            finish = "tool_calls"
        else:
            tokens = _TOKEN.findall(reply)
            for n, token in enumerate(tokens):
                if n:
                    await asyncio.sleep(self.token_delay)
                if fault == "malformed" and n == 1:
                    yield b'data: {"id": "' + cid.encode() + b'", "choices": [{"delta": \n\n'
                    return
                if fault == "error_chunk" and n == 1:
                    err = {
                        "error": {
                            "message": "overloaded",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    }
                    yield b"data: " + json.dumps(err).encode() + b"\n\n"
                    return
                if fault == "cut" and n == max(1, len(tokens) // 2):
                    return
                if n == len(tokens) - 1 and self.hold_before_last is not None:
                    await self.hold_before_last.wait()
                self.tokens_sent += 1
                yield chunk({"content": token})
            finish = "stop"
        yield chunk({}, finish)
        if usage:
            prompt = sum(
                len(str(m.get("content") or "").split()) for m in messages if isinstance(m, dict)
            )
            completion = len(_TOKEN.findall(reply))
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "system_fingerprint": "fp_standin",
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
            yield b"data: " + json.dumps(obj).encode() + b"\n\n"
        if fault != "no_done":
            yield b"data: [DONE]\n\n"


def main(argv: list[str] | None = None) -> None:
    """``python -m hotline.sim.llm_server``: serve the stand-in on 127.0.0.1."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--reply", action="append", default=[], metavar="SUBSTRING=REPLY")
    parser.add_argument("--default", default=None)
    parser.add_argument("--token-delay", type=float, default=0.03)
    parser.add_argument("--fault", choices=FAULTS, default=None)
    args = parser.parse_args(argv)
    replies = dict(item.split("=", 1) for item in args.reply if "=" in item)
    standin = StandIn(replies=replies, token_delay=args.token_delay, fault=args.fault)
    if args.default:
        standin.default = args.default
    sock = listening_socket(args.port)
    print(f"OpenAI-compatible stand-in on http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    server = uvicorn.Server(uvicorn.Config(standin.app(), log_level="warning", ws="none"))
    server.run(sockets=[sock])


def listening_socket(port: int = 0) -> socket.socket:
    """A 127.0.0.1 listening socket with TCP_NODELAY, which accepted sockets inherit on Linux.

    Without it, uvicorn's SSE chunks after the headers sit in Nagle's buffer until the
    client's delayed ACK (~40 ms per turn measured on loopback)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    return sock


if __name__ == "__main__":
    main()
