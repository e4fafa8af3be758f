"""Fuzz: whatever text arrives, the protocol objects raise only ProtocolError subclasses.

Three generators per protocol: arbitrary text, arbitrary JSON built from the protocol's own
key names (so parsing gets past the first checks), and valid messages with one field
replaced or deleted. Every event that does come out must have the declared field types.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.core.elevenlabs import ElevenLabsMultiStream, ElevenLabsStream
from hotline.core.events import (
    Alignment,
    Connected,
    Dtmf,
    MarkEcho,
    Media,
    Start,
    Stop,
    TTSAudio,
    TTSFailure,
    TTSFinal,
)
from hotline.core.twilio import TwilioStream
from hotline.errors import ElevenLabsProtocolError, TwilioProtocolError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SID = "MZ0123456789abcdef"
TWILIO_KEYS = [
    "event", "streamSid", "sequenceNumber", "media", "track", "chunk", "timestamp", "payload",
    "start", "accountSid", "callSid", "tracks", "customParameters", "mediaFormat", "encoding",
    "sampleRate", "channels", "dtmf", "digit", "mark", "name", "stop", "protocol", "version",
]  # fmt: skip
TWILIO_WORDS = [
    "connected", "start", "media", "dtmf", "mark", "stop", "clear", "inbound", SID, "MZother",
    "audio/x-mulaw", "1", "8000", "-1", "", "/w==", "@@", "Call", "1.0.0",
]  # fmt: skip
EL_KEYS = [
    "audio", "isFinal", "is_final", "alignment", "normalizedAlignment", "chars",
    "charStartTimesMs", "charsDurationsMs", "charDurationsMs", "error", "message", "code",
    "contextId", "context_id",
]  # fmt: skip
EL_WORDS = ["a", "ctx", "", "AAAA", "!!", "input_timeout_exceeded"]

b64_text = st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | b64_text
)


def json_values(keys: list[str], words: list[str]) -> st.SearchStrategy[Any]:
    leaves = scalars | st.sampled_from(words)
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), children, max_size=6)
        ),
        max_leaves=25,
    )


def twilio_valid() -> list[dict[str, Any]]:
    return [
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC1",
                "streamSid": SID,
                "callSid": "CA1",
                "tracks": ["inbound"],
                "customParameters": {"k": "v"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": SID,
        },
        {
            "event": "media",
            "sequenceNumber": "3",
            "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "/w=="},
            "streamSid": SID,
        },
        {
            "event": "dtmf",
            "streamSid": SID,
            "sequenceNumber": "5",
            "dtmf": {"track": "inbound_track", "digit": "1"},
        },
        {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "m"}},
        {
            "event": "stop",
            "sequenceNumber": "5",
            "stop": {"accountSid": "AC1", "callSid": "CA1"},
            "streamSid": SID,
        },
    ]


def el_valid() -> list[dict[str, Any]]:
    al = {"chars": ["a"], "charStartTimesMs": [0], "charsDurationsMs": [10]}
    return [
        {
            "audio": "AAAA",
            "isFinal": False,
            "alignment": al,
            "normalizedAlignment": al,
            "contextId": "a",
        },
        {"isFinal": True, "contextId": "a"},
        {"error": "input_timeout_exceeded", "message": "m", "code": 1008, "contextId": "a"},
    ]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out.extend(_paths(v, (*prefix, i)))
    return out


@st.composite
def mutated(draw: st.DrawFn, valid: list[dict[str, Any]], values: st.SearchStrategy[Any]) -> str:
    msg = copy.deepcopy(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(msg)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = msg
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            parent[path[-1]] = draw(values)
        else:
            del parent[path[-1]]
    return json.dumps(msg)


twilio_json = json_values(TWILIO_KEYS, TWILIO_WORDS)
el_json = json_values(EL_KEYS, EL_WORDS)
twilio_texts = (
    st.text(max_size=200)
    | twilio_json.map(json.dumps)
    | mutated(twilio_valid(), twilio_json)
    | st.sampled_from([json.dumps(m) for m in twilio_valid()])
)
el_texts = (
    st.text(max_size=200)
    | el_json.map(json.dumps)
    | mutated(el_valid(), el_json)
    | st.sampled_from([json.dumps(m) for m in el_valid()])
)


def _check_twilio_event(ev: object) -> None:
    if isinstance(ev, Media):
        assert type(ev.payload) is bytes and type(ev.chunk) is int and type(ev.timestamp) is int
        assert type(ev.track) is str
    elif isinstance(ev, Start):
        assert ev.stream_sid == SID and type(ev.sequence_number) is int
        assert all(type(k) is str and type(v) is str for k, v in ev.custom_parameters.items())
    elif isinstance(ev, Dtmf):
        assert ev.digit in "0123456789*#ABCD" and len(ev.digit) == 1
    elif isinstance(ev, (MarkEcho, Stop, Connected)):
        pass
    else:
        raise AssertionError(f"unexpected event {ev!r}")


def _check_tts_event(ev: object) -> None:
    if isinstance(ev, TTSAudio):
        assert type(ev.data) is bytes and ev.data
        for al in (ev.alignment, ev.normalized_alignment):
            if al is not None:
                assert isinstance(al, Alignment)
                assert all(type(c) is str for c in al.chars)
                assert all(type(t) is int for t in al.char_start_times_ms + al.char_durations_ms)
    elif isinstance(ev, TTSFailure):
        assert type(ev.error) is str and type(ev.message) is str
        assert ev.code is None or type(ev.code) is int
    else:
        assert isinstance(ev, TTSFinal)


def _twilio_streams() -> list[TwilioStream]:
    fresh = TwilioStream()
    waiting = TwilioStream()
    waiting.receive_text(json.dumps(twilio_valid()[0]))
    started = TwilioStream()
    started.receive_text(json.dumps(twilio_valid()[1]))
    stopped = TwilioStream()
    stopped.receive_text(json.dumps(twilio_valid()[1]))
    stopped.receive_text(json.dumps(twilio_valid()[5]))
    for s in (waiting, started, stopped):
        s.events_received()
    return [fresh, waiting, started, stopped]


@FUZZ
@given(texts=st.lists(twilio_texts, min_size=1, max_size=8))
def test_twilio_stream_raises_only_protocol_errors(texts: list[str]) -> None:
    for stream in _twilio_streams():
        for text in texts:
            try:
                stream.receive_text(text)
            except TwilioProtocolError:
                pass
        for ev in stream.events_received():
            _check_twilio_event(ev)
        # Whatever happened, sending is either allowed or refused cleanly.
        try:
            stream.send_media(b"\xff" * 160)
            stream.send_mark("m")
            stream.send_clear()
        except TwilioProtocolError:
            pass
        for out in stream.data_to_send():
            assert set(json.loads(out)) <= {"event", "streamSid", "media", "mark"}


@FUZZ
@given(data=st.binary(max_size=64))
def test_twilio_binary_frames(data: bytes) -> None:
    for stream in _twilio_streams():
        try:
            stream.receive_bytes(data)
        except TwilioProtocolError:
            continue
        raise AssertionError("a binary frame was accepted")


def _el_streams() -> list[ElevenLabsStream]:
    idle = ElevenLabsStream()
    opened = ElevenLabsStream()
    opened.send_init()
    ended = ElevenLabsStream()
    ended.send_init()
    ended.send_end()
    return [idle, opened, ended]


@FUZZ
@given(texts=st.lists(el_texts, min_size=1, max_size=8))
def test_elevenlabs_stream_raises_only_protocol_errors(texts: list[str]) -> None:
    for stream in _el_streams():
        for text in texts:
            try:
                stream.receive_text(text)
            except ElevenLabsProtocolError:
                pass
        for ev in stream.events_received():
            _check_tts_event(ev)


@FUZZ
@given(texts=st.lists(el_texts, min_size=1, max_size=8))
def test_elevenlabs_multi_stream_raises_only_protocol_errors(texts: list[str]) -> None:
    m = ElevenLabsMultiStream()
    m.open_context("a")
    m.open_context("ctx")
    for text in texts:
        try:
            m.receive_text(text)
        except ElevenLabsProtocolError:
            pass
    for ev in m.events_received():
        _check_tts_event(ev)
        if not isinstance(ev, TTSFailure):
            assert ev.context_id in ("a", "ctx")
    assert len(m.live_contexts) <= 2


@FUZZ
@given(text=st.text(max_size=100), context=st.text(max_size=10))
def test_elevenlabs_sending_arbitrary_text(text: str, context: str) -> None:
    s = ElevenLabsStream()
    s.send_init()
    try:
        s.send_text(text)
    except ElevenLabsProtocolError:
        assert not text.strip()
    m = ElevenLabsMultiStream()
    try:
        m.open_context(context)
        m.send_text(context, text, flush=True)
    except ElevenLabsProtocolError:
        assert not context or not text.strip()
    for out in s.data_to_send() + m.data_to_send():
        msg = json.loads(out)
        out.encode("utf-8")
        if "text" in msg and msg["text"].strip():
            assert msg["text"].endswith(" ") and msg["text"].rstrip(" ") == text.rstrip(" ")
