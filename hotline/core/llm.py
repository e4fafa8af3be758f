"""The LLM brain's sans-I/O parts: history, request, stream-chunk parsing, phrase cutting.

* :class:`Conversation` -- bounded per-call history. The assistant side keeps only what the
  caller *heard*: after :meth:`Conversation.interrupted` the reply is cut to
  ``utterance_text_heard`` (an interrupted reply nobody heard is dropped).
* :func:`build_request` -- the Chat Completions body: ``messages``, ``stream: true``,
  ``stream_options.include_usage``, ``max_completion_tokens`` (or the deprecated
  ``max_tokens`` for servers that only know that, e.g. Ollama), ``temperature`` and the
  ``end_call`` tool (the model says goodbye, then the call hangs up).
* :class:`ChunkParser` -- one streamed chunk (a JSON object, as a dict) -> :data:`LlmEvent`
  list. Defensive: ``choices`` may be ``[]`` or null (usage chunks: OpenAI vs vLLM), unknown
  delta keys (``reasoning``, ``reasoning_content``, ``obfuscation``) are ignored, a repeated
  ``role`` is harmless, tool calls may come whole (Ollama) or fragmented, keyed by ``index``;
  their arguments are parsed only when the choice finishes. :meth:`ChunkParser.end` raises
  if the stream ended before a ``finish_reason`` (a cut stream, with or without ``[DONE]``).
* :class:`PhraseCutter` -- tokens -> TTS-sized pieces.

Why phrases and not raw tokens: hotline speaks through a TTS that is asked per piece (the
local voice and the ElevenLabs path both synthesise better with whole phrases, and a
one-token piece costs a round trip), while waiting for the whole reply would add the full
generation time to the latency. A piece ends after ``. , ? ! ; :`` followed by a space (so
"3.5" and "a.m." inside a word never cut), or at ``max_chars`` (at the last space if any).
Pieces are never trimmed: joining them gives back exactly the tokens. A relay app that
wants raw tokens still gets them -- the relay brain forwards the app's tokens unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hotline.core._wire import describe
from hotline.core.script import LlmSettings
from hotline.errors import LlmProtocolError

__all__ = [
    "END_CALL_TOOL",
    "TRANSFER_TOOL",
    "ChunkParser",
    "ContentDelta",
    "Conversation",
    "Finished",
    "LlmEvent",
    "PhraseCutter",
    "ToolCall",
    "Usage",
    "build_request",
]

#: The one tool the model gets: end the call after an optional goodbye line.
END_CALL_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "end_call",
        "description": (
            "End the phone call. Use it when the caller says goodbye or wants to hang up. "
            "The goodbye line is spoken, then the call ends."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "goodbye": {"type": "string", "description": "A short goodbye to say first."}
            },
            "required": [],
        },
    },
}

#: The tool the model gets when a person can take the call (``HOTLINE_HANDOFF_URL`` or
#: ``HOTLINE_HANDOFF_NUMBER``): end the call as a handoff after a short line.
TRANSFER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "transfer_to_human",
        "description": (
            "Hand the caller to a person on the team. Use it when the caller asks for a "
            "person, or needs something you cannot do. The line is spoken, then the call is "
            "transferred."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "say": {"type": "string", "description": "A short line to say first."},
                "reason": {
                    "type": "string",
                    "description": "What the caller needs, in a few words, for the person.",
                },
            },
            "required": [],
        },
    },
}

_MAX_TOOL_CALLS = 16
_MAX_ARGUMENT_CHARS = 20_000


class Conversation:
    """The per-call message history, bounded to ``max_turns`` caller turns.

    Call order per turn: :meth:`add_user`, then :meth:`add_reply` with the whole reply
    text once it is generated, then :meth:`interrupted` if the caller barged in."""

    def __init__(self, system_prompt: str, max_turns: int) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        self._turns: list[list[dict[str, str]]] = []

    def add_user(self, text: str) -> None:
        """Start a turn with what the caller said."""
        self._turns.append([{"role": "user", "content": text}])
        del self._turns[: -self.max_turns]

    def add_reply(self, text: str) -> None:
        """Record the reply spoken for the latest turn (replaces an earlier one)."""
        if not self._turns:
            raise ValueError("add_reply before add_user")
        turn = self._turns[-1]
        del turn[1:]
        if text:
            turn.append({"role": "assistant", "content": text})

    def interrupted(self, heard: str) -> None:
        """The caller barged in: keep only ``heard`` of the latest reply (drop it if empty)."""
        if not self._turns:
            return
        self.add_reply(heard.strip() and heard)

    def retract(self) -> None:
        """Forget the latest turn (a speculative one the caller went on from): its words and
        any reply to it, none of which was heard."""
        if self._turns:
            self._turns.pop()

    def messages(self) -> list[dict[str, str]]:
        """System prompt plus the kept turns, oldest first (a new list of new dicts)."""
        out = [{"role": "system", "content": self.system_prompt}]
        for turn in self._turns:
            out.extend(dict(m) for m in turn)
        return out


def build_request(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str,
    settings: LlmSettings,
    legacy_max_tokens: bool = False,
    tools: bool = True,
    handoff: bool = False,
) -> dict[str, Any]:
    """The ``POST /v1/chat/completions`` body (also usable as ``create(**body)`` kwargs).

    Args:
        messages: from :meth:`Conversation.messages`.
        model: the model name.
        settings: the script's ``[llm]`` limits.
        legacy_max_tokens: send ``max_tokens`` instead of ``max_completion_tokens``.
        tools: offer the ``end_call`` tool.
        handoff: offer ``transfer_to_human`` too (a person can take the call).
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [dict(m) for m in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": settings.temperature,
    }
    key = "max_tokens" if legacy_max_tokens else "max_completion_tokens"
    body[key] = settings.max_reply_tokens
    if tools:
        body["tools"] = [END_CALL_TOOL, TRANSFER_TOOL] if handoff else [END_CALL_TOOL]
        body["tool_choice"] = "auto"
    return body


