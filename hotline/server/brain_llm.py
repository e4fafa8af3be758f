"""The LLM brain: an OpenAI-compatible Chat Completions server, streamed, with watchdogs.

Uses the official ``openai`` client (``AsyncOpenAI(base_url=..., max_retries=0)``): a voice
turn cannot wait for retries, so a failure becomes :class:`Fallback` at once and the next
caller turn tries again. Each final :class:`CallerTurn` starts one streamed request; the
reply is cut into phrases (:class:`hotline.core.llm.PhraseCutter`) and emitted as
:class:`SayText` pieces, the last with ``last=True``. A new turn, an :class:`Interrupted` or
:class:`CallEnding` cancels the request in flight (the HTTP stream is closed). The history
keeps only what the caller heard.

Failures -> ``Fallback(reason)`` (after ``SayText("", last=True)`` if part of the reply was
already emitted): HTTP errors (``http_<status>``), no first token within
``first_token_timeout_s`` (``first_token_timeout``), the whole reply over ``total_timeout_s``
(``total_timeout``), connection errors (``connection``), a malformed chunk or a stream that
ends before the reply finished (``bad_stream``).

A stream that ends without ``[DONE]``: the ``openai`` client cannot tell us (it stops at
``[DONE]`` or at the end of the body alike), so the brain judges by ``finish_reason``. Cut
before it -> ``bad_stream``. Cut after it (only the ``[DONE]`` line missing) -> the reply
is complete and was already spoken, so it stands: a "sorry, trouble" line after a whole
answer would be wrong.

Digits are answered from the script's DTMF menu (the model is not asked about key presses).

With ``handoff`` (a person can take the call) the model also gets ``transfer_to_human``
(beside ``end_call``): its ``say`` line is spoken, then :class:`EndCall` ``("handoff")``
carries ``handoff_data`` ``{"reason": "transfer_to_human", "summary": ...}`` for the
``<Connect action>``.
``timings`` holds one :class:`TurnTiming` per turn (clock: ``time.monotonic`` by default).

Speculation (``speculates``): the shell may send a :class:`CallerTurn` at the caller's pause and
hold the reply; :class:`Retract` (the caller went on) cancels that request and forgets the turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import openai

from hotline.core.brain import (
    BrainInput,
    CallEnding,
    CallerDigit,
    CallerTurn,
    CallStarted,
    Emit,
    EndCall,
    Fallback,
    Interrupted,
    Retract,
    SayText,
)
from hotline.core.llm import (
    ChunkParser,
    ContentDelta,
    Conversation,
    PhraseCutter,
    ToolCall,
    Usage,
    build_request,
)
from hotline.core.script import CallScript
from hotline.core.script_brain import ScriptBrain
from hotline.errors import LlmProtocolError
from hotline.server.tls import client_context

__all__ = ["LlmBrain", "TurnTiming", "caller_memory", "make_client"]

#: Characters of each earlier call's summary the model gets.
MEMORY_SUMMARY_CHARS = 500

log = logging.getLogger("hotline.brain")

#: The handoff tool's name (:data:`hotline.core.llm.TRANSFER_TOOL`).
TRANSFER = "transfer_to_human"


@dataclass
class TurnTiming:
    """Clock readings for one turn (None: never happened)."""

    request_sent: float
    first_token: float | None = None
    last_token: float | None = None
    outcome: str = "pending"  # "ok" | "end_call" | "transfer_to_human" | "cancelled" | a
    # Fallback reason
    pieces: int = 0
    usage: Usage | None = None


#: Seconds an idle connection to the model's host is kept for the next turn. httpx's default
#: (5 s) is shorter than most gaps between a caller's turns, so nearly every turn paid a new TCP
#: and TLS handshake; a host that closes sooner (uvicorn-based servers such as vLLM: 5 s) is
#: seen at the next checkout and a new connection is opened.
KEEPALIVE_S = 60.0


def _limits(keepalive_s: float) -> Any:
    """openai's own pool limits with ``keepalive_s``, in the HTTP library openai uses (httpx
    until 2.x, httpx2 since)."""
    default = openai.DEFAULT_CONNECTION_LIMITS
    return type(default)(
        max_connections=default.max_connections,
        max_keepalive_connections=default.max_keepalive_connections,
        keepalive_expiry=keepalive_s,
    )


def make_client(base_url: str, api_key: str, *, timeout: float = 15.0) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` for a voice bridge: short timeouts, no retries, idle connections kept
    :data:`KEEPALIVE_S`.

    Its httpx client verifies TLS with the process's one context (httpx would otherwise load the
    CA store again for every client: ~10 ms of CPU each).
    """
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key or "not-needed",
        timeout=timeout,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(
            verify=client_context(),
            timeout=timeout,
            limits=_limits(KEEPALIVE_S),
        ),
    )


