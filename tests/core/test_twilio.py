"""TwilioStream: every Media Streams message in and out, and every way a message can be wrong."""

from __future__ import annotations

import base64
import copy
import json
import types
from collections.abc import Callable
from typing import Any

import pytest

from hotline.core.events import Connected, Dtmf, MarkEcho, Media, MediaFormat, Start, Stop
from hotline.core.twilio import (
    StreamState,
    TwilioStream,
    clear_message,
    is_safe_stream_sid,
    mark_message,
    media_message,
    parse_message,
)
from hotline.errors import ProtocolError, TwilioProtocolError

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA00000000000000000000000000000001"
ACCOUNT = "AC00000000000000000000000000000002"
PHONE = "+15555550123"
FRAME = bytes(range(96, 256))  # 160 bytes, all distinct-ish µ-law codes
assert len(FRAME) == 160


# --------------------------------------------------------------------- message builders
# Shapes exactly as https://www.twilio.com/docs/voice/media-streams/websocket-messages


def connected() -> dict[str, Any]:
    return {"event": "connected", "protocol": "Call", "version": "1.0.0"}


def start(sid: str = SID, seq: str = "1") -> dict[str, Any]:
    return {
        "event": "start",
        "sequenceNumber": seq,
        "start": {
            "accountSid": ACCOUNT,
            "streamSid": sid,
            "callSid": CALL,
            "tracks": ["inbound"],
            "customParameters": {"token": "t0k3n", "From": PHONE},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": sid,
    }


def media(
    payload: bytes = FRAME, seq: str = "3", chunk: str = "1", ts: str = "5", sid: str = SID
) -> dict[str, Any]:
    return {
        "event": "media",
        "sequenceNumber": seq,
        "media": {
            "track": "inbound",
            "chunk": chunk,
            "timestamp": ts,
            "payload": base64.b64encode(payload).decode(),
        },
        "streamSid": sid,
    }


def dtmf(digit: str = "1", sid: str = SID) -> dict[str, Any]:
    return {
        "event": "dtmf",
        "streamSid": sid,
        "sequenceNumber": "5",
        "dtmf": {"track": "inbound_track", "digit": digit},
    }


def mark(name: str = "my label", sid: str = SID) -> dict[str, Any]:
    return {"event": "mark", "sequenceNumber": "4", "streamSid": sid, "mark": {"name": name}}


def stop(sid: str = SID) -> dict[str, Any]:
    return {
        "event": "stop",
        "sequenceNumber": "5",
        "stop": {"accountSid": ACCOUNT, "callSid": CALL},
        "streamSid": sid,
    }


def j(msg: object) -> str:
    return json.dumps(msg)


def started() -> TwilioStream:
    s = TwilioStream()
    s.receive_text(j(connected()))
    s.receive_text(j(start()))
    s.events_received()
    return s


def awaiting_start() -> TwilioStream:
    s = TwilioStream()
    s.receive_text(j(connected()))
    s.events_received()
    return s


def snapshot(s: TwilioStream) -> tuple[object, ...]:
    return (s.state, s.stream_sid, s.call_sid)


def assert_rejected(s: TwilioStream, text: Any, match: str | None = None) -> None:
    """The message raises TwilioProtocolError, changes nothing, and the stream still works."""
    before = snapshot(s)
    with pytest.raises(TwilioProtocolError, match=match):
        s.receive_text(text)
    assert snapshot(s) == before
    assert s.events_received() == []
    assert s.data_to_send() == []
    # The next valid message still works.
    if s.state is StreamState.STARTED:
        s.receive_text(j(media()))
        (ev,) = s.events_received()
        assert isinstance(ev, Media) and ev.payload == FRAME
    elif s.state is StreamState.AWAITING_CONNECTED:
        s.receive_text(j(connected()))
        assert s.events_received() == [Connected("Call", "1.0.0")]
    elif s.state is StreamState.AWAITING_START:
        s.receive_text(j(start()))
        assert isinstance(s.events_received()[0], Start)


# ---------------------------------------------------------------------------- inbound


def test_connected() -> None:
    s = TwilioStream()
    assert s.state is StreamState.AWAITING_CONNECTED
    s.receive_text(j(connected()))
    assert s.events_received() == [Connected(protocol="Call", version="1.0.0")]
    assert s.state is StreamState.AWAITING_START
    assert s.stream_sid is None
    assert s.data_to_send() == []  # connected is never acknowledged


def test_start() -> None:
    s = TwilioStream()
    s.receive_text(j(connected()))
    s.events_received()
    s.receive_text(j(start()))
    (ev,) = s.events_received()
    assert ev == Start(
        stream_sid=SID,
        call_sid=CALL,
        account_sid=ACCOUNT,
        tracks=("inbound",),
        custom_parameters={"token": "t0k3n", "From": PHONE},
        media_format=MediaFormat("audio/x-mulaw", 8000, 1),
        sequence_number=1,
    )
    assert isinstance(ev.custom_parameters, types.MappingProxyType)
    with pytest.raises(TypeError):
        ev.custom_parameters["token"] = "x"  # type: ignore[index]
    assert s.state is StreamState.STARTED
    assert s.stream_sid == SID and s.call_sid == CALL
    assert s.data_to_send() == []


def test_start_without_connected_is_accepted() -> None:
    s = TwilioStream()
    s.receive_text(j(start()))
    assert isinstance(s.events_received()[0], Start)
    assert s.state is StreamState.STARTED


def test_start_defaults_for_optional_fields() -> None:
    msg = start()
    del msg["start"]["customParameters"]
    del msg["start"]["tracks"]
    del msg["streamSid"]  # the sid inside start is the one that counts
    ev = parse_message(j(msg))
    assert isinstance(ev, Start)
    assert dict(ev.custom_parameters) == {} and ev.tracks == ("inbound",)
    msg["start"]["customParameters"] = None
    ev = parse_message(j(msg))
    assert isinstance(ev, Start) and dict(ev.custom_parameters) == {}


def test_media() -> None:
    s = started()
    s.receive_text(j(media(seq="3", chunk="1", ts="5")))
    assert s.events_received() == [Media(track="inbound", chunk=1, timestamp=5, payload=FRAME)]


def test_media_numbers_are_converted_from_strings() -> None:
    ev = parse_message(j(media(seq="123456", chunk="98765", ts="1234567890123")))
    assert isinstance(ev, Media)
    assert ev.chunk == 98765 and ev.timestamp == 1234567890123
    assert type(ev.chunk) is int and type(ev.timestamp) is int


def test_numbers_as_json_integers_are_accepted() -> None:
    msg = media()
    msg["sequenceNumber"] = 3
    msg["media"]["chunk"] = 7
    msg["media"]["timestamp"] = 140
    ev = parse_message(j(msg))
    assert isinstance(ev, Media) and (ev.chunk, ev.timestamp) == (7, 140)
    msg = start()
    msg["sequenceNumber"] = 1
    msg["start"]["mediaFormat"]["sampleRate"] = "8000"
    ev2 = parse_message(j(msg))
    assert isinstance(ev2, Start) and ev2.sequence_number == 1
    assert ev2.media_format.sample_rate == 8000


@pytest.mark.parametrize("size", [0, 1, 80, 159, 160, 161, 320, 4000])
def test_media_payload_any_length(size: int) -> None:
    payload = bytes((i * 7) % 256 for i in range(size))
    ev = parse_message(j(media(payload)))
    assert isinstance(ev, Media) and ev.payload == payload


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_dtmf(digit: str) -> None:
    s = started()
    s.receive_text(j(dtmf(digit)))
    assert s.events_received() == [Dtmf(digit=digit, track="inbound_track")]


def test_mark_echo() -> None:
    s = started()
    s.receive_text(j(mark("utt7-c12")))
    s.receive_text(j(mark('quote " and ünïcode ✓')))
    assert s.events_received() == [MarkEcho("utt7-c12"), MarkEcho('quote " and ünïcode ✓')]


def test_stop() -> None:
    s = started()
    s.receive_text(j(stop()))
    assert s.events_received() == [Stop(call_sid=CALL, account_sid=ACCOUNT)]
    assert s.state is StreamState.STOPPED


def test_events_keep_arrival_order_and_drain() -> None:
    s = TwilioStream()
    for msg in (connected(), start(), media(), dtmf(), mark(), stop()):
        s.receive_text(j(msg))
    kinds = [type(e) for e in s.events_received()]
    assert kinds == [Connected, Start, Media, Dtmf, MarkEcho, Stop]
    assert s.events_received() == []


def test_extra_inbound_keys_are_ignored() -> None:
    s = TwilioStream()
    msg = start()
    msg["start"]["newField"] = {"x": 1}
    msg["future"] = True
    s.receive_text(j(msg))
    m = media()
    m["media"]["extra"] = "y"
    m["extra"] = 1
    s.receive_text(j(m))
    assert [type(e) for e in s.events_received()] == [Start, Media]


def test_parse_message_is_stateless() -> None:
    assert isinstance(parse_message(j(media())), Media)  # no start needed
    assert parse_message(j(stop())) == Stop(CALL, ACCOUNT)


# --------------------------------------------------------------------------- outbound


def test_send_media_exact_shape() -> None:
    s = started()
    s.send_media(FRAME)
    (text,) = s.data_to_send()
    b64 = base64.b64encode(FRAME).decode()
    assert text == ('{"event":"media","streamSid":"' + SID + '","media":{"payload":"' + b64 + '"}}')
    parsed = json.loads(text)
    assert parsed == {"event": "media", "streamSid": SID, "media": {"payload": b64}}
    assert list(parsed) == ["event", "streamSid", "media"]
    assert list(parsed["media"]) == ["payload"]
    assert json.dumps(parsed, separators=(",", ":")) == text
    assert base64.b64decode(parsed["media"]["payload"]) == FRAME
    assert len(parsed["media"]["payload"]) == 216  # 160 µ-law bytes = 216 base64 chars


@pytest.mark.parametrize("data", [b"\xff", bytearray(b"\x00\x01\x02"), memoryview(FRAME * 3)])
def test_send_media_any_length_and_buffer_type(data: bytes | bytearray | memoryview) -> None:
    s = started()
    s.send_media(data)
    (text,) = s.data_to_send()
    assert base64.b64decode(json.loads(text)["media"]["payload"]) == bytes(data)
    assert text == media_message(SID, data)


def test_send_empty_media_sends_nothing() -> None:
    s = started()
    s.send_media(b"")
    assert s.data_to_send() == []


def test_send_mark_exact_shape() -> None:
    s = started()
    s.send_mark("utt7-c12")
    (text,) = s.data_to_send()
    assert text == '{"event":"mark","streamSid":"' + SID + '","mark":{"name":"utt7-c12"}}'
    parsed = json.loads(text)
    assert parsed == {"event": "mark", "streamSid": SID, "mark": {"name": "utt7-c12"}}
    assert json.dumps(parsed, separators=(",", ":")) == text


@pytest.mark.parametrize("name", ['a"b', "back\\slash", "new\nline", "ünïcode ✓", "</script>"])
def test_send_mark_escapes_name(name: str) -> None:
    s = started()
    s.send_mark(name)
    (text,) = s.data_to_send()
    parsed = json.loads(text)
    assert parsed == {"event": "mark", "streamSid": SID, "mark": {"name": name}}
    assert json.dumps(parsed, separators=(",", ":")) == text


def test_send_clear_exact_shape() -> None:
    s = started()
    s.send_clear()
    (text,) = s.data_to_send()
    assert text == '{"event":"clear","streamSid":"' + SID + '"}'
    assert json.loads(text) == {"event": "clear", "streamSid": SID}


def test_outbound_order_and_drain() -> None:
    s = started()
    s.send_media(b"\xff" * 160)
    s.send_mark("m1")
    s.send_clear()
    s.send_media(b"\x7f" * 160)
    events = [json.loads(t)["event"] for t in s.data_to_send()]
    assert events == ["media", "mark", "clear", "media"]
    assert s.data_to_send() == []


def test_only_media_mark_clear_are_ever_sent() -> None:
    s = TwilioStream()
    for msg in (connected(), start(), media(), dtmf(), mark(), stop()):
        s.receive_text(j(msg))
    assert s.data_to_send() == []


@pytest.mark.parametrize(
    "send",
    [
        lambda s: s.send_media(FRAME),
        lambda s: s.send_mark("m"),
        lambda s: s.send_clear(),
    ],
)
def test_sending_before_start_or_after_stop_raises(send: Callable[[TwilioStream], None]) -> None:
    s = TwilioStream()
    with pytest.raises(TwilioProtocolError, match="before start"):
        send(s)
    s.receive_text(j(connected()))
    with pytest.raises(TwilioProtocolError, match="before start"):
        send(s)
    s.receive_text(j(start()))
    send(s)
    assert len(s.data_to_send()) == 1
    s.receive_text(j(stop()))
    with pytest.raises(TwilioProtocolError, match="stopped"):
        send(s)
    assert s.data_to_send() == []


def test_empty_mark_name_raises() -> None:
    s = started()
    with pytest.raises(TwilioProtocolError):
        s.send_mark("")
    assert s.data_to_send() == []


def test_module_builders_match_stream_output() -> None:
    s = started()
    s.send_media(FRAME)
    s.send_mark("x")
    s.send_clear()
    assert s.data_to_send() == [
        media_message(SID, FRAME),
        mark_message(SID, "x"),
        clear_message(SID),
    ]


@pytest.mark.parametrize("sid", ["", 'MZ"1', "MZ 1", "MZ\\1", "MZ\u00e91", "MZ1\n"])
def test_builders_reject_unsafe_stream_sid(sid: str) -> None:
    assert not is_safe_stream_sid(sid)
    for build in (
        lambda: media_message(sid, FRAME),
        lambda: mark_message(sid, "m"),
        lambda: clear_message(sid),
    ):
        with pytest.raises(TwilioProtocolError):
            build()


# ---------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "not json",
        '{"event": "media",}',
        "{'event': 'media'}",
        "[" * 100_000,
        '{"event":"media","x":' + "1" * 5000 + "}",
    ],
    ids=["empty", "open-brace", "text", "trailing-comma", "single-quotes", "deep", "huge-int"],
)
def test_bad_json(text: str) -> None:
    assert_rejected(started(), text)
    assert_rejected(TwilioStream(), text)


