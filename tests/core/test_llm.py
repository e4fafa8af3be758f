"""The LLM brain's sans-I/O parts: history, request, chunk parsing, phrase cutting."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.llm import (
    END_CALL_TOOL,
    ChunkParser,
    ContentDelta,
    Conversation,
    Finished,
    PhraseCutter,
    ToolCall,
    Usage,
    build_request,
)
from hotline.core.script import LlmSettings
from hotline.errors import LlmProtocolError


def chunk(delta: object = None, finish: str | None = None, **extra: object) -> dict[str, object]:
    out: dict[str, object] = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        "usage": None,
    }
    out.update(extra)
    return out


# ----------------------------------------------------------------------------- history


def test_history_is_bounded_and_keeps_the_system_prompt() -> None:
    conv = Conversation("You are Wren's hotline.", max_turns=2)
    for n in range(4):
        conv.add_user(f"q{n}")
        conv.add_reply(f"a{n}")
    assert conv.messages() == [
        {"role": "system", "content": "You are Wren's hotline."},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "q3"},
        {"role": "assistant", "content": "a3"},
    ]


def test_interrupted_reply_keeps_only_what_was_heard() -> None:
    conv = Conversation("sys", max_turns=4)
    conv.add_user("tell me about the tour")
    conv.add_reply("We play Portland, Seattle, and Vancouver.")
    conv.interrupted("We play Portland,")
    assert conv.messages()[-1] == {"role": "assistant", "content": "We play Portland,"}
    conv.add_user("and merch?")
    conv.add_reply("Shirts.")
    conv.interrupted("")  # nothing heard: the reply is dropped
    assert conv.messages()[-1] == {"role": "user", "content": "and merch?"}


def test_messages_are_copies() -> None:
    conv = Conversation("sys", 1)
    conv.add_user("x")
    conv.messages()[1]["content"] = "changed"
    assert conv.messages()[1]["content"] == "x"
    with pytest.raises(ValueError):
        Conversation("sys", 0)
    with pytest.raises(ValueError):
        Conversation("sys", 1).add_reply("no turn")


def test_build_request() -> None:
    s = LlmSettings(max_reply_tokens=42, temperature=0.3)
    body = build_request([{"role": "user", "content": "hi"}], model="m", settings=s)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 42 and "max_tokens" not in body
    assert body["temperature"] == 0.3 and body["model"] == "m"
    assert body["tools"] == [END_CALL_TOOL] and body["tool_choice"] == "auto"
    assert END_CALL_TOOL["function"]["name"] == "end_call"
    legacy = build_request([], model="m", settings=s, legacy_max_tokens=True, tools=False)
    assert legacy["max_tokens"] == 42 and "max_completion_tokens" not in legacy
    assert "tools" not in legacy
    json.dumps(body)  # serialisable as is


# ----------------------------------------------------------------------------- chunk parser


def test_content_finish_usage() -> None:
    p = ChunkParser()
    assert p.feed(chunk({"role": "assistant", "content": ""})) == []
    assert p.feed(chunk({"content": "Hel"})) == [ContentDelta("Hel")]
    assert p.feed(chunk({"role": "assistant", "content": "lo"})) == [ContentDelta("lo")]
    assert p.feed(chunk({}, "stop")) == [Finished("stop")]
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    assert p.feed({"id": "c1", "choices": [], "usage": usage}) == [Usage(9, 2)]
    assert p.feed({"id": "c1", "choices": None, "usage": usage}) == [Usage(9, 2)]  # vLLM
    p.end()


def test_unknown_delta_keys_are_ignored() -> None:
    p = ChunkParser()
    delta = {"reasoning": "hmm", "reasoning_content": "x", "obfuscation": "abc", "content": "A"}
    assert p.feed(chunk(delta)) == [ContentDelta("A")]
    assert p.feed(chunk(None)) == []
    assert p.feed({"choices": [{"index": 0, "delta": None, "finish_reason": None}]}) == []


def test_fragmented_tool_call_keyed_by_index() -> None:
    p = ChunkParser()
    first = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "end_call", "arguments": ""},
    }
    p.feed(chunk({"tool_calls": [first]}))
    for piece in ['{"good', 'bye": "Bye', ' now!"}']:
        assert p.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})) == []
    assert p.feed(chunk({}, "tool_calls")) == [
        ToolCall(0, "call_1", "end_call", {"goodbye": "Bye now!"}),
        Finished("tool_calls"),
    ]


def test_whole_tool_call_with_content_and_two_indices() -> None:
    p = ChunkParser()
    whole = [
        {"index": 1, "id": "b", "function": {"name": "other", "arguments": "{}"}},
        {"index": 0, "id": "a", "function": {"name": "end_call", "arguments": '{"goodbye":"Bye"}'}},
    ]
    events = p.feed(
        chunk({"role": "assistant", "content": "Sure.", "tool_calls": whole}, "tool_calls")
    )
    assert events == [
        ContentDelta("Sure."),
        ToolCall(0, "a", "end_call", {"goodbye": "Bye"}),
        ToolCall(1, "b", "other", {}),
        Finished("tool_calls"),
    ]


def test_tool_call_with_bad_arguments_gets_empty_arguments() -> None:
    p = ChunkParser()
    p.feed(
        chunk({"tool_calls": [{"index": 0, "function": {"name": "end_call", "arguments": "{not"}}]})
    )
    assert p.feed(chunk({}, "tool_calls"))[0] == ToolCall(0, None, "end_call", {})


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "x",
        {"error": {"message": "overloaded"}},
        {"choices": {}},
        {"choices": ["x"]},
        {"choices": [{"delta": []}]},
        {"choices": [{"delta": {"content": 5}}]},
        {"choices": [{"delta": {"tool_calls": {}}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": -1}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": True}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 3}}]}}]},
        {"choices": [{"delta": {}, "finish_reason": 7}]},
    ],
)
def test_malformed_chunks_raise_protocol_error(bad: object) -> None:
    with pytest.raises(LlmProtocolError):
        ChunkParser().feed(bad)


def test_stream_without_finish_is_an_error() -> None:
    p = ChunkParser()
    p.feed(chunk({"content": "Half a"}))
    with pytest.raises(LlmProtocolError, match="before the reply finished"):
        p.end()


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "choices",
                        "delta",
                        "content",
                        "tool_calls",
                        "index",
                        "function",
                        "arguments",
                        "name",
                        "finish_reason",
                        "usage",
                        "error",
                        "id",
                    ]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_fuzz_parser_raises_only_protocol_errors(obj: object) -> None:
    p = ChunkParser()
    try:
        p.feed(obj)
    except LlmProtocolError:
        pass


# ----------------------------------------------------------------------------- phrase cutter


def test_cuts_at_phrase_boundaries_untrimmed() -> None:
    c = PhraseCutter(max_chars=60)
    tokens = ["We", " play", " Portland", ",", " Seattle", ".", " It", "'s", " 3.5", " hours", "!"]
    pieces = [p for t in tokens for p in c.feed(t)] + [c.flush()]
    assert pieces == ["We play Portland,", " Seattle.", " It's 3.5 hours!"]


def test_long_text_cut_at_a_space() -> None:
    c = PhraseCutter(max_chars=20)
    pieces = [*c.feed("one two three four five six seven eight"), c.flush()]
    assert all(len(p) <= 20 for p in pieces)
    assert "".join(pieces) == "one two three four five six seven eight"
    c2 = PhraseCutter(max_chars=5)
    assert c2.feed("abcdefghijkl") == ["abcde", "fghij"]
    assert c2.flush() == "kl"
    c2.feed("x")
    c2.reset()
    assert c2.flush() == ""
    with pytest.raises(ValueError):
        PhraseCutter(max_chars=1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=" ab.,?!;:\n3", max_size=12), max_size=30), st.integers(2, 40))
def test_cutter_loses_nothing(tokens: list[str], max_chars: int) -> None:
    c = PhraseCutter(max_chars=max_chars)
    pieces = [p for t in tokens for p in c.feed(t)]
    assert all(0 < len(p) <= max_chars for p in pieces)
    assert "".join(pieces) + c.flush() == "".join(tokens)