# ----------------------------------------------------------------------------- stream events


@dataclass(frozen=True, slots=True)
class ContentDelta:
    """Reply text, exactly as streamed (never empty)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call (arguments parsed; ``{}`` when they were not a JSON object)."""

    index: int
    id: str | None
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Finished:
    """The choice finished (``stop``, ``length``, ``tool_calls``, ``content_filter``, ...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Usage:
    """The usage chunk (``stream_options.include_usage``)."""

    prompt_tokens: int
    completion_tokens: int


LlmEvent = ContentDelta | ToolCall | Finished | Usage


@dataclass
class _ToolAcc:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    size: int = 0


class ChunkParser:
    """Turns Chat Completions stream chunks into :data:`LlmEvent` s (choice 0 only)."""

    def __init__(self) -> None:
        self._tools: dict[int, _ToolAcc] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: object) -> list[LlmEvent]:
        """Parse one chunk (the decoded ``data:`` JSON).

        Raises:
            LlmProtocolError: not an object, an ``error`` chunk, or fields of the wrong type.
        """
        if not isinstance(chunk, Mapping):
            raise LlmProtocolError(f"chunk must be an object, got {describe(chunk)}")
        if chunk.get("error") is not None:
            raise LlmProtocolError("the stream carried an error chunk")
        out: list[LlmEvent] = []
        choices = chunk.get("choices")
        if choices is None:
            choices = []
        if not isinstance(choices, list):
            raise LlmProtocolError(f"choices must be an array, got {describe(choices)}")
        for choice in choices:
            if not isinstance(choice, Mapping):
                raise LlmProtocolError(f"choice must be an object, got {describe(choice)}")
            if choice.get("index", 0) != 0:
                continue  # n > 1 is never requested
            out.extend(self._choice(choice))
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                self.usage = Usage(prompt, completion)
                out.append(self.usage)
        return out

    def _choice(self, choice: Mapping[str, Any]) -> list[LlmEvent]:
        out: list[LlmEvent] = []
        delta = choice.get("delta")
        if delta is None:
            delta = {}
        if not isinstance(delta, Mapping):
            raise LlmProtocolError(f"delta must be an object, got {describe(delta)}")
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            raise LlmProtocolError(f"delta.content must be a string, got {describe(content)}")
        if content:
            out.append(ContentDelta(content))
        tool_calls = delta.get("tool_calls")
        if tool_calls is not None:
            if not isinstance(tool_calls, list):
                raise LlmProtocolError("delta.tool_calls must be an array")
            for item in tool_calls:
                self._tool_fragment(item)
        reason = choice.get("finish_reason")
        if reason is not None:
            if not isinstance(reason, str):
                raise LlmProtocolError("finish_reason must be a string")
            if self.finish_reason is None:
                self.finish_reason = reason
                out.extend(self._complete_tools())
                out.append(Finished(reason))
        return out

    def _tool_fragment(self, item: object) -> None:
        if not isinstance(item, Mapping):
            raise LlmProtocolError(f"tool call must be an object, got {describe(item)}")
        index = item.get("index", 0)
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise LlmProtocolError("tool call index must be a non-negative integer")
        acc = self._tools.get(index)
        if acc is None:
            if len(self._tools) >= _MAX_TOOL_CALLS:
                raise LlmProtocolError("too many tool calls")
            acc = self._tools[index] = _ToolAcc()
        call_id = item.get("id")
        if isinstance(call_id, str) and call_id:
            acc.id = call_id
        function = item.get("function")
        if function is None:
            return
        if not isinstance(function, Mapping):
            raise LlmProtocolError("tool call function must be an object")
        name = function.get("name")
        if isinstance(name, str) and name:
            # Servers that send the whole call repeat the name; fragments send it once.
            acc.name = name if acc.name in ("", name) else acc.name + name
        arguments = function.get("arguments")
        if arguments is not None:
            if not isinstance(arguments, str):
                raise LlmProtocolError("tool call arguments must be a string")
            acc.size += len(arguments)
            if acc.size > _MAX_ARGUMENT_CHARS:
                raise LlmProtocolError("tool call arguments too long")
            acc.arguments.append(arguments)

    def _complete_tools(self) -> list[LlmEvent]:
        out: list[LlmEvent] = []
        for index in sorted(self._tools):
            acc = self._tools[index]
            if not acc.name:
                continue
            text = "".join(acc.arguments).strip()
            try:
                args = json.loads(text) if text else {}
            except (ValueError, RecursionError):
                args = {}
            out.append(ToolCall(index, acc.id, acc.name, args if isinstance(args, dict) else {}))
        self._tools.clear()
        return out

    def end(self) -> None:
        """The stream ended. Raises LlmProtocolError if no ``finish_reason`` arrived."""
        if self.finish_reason is None:
            raise LlmProtocolError("the stream ended before the reply finished")


class PhraseCutter:
    """Cuts a token stream into pieces at phrase boundaries (see the module docstring)."""

    BOUNDARY = frozenset(".,?!;:")

    def __init__(self, max_chars: int = 120, min_chars: int = 1) -> None:
        if max_chars < 2 or not 1 <= min_chars <= max_chars:
            raise ValueError("need 1 <= min_chars <= max_chars and max_chars >= 2")
        self.max_chars = max_chars
        self.min_chars = min_chars
        self._buf = ""

    def feed(self, token: str) -> list[str]:
        """Add a token; returns the pieces now complete (possibly none)."""
        self._buf += token
        out: list[str] = []
        while True:
            cut = self._cut_point()
            if cut is None:
                return out
            out.append(self._buf[:cut])
            self._buf = self._buf[cut:]

    def _cut_point(self) -> int | None:
        buf = self._buf
        for i in range(self.min_chars, len(buf)):
            if buf[i - 1] in self.BOUNDARY and buf[i].isspace():
                return i if i <= self.max_chars else self._long_cut(buf)
        if len(buf) > self.max_chars:
            return self._long_cut(buf)
        return None

    def _long_cut(self, buf: str) -> int:
        space = buf.rfind(" ", 1, self.max_chars + 1)
        return space if space > 0 else self.max_chars

    def flush(self) -> str:
        """The rest of the reply (may be empty); the cutter is ready for the next one."""
        rest, self._buf = self._buf, ""
        return rest

    def reset(self) -> None:
        """Drop the buffered text (barge-in)."""
        self._buf = ""