@pytest.mark.parametrize("text", ["[]", '"media"', "1", "null", "true", '[{"event":"media"}]'])
def test_non_object_json(text: str) -> None:
    assert_rejected(started(), text, match="JSON object")


@pytest.mark.parametrize("event", ["closed", "Media", "MEDIA", "clear", "", "x" * 1000, PHONE])
def test_unknown_event(event: str) -> None:
    msg = media()
    msg["event"] = event
    assert_rejected(started(), j(msg), match="unknown event")
    with pytest.raises(TwilioProtocolError) as info:
        parse_message(j(msg))
    if event in ("closed", "Media", "MEDIA", "clear"):
        assert repr(event) in str(info.value)  # a plain name is shown, to help debugging
    else:
        assert event not in str(info.value) or not event


@pytest.mark.parametrize("event", [None, 1, ["media"], {"media": 1}])
def test_event_of_wrong_type(event: object) -> None:
    msg = media()
    msg["event"] = event
    assert_rejected(started(), j(msg))


def test_missing_event() -> None:
    msg = media()
    del msg["event"]
    assert_rejected(started(), j(msg), match="no 'event'")


@pytest.mark.parametrize("data", [b"", b"\x00\x01", FRAME, j(media()).encode()])
def test_binary_frames_are_rejected(data: bytes) -> None:
    for s in (TwilioStream(), started()):
        before = snapshot(s)
        with pytest.raises(TwilioProtocolError, match="binary"):
            s.receive_bytes(data)
        assert snapshot(s) == before and s.events_received() == []