def caller_memory(history: Any) -> str:
    """The system prompt's paragraph on a returning caller's earlier calls (newest first)."""
    lines = [
        "This caller has called before. Their earlier calls, newest first (greet them as a "
        "returning caller; do not read these notes out):"
    ]
    for item in history:
        summary = " ".join(str(item.get("summary", "")).split())[:MEMORY_SUMMARY_CHARS]
        lines.append(f"- {item.get('date', '')}: {summary}")
    return "\n".join(lines)


class _Failed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LlmBrain:
    """A :class:`hotline.core.brain.Brain` backed by a Chat Completions endpoint.

    Args:
        script: the call script (``[llm]`` persona and limits, goodbye, DTMF menu).
        client: from :func:`make_client` (the brain closes it in :meth:`aclose` if ``owns_client``).
        model: the model name sent in every request.
        legacy_max_tokens: send ``max_tokens`` instead of ``max_completion_tokens``.
        max_piece_chars: the phrase cutter's longest piece.
        clock: monotonic seconds, for :attr:`timings`.
    """

    def __init__(
        self,
        script: CallScript,
        client: openai.AsyncOpenAI,
        *,
        model: str,
        legacy_max_tokens: bool = False,
        max_piece_chars: int = 120,
        owns_client: bool = True,
        clock: Callable[[], float] = time.monotonic,
        handoff: bool = False,
    ) -> None:
        self.script = script
        self.handoff = handoff
        self.settings = script.llm
        self.client = client
        self.model = model
        self.legacy_max_tokens = legacy_max_tokens
        self.max_piece_chars = max_piece_chars
        self.owns_client = owns_client
        self.clock = clock
        self.conversation = Conversation(
            self.settings.system_prompt, self.settings.max_history_turns
        )
        self.timings: list[TurnTiming] = []
        self._menu = ScriptBrain(script, handoff=handoff)
        self._emit: Emit | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    #: The shell may send speculative turns (see :class:`~hotline.core.brain.Retract`).
    speculates = True

    async def start(self, ev: CallStarted, emit: Emit) -> None:
        self._emit = emit
        if ev.caller_history:  # a returning caller: what their last calls were about
            self.conversation.system_prompt = (
                f"{self.settings.system_prompt}\n\n{caller_memory(ev.caller_history)}"
            )

    async def handle(self, ev: BrainInput) -> None:
        if self._closed or self._emit is None:
            return
        if isinstance(ev, CallerTurn):
            if not ev.final or not ev.text.strip():
                return
            await self._cancel()
            self.conversation.add_user(ev.text)
            self._task = asyncio.create_task(self._turn(), name="llm-turn")
        elif isinstance(ev, CallerDigit):
            await self._cancel()
            for out in self._menu.respond(ev):
                await self._emit(out)
        elif isinstance(ev, Interrupted):
            await self._cancel()
            self.conversation.interrupted(ev.utterance_text_heard)
        elif isinstance(ev, Retract):
            # A speculative turn the caller went on from: its request is cancelled (the HTTP
            # stream closed) and neither its words nor its reply stay in the history.
            await self._cancel()
            self.conversation.retract()
            if self.timings and self.timings[-1].outcome == "cancelled":
                self.timings[-1].outcome = "retracted"
        elif isinstance(ev, CallEnding):
            await self._cancel()
        else:  # pragma: no cover - exhaustive
            raise TypeError(f"not a brain input: {type(ev).__name__}")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._cancel()
        if self.owns_client:
            await self.client.close()

    async def wait_idle(self) -> None:
        """Wait for the reply in progress (if any) to finish (tests, graceful hang-up)."""
        task = self._task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def _cancel(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _turn(self) -> None:
        assert self._emit is not None
        emit = self._emit
        timing = TurnTiming(self.clock())
        self.timings.append(timing)
        spoken: list[str] = []
        state = {"open": False}

        async def say(token: str, last: bool) -> None:
            if timing.first_token is None:
                timing.first_token = self.clock()
            timing.last_token = self.clock()
            timing.pieces += 1
            spoken.append(token)
            state["open"] = not last
            await emit(SayText(token, last=last))

        try:
            ended = await asyncio.wait_for(
                self._stream(timing, say), timeout=self.settings.total_timeout_s
            )
        except asyncio.CancelledError:
            timing.outcome = "cancelled"
            self.conversation.add_reply("".join(spoken))
            raise
        except _Failed as exc:
            await self._fail(timing, exc.reason, state["open"])
        except asyncio.TimeoutError:
            await self._fail(timing, "total_timeout", state["open"])
        else:
            self.conversation.add_reply("".join(spoken))
            if ended is not None and ended.name == TRANSFER:
                timing.outcome = TRANSFER
                summary = ended.arguments.get("reason")
                data = {"reason": TRANSFER, "summary": summary if isinstance(summary, str) else ""}
                await emit(EndCall("handoff", handoff_data=json.dumps(data)))
            elif ended is not None:
                timing.outcome = "end_call"
                await emit(EndCall("goodbye"))
            else:
                timing.outcome = "ok"

    async def _fail(self, timing: TurnTiming, reason: str, reply_open: bool) -> None:
        assert self._emit is not None
        timing.outcome = reason
        log.warning("llm turn failed: %s", reason)
        if reply_open:
            await self._emit(SayText("", last=True))
        await self._emit(Fallback(reason))

    async def _stream(self, timing: TurnTiming, say: Callable[..., Any]) -> ToolCall | None:
        body = build_request(
            self.conversation.messages(),
            model=self.model,
            settings=self.settings,
            legacy_max_tokens=self.legacy_max_tokens,
            handoff=self.handoff,
        )
        deadline = timing.request_sent + self.settings.first_token_timeout_s
        parser = ChunkParser()
        cutter = PhraseCutter(self.max_piece_chars)
        end_call: ToolCall | None = None
        got_first = False
        try:
            stream = await asyncio.wait_for(
                self.client.chat.completions.create(**body),
                timeout=self.settings.first_token_timeout_s,
            )
        except asyncio.TimeoutError:
            raise _Failed("first_token_timeout") from None
        except openai.APIStatusError as exc:
            raise _Failed(f"http_{exc.status_code}") from None
        except openai.APITimeoutError:
            raise _Failed("timeout") from None
        except openai.APIConnectionError:
            raise _Failed("connection") from None
        except openai.OpenAIError as exc:
            log.info("llm request failed: %s", type(exc).__name__)
            raise _Failed("request") from None
        chunks: AsyncIterator[Any] = stream.__aiter__()
        try:
            while True:
                try:
                    if got_first:
                        chunk = await chunks.__anext__()
                    else:
                        wait = max(0.0, deadline - self.clock())
                        chunk = await asyncio.wait_for(chunks.__anext__(), timeout=wait)
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    raise _Failed("first_token_timeout") from None
                except Exception as exc:
                    # openai.APIError (an error chunk), ValueError (a data: line that is not
                    # JSON), the transport's own errors (a connection cut mid-body): the
                    # reply is lost either way, and the peer must not take the call down.
                    log.info("llm stream broke: %s", type(exc).__name__)
                    raise _Failed("bad_stream") from None
                try:
                    events = parser.feed(chunk.to_dict())
                except LlmProtocolError:
                    raise _Failed("bad_stream") from None
                for ev in events:
                    if isinstance(ev, ContentDelta):
                        got_first = True
                        for piece in cutter.feed(ev.text):
                            await say(piece, False)
                    elif isinstance(ev, ToolCall):
                        got_first = True
                        if ev.name == "end_call" or (self.handoff and ev.name == TRANSFER):
                            end_call = end_call if end_call and end_call.name == TRANSFER else ev
                    elif isinstance(ev, Usage):
                        timing.usage = ev
            try:
                parser.end()
            except LlmProtocolError:
                raise _Failed("bad_stream") from None
        finally:
            await stream.close()
        rest = cutter.flush()
        if end_call is not None:
            key = "say" if end_call.name == TRANSFER else "goodbye"
            goodbye = end_call.arguments.get(key)
            line = goodbye if isinstance(goodbye, str) and goodbye.strip() else ""
            if not line and not rest and timing.pieces == 0 and end_call.name != TRANSFER:
                line = self.script.goodbye
            sep = " " if (rest or timing.pieces) and line else ""
            await say(rest + sep + line, True)
        else:
            await say(rest, True)
        return end_call
