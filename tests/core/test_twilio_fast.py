"""The compiled Twilio ``media`` fast path against the full parser (differential).

For any input string, :func:`hotline.codec.twilio_media_fast` either returns exactly what
``json.loads`` + :mod:`hotline.core.twilio`'s full parser would (same Media fields, same
``streamSid`` verdict) or defers (None). And a :class:`TwilioStream` with the fast path gives
the same events and the same errors as one without it.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.codec import twilio_media_fast, ulaw_frame_stats
from hotline.core import twilio as twilio_mod
from hotline.core.events import Media
from hotline.core.twilio import TwilioStream
from hotline.core.vad import Vad
from hotline.errors import TwilioProtocolError

DIFF = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SID = "MZ0123456789abcdef"
FRAME = bytes(range(0, 256, 2))[:160].ljust(160, b"\x7f")


def twilio_media(payload: bytes = FRAME, seq: int = 3, chunk: int = 1, ts: int = 5) -> str:
    """What Twilio sends (key order and compact separators per protocols.md §1.2)."""
    b64 = base64.b64encode(payload).decode()
    return (
        f'{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound",'
        f'"chunk":"{chunk}","timestamp":"{ts}","payload":"{b64}"}},"streamSid":"{SID}"}}'
    )


def full_parse(text: object, sid: str) -> tuple[str, int, int, bytes] | None:
    """The oracle: the full parser's verdict for a STARTED stream with *sid*.

    Returns the Media fields it would emit, or None if it would raise or emit something else.
    """
    try:
        ev, got_sid = twilio_mod._parse(twilio_mod._load(text))
    except TwilioProtocolError:
        return None
    if type(ev) is not Media or got_sid != sid:
        return None
    return (ev.track, ev.chunk, ev.timestamp, ev.payload)


def check(text: object, sid: str = SID) -> bool:
    """Assert the differential property; True if the fast path took the message."""
    fast = twilio_media_fast(text, sid)
    if fast is None:
        return False
    want = full_parse(text, sid)
    assert want is not None, "fast path accepted what the full parser rejects"
    track, chunk, ts, payload, rms, zcr = fast
    assert (track, chunk, ts, payload) == want
    assert type(track) is str and type(chunk) is int and type(ts) is int
    assert type(payload) is bytes
    assert (rms, zcr) == ulaw_frame_stats(payload)
    return True


# --------------------------------------------------------------------------- shapes it takes


def test_takes_twilios_own_shape() -> None:
    text = twilio_media()
    assert check(text)
    assert twilio_media_fast(text, SID)[:4] == ("inbound", 1, 5, FRAME)  # type: ignore[index]


def test_takes_other_key_orders_whitespace_and_integer_numbers() -> None:
    b64 = base64.b64encode(FRAME).decode()
    msg = {
        "streamSid": SID,
        "media": {"payload": b64, "timestamp": 5, "chunk": "1", "track": "inbound"},
        "event": "media",
        "sequenceNumber": 3,
    }
    assert check(json.dumps(msg))  # ", " and ": " separators
    assert check(json.dumps(msg, indent=2))
    assert check(" \r\n" + json.dumps(msg, separators=(",", ":")) + "\t")


@pytest.mark.parametrize("size", [0, 1, 2, 3, 159, 160, 161, 320])
def test_takes_any_payload_length(size: int) -> None:
    assert check(twilio_media(bytes(random.Random(size).randrange(256) for _ in range(size))))


def test_unusual_track_is_sliced_from_the_text() -> None:
    assert check(twilio_media().replace('"inbound"', '"outbound_track"'))


@pytest.mark.parametrize(
    "text",
    [
        twilio_media().replace('"chunk":"1"', '"chunk":"a1"'),  # full parser: error
        twilio_media().replace('"media":{', '"media":{"x":1,'),  # extra key: defer
        twilio_media().replace('"inbound"', '"in\\u0062ound"'),  # escape: defer
        twilio_media().replace('"inbound"', '"inbøund"'),  # non-ASCII: defer
        twilio_media().replace('"5"', "5.0"),  # float: full parser error
        twilio_media().replace('"5"', "05"),  # not JSON
        twilio_media().replace('"5"', '"12345678901234567890"'),  # 20 digits: error
        twilio_media().replace('"event":"media"', '"event":"mark"'),
        twilio_media().replace(SID, SID + "x"),  # another stream
        twilio_media().replace('"},', '"},"event":"media",'),  # duplicate key
        twilio_media()[:-1],
        twilio_media() + "x",
        twilio_media().replace("A", "-", 1),  # not base64
        twilio_media(b"a").replace("==", "=A"),
        twilio_media(b"a").replace("==", ""),  # missing padding: full parser error
    ],
)
def test_defers_on_anything_else(text: str) -> None:
    assert twilio_media_fast(text, SID) is None
    check(text)


def test_non_str_defers() -> None:
    assert twilio_media_fast(twilio_media().encode(), SID) is None
    assert twilio_media_fast(None, SID) is None


# ----------------------------------------------------------------------------- differential

_FIELD_VALUES = st.one_of(
    st.text(max_size=6),
    st.from_regex(r"[0-9]{0,21}", fullmatch=True),
    st.integers(min_value=-5, max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.just({}),
)
_PAYLOADS = st.one_of(
    st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
    st.from_regex(r"[A-Za-z0-9+/=]{0,12}", fullmatch=True),
    st.text(max_size=12),
)


@st.composite
def media_like(draw: Any) -> str:
    """A media message with random mutations: key order, values, missing/extra keys, format."""
    media: dict[str, Any] = {
        "track": draw(st.sampled_from(["inbound", "outbound", "", "x y"])),
        "chunk": draw(st.sampled_from(["1", 1, "0042"])),
        "timestamp": draw(st.sampled_from(["5", 5, "9999999999999999999"])),
        "payload": draw(_PAYLOADS),
    }
    msg: dict[str, Any] = {
        "event": "media",
        "sequenceNumber": draw(st.sampled_from(["3", 3, "0"])),
        "media": media,
        "streamSid": draw(st.sampled_from([SID, SID[:-1], "other"])),
    }
    for target in (msg, media):
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            keys = sorted(target)
            if action == "replace" and keys:
                target[draw(st.sampled_from(keys))] = draw(_FIELD_VALUES)
            elif action == "delete" and keys:
                del target[draw(st.sampled_from(keys))]
            elif action == "add":
                target[draw(st.sampled_from(["extra", "event", "media", "track"]))] = draw(
                    _FIELD_VALUES
                )
    if draw(st.booleans()):
        items = list(msg.items())
        draw(st.randoms()).shuffle(items)
        msg = dict(items)
    seps = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :\n")]))
    text = json.dumps(msg, separators=seps, ensure_ascii=draw(st.booleans()))
    # character-level damage
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        op = draw(st.sampled_from(["delete", "insert", "replace"]))
        ch = draw(st.sampled_from(list('"{}[],:\\ 0a=+/\x00\x7fé')))
        if op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "insert":
            text = text[:i] + ch + text[i:]
        else:
            text = text[:i] + ch + text[i + 1 :]
    return text


@DIFF
@given(media_like())
def test_differential_mutated_media(text: str) -> None:
    check(text)


_NUM_TOKENS = [
    '"3"',
    "3",
    "0",
    '"0"',
    '"03"',
    "03",
    "-0",
    "-3",
    "1e2",
    "1.0",
    '"\u0663"',
    '"+1"',
    '"1 "',
    '""',
    "99999999999999999999",
    "9999999999999999999",
    '"9999999999999999999"',
    '"10000000000000000000"',
    "true",
    "null",
    '["1"]',
]
_STR_TOKENS = [
    '"inbound"',
    '""',
    '"in\\u0062ound"',
    '"a\\"b"',
    '"\u00e9"',
    "1",
    "null",
    '{"a":1}',
]
_WS = ["", " ", "\n", "\t", "\r\n "]


@st.composite
def raw_media(draw: Any) -> str:
    """Media text built token by token with (at most) one fault: a field's value replaced by a
    raw token (number literals, escapes, wrong types) or a duplicate key; any spacing."""
    b64 = draw(_PAYLOADS)
    payload_tokens = ['"' + b64.replace("/", "\\/") + '"', "1", "null", '"' + b64 + ' "']
    fault = draw(
        st.sampled_from(
            [None, "track", "chunk", "timestamp", "payload", "event", "sequenceNumber",
             "streamSid", "dup_top", "dup_media"]
        )
    )  # fmt: skip
    bad: dict[str, list[str]] = {
        "track": _STR_TOKENS,
        "chunk": _NUM_TOKENS,
        "timestamp": _NUM_TOKENS,
        "sequenceNumber": _NUM_TOKENS,
        "payload": payload_tokens,
        "event": ['"mark"', '"Media"', '"media "', "1"],
        "streamSid": ['"other"', '"MZ"', "null"],
    }

    def ws() -> str:
        return str(draw(st.sampled_from(_WS)))

    def value(key: str, good: str) -> str:
        return str(draw(st.sampled_from(bad[key]))) if fault == key else good

    def obj(pairs: list[tuple[str, str]], dup: bool) -> str:
        if draw(st.booleans()):
            draw(st.randoms()).shuffle(pairs)
        if dup:
            k = draw(st.sampled_from([k for k, _ in pairs]))
            v = draw(st.sampled_from([v for _, v in pairs]))
            pairs.insert(draw(st.integers(0, len(pairs))), (k, v))
        inner = ",".join(f'{ws()}"{k}"{ws()}:{ws()}{v}{ws()}' for k, v in pairs)
        return "{" + inner + "}"

    media = obj(
        [
            ("track", value("track", '"inbound"')),
            ("chunk", value("chunk", '"1"')),
            ("timestamp", value("timestamp", "20")),
            ("payload", value("payload", '"' + b64 + '"')),
        ],
        fault == "dup_media",
    )
    top = [
        ("event", value("event", '"media"')),
        ("sequenceNumber", value("sequenceNumber", '"2"')),
        ("media", media),
        ("streamSid", value("streamSid", f'"{SID}"')),
    ]
    return ws() + obj(top, fault == "dup_top") + ws()


@DIFF
@given(raw_media())
def test_differential_raw_tokens(text: str) -> None:
    check(text)


@DIFF
@given(st.text(max_size=300))
def test_differential_arbitrary_text(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 10**19 - 1), st.integers(0, 10**19 - 1))
def test_valid_messages_always_take_the_fast_path(payload: bytes, chunk: int, ts: int) -> None:
    assert check(twilio_media(payload, chunk=chunk, ts=ts))


# -------------------------------------------------------------------- through TwilioStream


def _stream_run(texts: list[str], fast: bool) -> list[Any]:
    with pytest.MonkeyPatch.context() as m:
        if not fast:
            m.setattr(twilio_mod, "_media_fast", lambda text, sid: None)
        s = TwilioStream()
        out: list[Any] = []
        for text in texts:
            try:
                s.receive_text(text)
            except TwilioProtocolError as exc:
                out.append(("error", str(exc)))
            out.extend(s.events_received())
        out.append(s.state)
        return out


START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC1",
            "streamSid": SID,
            "callSid": "CA1",
            "tracks": ["inbound"],
            "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": SID,
    }
)
STOP = json.dumps(
    {
        "event": "stop",
        "sequenceNumber": "9",
        "stop": {"accountSid": "AC1", "callSid": "CA1"},
        "streamSid": SID,
    }
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(media_like(), st.just(START), st.just(STOP)), max_size=8))
def test_stream_same_events_and_errors(texts: list[str]) -> None:
    texts = [twilio_media(), START, *texts, twilio_media(), STOP, twilio_media()]
    with_fast = _stream_run(texts, True)
    assert with_fast == _stream_run(texts, False)
    # and the events really are equal field by field, frame_stats aside
    assert [repr(e) for e in with_fast] == [repr(e) for e in _stream_run(texts, False)]


def test_stream_media_carries_frame_stats_and_vad_uses_them() -> None:
    s = TwilioStream()
    s.receive_text(START)
    s.receive_text(twilio_media())
    (_start, media) = s.events_received()
    assert isinstance(media, Media)
    assert media.frame_stats == ulaw_frame_stats(FRAME)
    assert media == Media("inbound", 1, 5, FRAME)  # frame_stats is not part of equality

    seen: list[bytes] = []

    def oracle(ulaw: bytes) -> tuple[float, float]:
        seen.append(ulaw)
        return ulaw_frame_stats(ulaw)

    Vad(frame_stats=oracle).process(media)
    assert seen == [FRAME]  # an injected statistic is always called, never bypassed
    Vad().process(Media("inbound", 1, 5, b"\xff" * 160, (0.0, 0.0)))  # cached stats path runs
    loud = Vad()
    for i in range(20):
        loud.process(Media("inbound", i, i * 20, b"\xff" * 160, (-10.0, 0.1)))
    assert loud.in_speech  # the cached statistic decided (the payload itself is silence)