def test_bytes_passed_as_text_are_rejected() -> None:
    assert_rejected(started(), j(media()).encode())


def _paths(msg: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in msg.items():
        out.append((*prefix, key))
        if isinstance(value, dict) and key not in ("customParameters",):
            out.extend(_paths(value, (*prefix, key)))
    return out


def _without(msg: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(msg)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def _replace(msg: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    out = copy.deepcopy(msg)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


# Fields a message may lack: Twilio always sends them, but we do not need them.
OPTIONAL = {
    ("start", "tracks"),
    ("start", "customParameters"),
    ("streamSid",),  # only for start (start.streamSid is authoritative); see below
}

CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "media": media,
    "dtmf": dtmf,
    "mark": mark,
    "stop": stop,
}


def _required_paths() -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for name, build in {**CASES, "start": start}.items():
        for path in _paths(build()):
            if path == ("event",):
                continue
            if name == "start" and (path in OPTIONAL):
                continue
            out.append((name, path))
    return out


@pytest.mark.parametrize(("name", "path"), _required_paths(), ids=lambda x: str(x))
def test_missing_field(name: str, path: tuple[str, ...]) -> None:
    msg = _without({**CASES, "start": start}[name](), path)
    if name == "start":
        assert_rejected(awaiting_start(), j(msg))
    else:
        assert_rejected(started(), j(msg))
    with pytest.raises(TwilioProtocolError):
        parse_message(j(msg))


def test_missing_connected_fields() -> None:
    for key in ("protocol", "version"):
        msg = connected()
        del msg[key]
        assert_rejected(TwilioStream(), j(msg))


WRONG_STRINGS: list[object] = [None, 1, 1.5, True, [], {}]
WRONG_NUMBERS: list[object] = [
    None,
    1.5,
    True,
    [],
    {},
    "",
    "1.5",
    "-1",
    "1e3",
    " 1",
    "0x1",
    "١",
    "²",
]
WRONG_NUMBERS += [-1, "9" * 20]
NUMBER_FIELDS = {
    ("sequenceNumber",),
    ("media", "chunk"),
    ("media", "timestamp"),
    ("start", "mediaFormat", "sampleRate"),
    ("start", "mediaFormat", "channels"),
}


def _wrong_type_cases() -> list[tuple[str, tuple[str, ...], object]]:
    out = []
    for name, build in {**CASES, "start": start}.items():
        msg = build()
        for path in _paths(msg):
            if path == ("event",):
                continue
            node: Any = msg
            for key in path:
                node = node[key]
            if path in NUMBER_FIELDS:
                wrong = WRONG_NUMBERS
            elif isinstance(node, dict):
                wrong = (
                    [None, 1, "x", [node]]
                    if path != ("start", "customParameters")
                    else [1, "x", []]
                )
            elif isinstance(node, list):
                wrong = ["inbound", [1], {"a": "b"}]
            else:
                wrong = WRONG_STRINGS
            if path == ("streamSid",) and name == "start":
                wrong = [1, [], "MZother"]  # a mismatch with start.streamSid
            out.extend((name, path, w) for w in wrong)
    return out


@pytest.mark.parametrize(("name", "path", "value"), _wrong_type_cases(), ids=lambda x: repr(x)[:30])
def test_wrong_type(name: str, path: tuple[str, ...], value: object) -> None:
    msg = _replace({**CASES, "start": start}[name](), path, value)
    if name == "start":
        assert_rejected(awaiting_start(), j(msg))
    else:
        assert_rejected(started(), j(msg))


def test_custom_parameter_values_must_be_strings() -> None:
    msg = start()
    msg["start"]["customParameters"]["n"] = 5
    assert_rejected(TwilioStream(), j(msg))


@pytest.mark.parametrize("payload", ["@@@@", "AAA", "A===", "AA=A", "AAAA\n", "AAAA AAAA", "ü"])
def test_invalid_base64_payload(payload: str) -> None:
    msg = media()
    msg["media"]["payload"] = payload
    assert_rejected(started(), j(msg), match="base64")


@pytest.mark.parametrize("digit", ["", "11", "E", "a", "x", " 1"])
def test_invalid_dtmf_digit(digit: str) -> None:
    assert_rejected(started(), j(dtmf(digit)), match="digit")


@pytest.mark.parametrize("build", [media, dtmf, mark, stop])
def test_stream_sid_mismatch(build: Callable[..., dict[str, Any]]) -> None:
    assert_rejected(started(), j(build(sid="MZ0000")), match="does not match")


@pytest.mark.parametrize("build", [media, dtmf, mark, stop])
def test_messages_before_start(build: Callable[[], dict[str, Any]]) -> None:
    s = TwilioStream()
    assert_rejected(s, j(build()), match="before start")
    assert_rejected(awaiting_start(), j(build()), match="before start")


def test_second_start() -> None:
    assert_rejected(started(), j(start()), match="second start")
    assert_rejected(started(), j(start(sid="MZother")), match="second start")


def test_connected_twice_or_after_start() -> None:
    assert_rejected(awaiting_start(), j(connected()), match="connected")
    assert_rejected(started(), j(connected()), match="connected")


@pytest.mark.parametrize("build", [connected, start, media, dtmf, mark, stop])
def test_events_after_stop(build: Callable[[], dict[str, Any]]) -> None:
    s = started()
    s.receive_text(j(stop()))
    s.events_received()
    for _ in range(2):
        with pytest.raises(TwilioProtocolError, match="after stop"):
            s.receive_text(j(build()))
        assert s.state is StreamState.STOPPED and s.events_received() == []


@pytest.mark.parametrize("sid", ["", "MZ 1", 'MZ"1', "MZ\\u0022", "MZ/1", "MZ\u00e9"])
def test_start_with_unsafe_stream_sid(sid: str) -> None:
    assert_rejected(TwilioStream(), j(start(sid=sid)), match="streamSid")


@pytest.mark.parametrize(
    ("key", "value"),
    [("encoding", "audio/l16"), ("sampleRate", 16000), ("channels", 2), ("sampleRate", "44100")],
)
def test_start_with_unsupported_media_format(key: str, value: object) -> None:
    msg = start()
    msg["start"]["mediaFormat"][key] = value
    assert_rejected(TwilioStream(), j(msg), match="mediaFormat")


def test_start_top_level_sid_must_match_inner() -> None:
    msg = start()
    msg["streamSid"] = "MZdifferent"
    assert_rejected(TwilioStream(), j(msg), match="differs")


def test_errors_never_echo_values() -> None:
    """A caller's number (in customParameters) or a payload never ends up in an error message."""
    msg = start()
    msg["start"]["mediaFormat"]["channels"] = 2
    with pytest.raises(TwilioProtocolError) as info:
        TwilioStream().receive_text(j(msg))
    assert PHONE not in str(info.value)
    msg = start()
    msg["start"]["callSid"] = PHONE  # wrong place, right type: accepted, never echoed
    msg["start"]["accountSid"] = [PHONE]
    with pytest.raises(TwilioProtocolError) as info:
        TwilioStream().receive_text(j(msg))
    assert PHONE not in str(info.value)
    m = media()
    m["media"]["payload"] = "%%" + PHONE
    with pytest.raises(TwilioProtocolError) as info:
        started().receive_text(j(m))
    assert PHONE not in str(info.value)


def test_protocol_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        parse_message("nope")
    assert issubclass(TwilioProtocolError, ProtocolError)


def test_a_run_of_bad_messages_loses_nothing_valid() -> None:
    s = TwilioStream()
    good = [connected(), start()] + [media(chunk=str(i), ts=str(20 * i)) for i in range(1, 6)]
    bad = ["{", "[]", j({"event": "nope"}), j(media(sid="MZx")), j(start())]
    received = 0
    for i, msg in enumerate(good):
        s.receive_text(j(msg))
        received += 1
        if i >= 2:  # after start, interleave garbage
            for b in bad:
                with pytest.raises(TwilioProtocolError):
                    s.receive_text(b)
            with pytest.raises(TwilioProtocolError):
                s.receive_bytes(b"\x00")
    events = s.events_received()
    assert len(events) == received
    assert [e.chunk for e in events if isinstance(e, Media)] == [1, 2, 3, 4, 5]
