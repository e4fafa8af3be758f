"""ElevenLabs stream-input / multi-stream-input: every message in and out, and malformed input."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from hotline.core.elevenlabs import (
    MAX_CONTEXTS,
    ElevenLabsMultiStream,
    ElevenLabsStream,
    TTSState,
    parse_message,
    stream_input_url,
)
from hotline.core.events import Alignment, TTSAudio, TTSFailure, TTSFinal
from hotline.errors import ConfigError, ElevenLabsProtocolError, ProtocolError

AUDIO = bytes(range(256)) * 3 + b"\x01"  # odd length, every byte value
B64 = base64.b64encode(AUDIO).decode()
VOICE = {
    "stability": 0.5,
    "similarity_boost": 0.8,
    "style": 0.0,
    "use_speaker_boost": True,
    "speed": 1.0,
}
GEN = {"chunk_length_schedule": [120, 160, 250, 290]}

ALIGN = {
    "chars": ["H", "i", " "],
    "charStartTimesMs": [0, 70, 140],
    "charsDurationsMs": [70, 70, 30],
}
ALIGN_OTHER_SPELLING = {
    "chars": ["H", "i"],
    "charStartTimesMs": [0, 70],
    "charDurationsMs": [70, 60],
}


def j(msg: object) -> str:
    return json.dumps(msg)


def opened(**kwargs: Any) -> ElevenLabsStream:
    s = ElevenLabsStream(**kwargs)
    s.send_init()
    s.data_to_send()
    return s


def sent(s: ElevenLabsStream | ElevenLabsMultiStream) -> list[Any]:
    """Drain and parse, checking every frame is compact JSON."""
    out = []
    for text in s.data_to_send():
        parsed = json.loads(text)
        assert json.dumps(parsed, separators=(",", ":")) == text
        out.append(parsed)
    return out


# ------------------------------------------------------------------------------- URLs


def test_stream_input_url() -> None:
    url = stream_input_url(
        "wss://api.elevenlabs.io",
        "21m00Tcm4TlvDq8ikWAM",
        model_id="eleven_flash_v2_5",
        output_format="ulaw_8000",
    )
    assert url == (
        "wss://api.elevenlabs.io/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/stream-input"
        "?model_id=eleven_flash_v2_5&output_format=ulaw_8000"
    )


def test_multi_stream_input_url_with_options() -> None:
    url = stream_input_url(
        "ws://127.0.0.1:8765/",
        "voice/with space",
        multi=True,
        model_id="m",
        output_format="mp3_44100_128",
        inactivity_timeout=60,
        extra={"sync_alignment": "true", "auto_mode": "false"},
    )
    assert url == (
        "ws://127.0.0.1:8765/v1/text-to-speech/voice%2Fwith%20space/multi-stream-input"
        "?model_id=m&output_format=mp3_44100_128&inactivity_timeout=60"
        "&sync_alignment=true&auto_mode=false"
    )


def test_url_keeps_a_base_path() -> None:
    url = stream_input_url("wss://proxy.example/el", "v", model_id="m", output_format="pcm_16000")
    assert url.startswith("wss://proxy.example/el/v1/text-to-speech/v/stream-input?")


@pytest.mark.parametrize(
    ("base", "kwargs"),
    [
        ("https://api.elevenlabs.io", {}),
        ("api.elevenlabs.io", {}),
        ("wss://", {}),
        ("wss://h?x=1", {}),
        ("wss://h", {"model_id": ""}),
        ("wss://h", {"output_format": ""}),
        ("wss://h", {"inactivity_timeout": 0}),
        ("wss://h", {"inactivity_timeout": 181}),
        ("wss://h", {"inactivity_timeout": True}),
        ("wss://h", {"extra": {"model_id": "x"}}),
    ],
)
def test_url_rejects_bad_configuration(base: str, kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"model_id": "m", "output_format": "ulaw_8000", **kwargs}
    with pytest.raises(ConfigError):
        stream_input_url(base, "voice", **args)
    with pytest.raises(ConfigError):
        stream_input_url(base, "voice", multi=True, **args)


def test_url_rejects_empty_voice() -> None:
    with pytest.raises(ConfigError):
        stream_input_url("wss://h", "", model_id="m", output_format="ulaw_8000")


# ----------------------------------------------------------------- stream-input: send


def test_init_message_minimal() -> None:
    s = ElevenLabsStream()
    assert s.state is TTSState.IDLE
    s.send_init()
    assert s.data_to_send() == ['{"text":" "}']
    assert s.state is TTSState.OPEN


def test_init_message_with_settings() -> None:
    s = ElevenLabsStream(voice_settings=VOICE, generation_config=GEN)
    s.send_init()
    (text,) = s.data_to_send()
    assert json.loads(text) == {"text": " ", "voice_settings": VOICE, "generation_config": GEN}
    assert list(json.loads(text)) == ["text", "voice_settings", "generation_config"]
    assert text.startswith('{"text":" ","voice_settings":{"stability":0.5,')


def test_init_only_once() -> None:
    s = opened()
    with pytest.raises(ElevenLabsProtocolError, match="first message"):
        s.send_init()
    assert s.data_to_send() == []


def test_settings_must_be_json() -> None:
    with pytest.raises(ConfigError):
        ElevenLabsStream(voice_settings={"speed": object()})
    with pytest.raises(ConfigError):
        ElevenLabsMultiStream(generation_config={"x": float("nan")})


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("Hello there.", "Hello there. "),
        ("Hello there. ", "Hello there. "),
        ("Hi", "Hi "),
        ("  spaced", "  spaced "),
        ("Zoë said “hi”", "Zoë said “hi” "),
        ("tab\t", "tab\t "),
        ("a\nb", "a\nb "),
    ],
)
def test_text_gets_exactly_one_trailing_space(text: str, wire: str) -> None:
    s = opened()
    s.send_text(text)
    assert sent(s) == [{"text": wire}]


def test_text_flags() -> None:
    s = opened()
    s.send_text("One.", flush=True)
    s.send_text("Two.", try_trigger_generation=True)
    s.send_text("Three.", flush=True, try_trigger_generation=True)
    assert s.data_to_send() == [
        '{"text":"One. ","flush":true}',
        '{"text":"Two. ","try_trigger_generation":true}',
        '{"text":"Three. ","try_trigger_generation":true,"flush":true}',
    ]


def test_text_with_lone_surrogate_is_escaped() -> None:
    s = opened()
    s.send_text("bad \ud800 char")
    (text,) = s.data_to_send()
    assert text.isascii()
    text.encode("utf-8")  # sendable


def test_flush_keepalive_end_exact() -> None:
    s = opened()
    s.send_flush()
    s.send_keepalive()
    s.send_end()
    assert s.data_to_send() == ['{"text":" ","flush":true}', '{"text":" "}', '{"text":""}']
    assert s.state is TTSState.ENDED


@pytest.mark.parametrize("text", ["", " ", "   ", "\n"])
def test_blank_text_is_refused(text: str) -> None:
    """A blank text would be a keep-alive, and an empty one would end the stream."""
    s = opened()
    with pytest.raises(ElevenLabsProtocolError, match="empty"):
        s.send_text(text)
    assert s.data_to_send() == []
    assert s.state is TTSState.OPEN


def test_non_string_text_is_refused() -> None:
    s = opened()
    with pytest.raises(ElevenLabsProtocolError):
        s.send_text(5)  # type: ignore[arg-type]


def test_sending_before_init_and_after_end() -> None:
    s = ElevenLabsStream()
    for send in (lambda: s.send_text("x"), s.send_flush, s.send_keepalive, s.send_end):
        with pytest.raises(ElevenLabsProtocolError, match="send_init"):
            send()
    s.send_init()
    s.send_end()
    for send in (lambda: s.send_text("x"), s.send_flush, s.send_keepalive, s.send_end, s.send_init):
        with pytest.raises(ElevenLabsProtocolError):
            send()
    assert s.data_to_send() == ['{"text":" "}', '{"text":""}']


def test_full_utterance_message_sequence() -> None:
    s = ElevenLabsStream(voice_settings={"speed": 1.1})
    s.send_init()
    s.send_text("Press 1 for tour dates.")
    s.send_flush()
    s.send_end()
    assert sent(s) == [
        {"text": " ", "voice_settings": {"speed": 1.1}},
        {"text": "Press 1 for tour dates. "},
        {"text": " ", "flush": True},
        {"text": ""},
    ]


# -------------------------------------------------------------- stream-input: receive


def test_audio_with_alignment() -> None:
    s = opened()
    s.receive_text(
        j({"audio": B64, "isFinal": False, "normalizedAlignment": ALIGN, "alignment": ALIGN})
    )
    expected = Alignment(("H", "i", " "), (0, 70, 140), (70, 70, 30))
    assert s.events_received() == [TTSAudio(AUDIO, expected, expected)]
    assert s.audio_bytes == len(AUDIO)
    assert s.state is TTSState.OPEN


def test_audio_with_other_duration_spelling() -> None:
    s = opened()
    s.receive_text(
        j({"audio": B64, "alignment": ALIGN_OTHER_SPELLING, "normalizedAlignment": None})
    )
    (ev,) = s.events_received()
    assert isinstance(ev, TTSAudio)
    assert ev.alignment == Alignment(("H", "i"), (0, 70), (70, 60))
    assert ev.normalized_alignment is None


def test_float_alignment_times_are_rounded() -> None:
    al = {"chars": ["a"], "charStartTimesMs": [1.4], "charsDurationsMs": [2.6]}
    (ev,) = parse_message(j({"audio": B64, "alignment": al}))
    assert isinstance(ev, TTSAudio) and ev.alignment == Alignment(("a",), (1,), (3,))


@pytest.mark.parametrize(
    "msg",
    [
        {"audio": B64},
        {"audio": B64, "alignment": None, "normalizedAlignment": None},
        {"audio": B64, "isFinal": None, "alignment": None},
    ],
)
def test_audio_without_alignment(msg: dict[str, Any]) -> None:
    s = opened()
    s.receive_text(j(msg))
    assert s.events_received() == [TTSAudio(AUDIO, None, None)]


def test_final_with_null_or_absent_audio() -> None:
    for msg in (
        {"isFinal": True},
        {"audio": None, "isFinal": True},
        {"audio": "", "isFinal": True},
    ):
        s = opened()
        s.receive_text(j(msg))
        assert s.events_received() == [TTSFinal()]
        assert s.state is TTSState.FINISHED


def test_is_final_prose_spelling() -> None:
    assert parse_message(j({"is_final": True})) == [TTSFinal()]


def test_audio_and_final_in_one_message() -> None:
    s = opened()
    s.send_end()
    s.receive_text(j({"audio": B64, "isFinal": True}))
    assert s.events_received() == [TTSAudio(AUDIO, None, None), TTSFinal()]
    assert s.state is TTSState.FINISHED


def test_full_receive_sequence() -> None:
    s = opened()
    s.send_text("Hi.")
    s.send_end()
    for _ in range(3):
        s.receive_text(j({"audio": B64, "isFinal": False, "alignment": None}))
    s.receive_text(j({"isFinal": True}))
    events = s.events_received()
    assert [type(e) for e in events] == [TTSAudio, TTSAudio, TTSAudio, TTSFinal]
    assert s.audio_bytes == 3 * len(AUDIO)


@pytest.mark.parametrize(
    "msg",
    [
        {"audio": None},
        {"audio": ""},
        {"isFinal": False},
        {"audio": None, "isFinal": False, "alignment": ALIGN},
        {"audio": "", "normalizedAlignment": ALIGN},
    ],
)
def test_non_audio_messages_never_produce_audio(msg: dict[str, Any]) -> None:
    s = opened()
    s.receive_text(j(msg))
    assert s.events_received() == []
    assert s.state is TTSState.OPEN and s.audio_bytes == 0


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (
            {
                "message": "Have not received a new text input within the timeout of 20.0 seconds.",
                "error": "input_timeout_exceeded",
                "code": 1008,
            },
            TTSFailure(
                "input_timeout_exceeded",
                "Have not received a new text input within the timeout of 20.0 seconds.",
                1008,
            ),
        ),
        ({"error": "invalid_input_message"}, TTSFailure("invalid_input_message", "", None)),
        (
            {"error": {"type": "quota"}, "message": 5, "code": "1008"},
            TTSFailure('{"type": "quota"}', "", None),
        ),
        ({"error": "e" * 9000, "message": "m" * 9000}, TTSFailure("e" * 500, "m" * 500, None)),
        ({"error": "x", "audio": B64, "isFinal": True}, TTSFailure("x", "", None)),
    ],
)
def test_error_messages_are_failures_never_audio(msg: dict[str, Any], expected: TTSFailure) -> None:
    s = opened()
    s.receive_text(j(msg))
    assert s.events_received() == [expected]
    assert s.state is TTSState.FAILED
    assert s.audio_bytes == 0
    with pytest.raises(ElevenLabsProtocolError, match="failed"):
        s.receive_text(j({"audio": B64}))
    assert s.events_received() == []


def test_error_before_init_is_a_failure() -> None:
    s = ElevenLabsStream()
    s.receive_text(j({"error": "detected_unusual_activity", "message": "m", "code": 1008}))
    assert s.events_received() == [TTSFailure("detected_unusual_activity", "m", 1008)]


def test_audio_before_init_is_rejected() -> None:
    s = ElevenLabsStream()
    with pytest.raises(ElevenLabsProtocolError, match="before send_init"):
        s.receive_text(j({"audio": B64}))
    assert s.state is TTSState.IDLE and s.events_received() == []


def test_message_after_final_is_rejected() -> None:
    s = opened()
    s.receive_text(j({"isFinal": True}))
    s.events_received()
    with pytest.raises(ElevenLabsProtocolError, match="finished"):
        s.receive_text(j({"audio": B64}))
    assert s.events_received() == [] and s.state is TTSState.FINISHED


def _assert_rejected(s: ElevenLabsStream, text: Any, match: str | None = None) -> None:
    state, got = s.state, s.audio_bytes
    with pytest.raises(ElevenLabsProtocolError, match=match):
        s.receive_text(text)
    assert (s.state, s.audio_bytes) == (state, got)
    assert s.events_received() == []
    s.receive_text(j({"audio": B64}))  # still usable
    assert s.events_received() == [TTSAudio(AUDIO, None, None)]


@pytest.mark.parametrize("audio", ["@@@@", "AAA", "A===", "AAAA\n", "AA AA", "ü", B64 + "="])
def test_invalid_base64_audio(audio: str) -> None:
    _assert_rejected(opened(), j({"audio": audio, "isFinal": False}), match="base64")


@pytest.mark.parametrize("audio", [1, True, [B64], {"data": B64}])
def test_audio_of_wrong_type(audio: object) -> None:
    _assert_rejected(opened(), j({"audio": audio}), match="audio")


@pytest.mark.parametrize("final", [1, "true", [], {}])
def test_is_final_of_wrong_type(final: object) -> None:
    _assert_rejected(opened(), j({"isFinal": final}), match="isFinal")


@pytest.mark.parametrize(
    "alignment",
    [
        "x",
        [],
        {"chars": "Hi", "charStartTimesMs": [0, 1], "charsDurationsMs": [1, 1]},
        {"chars": ["H"], "charStartTimesMs": ["0"], "charsDurationsMs": [1]},
        {"chars": ["H"], "charStartTimesMs": [0], "charsDurationsMs": [True]},
        {"chars": ["H"], "charStartTimesMs": [0]},
        {"chars": [1], "charStartTimesMs": [0], "charsDurationsMs": [1]},
        {"charStartTimesMs": [0], "charsDurationsMs": [1]},
        {"chars": ["H"], "charStartTimesMs": None, "charsDurationsMs": [1]},
    ],
)
def test_malformed_alignment(alignment: object) -> None:
    _assert_rejected(opened(), j({"audio": B64, "alignment": alignment}))
    _assert_rejected(opened(), j({"audio": B64, "normalizedAlignment": alignment}))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "nope",
        "[]",
        '"audio"',
        "null",
        "1",
        "{}",
        '{"message":"hello"}',
        '{"foo":1}',
        "[" * 50_000,
    ],
)
def test_malformed_messages(text: str) -> None:
    _assert_rejected(opened(), text)


def test_bytes_as_text_rejected() -> None:
    _assert_rejected(opened(), j({"audio": B64}).encode())


@pytest.mark.parametrize("data", [b"", AUDIO, j({"audio": B64}).encode()])
def test_binary_frames_rejected(data: bytes) -> None:
    s = opened()
    with pytest.raises(ElevenLabsProtocolError, match="binary"):
        s.receive_bytes(data)
    assert s.events_received() == [] and s.state is TTSState.OPEN
    m = ElevenLabsMultiStream()
    with pytest.raises(ElevenLabsProtocolError, match="binary"):
        m.receive_bytes(data)


def test_protocol_error_is_a_protocol_error() -> None:
    assert issubclass(ElevenLabsProtocolError, ProtocolError)
    with pytest.raises(ValueError):
        parse_message("{")


# ------------------------------------------------------------------ multi-stream-input


def multi(**kwargs: Any) -> ElevenLabsMultiStream:
    return ElevenLabsMultiStream(**kwargs)


def test_open_context_message() -> None:
    m = multi(voice_settings={"speed": 1.0}, generation_config={"chunk_length_schedule": [50]})
    m.open_context("turn-7")
    assert m.data_to_send() == [
        '{"text":" ","voice_settings":{"speed":1.0},"generation_config":{"chunk_length_schedule":[50]},'
        '"context_id":"turn-7"}'
    ]
    assert m.live_contexts == frozenset({"turn-7"})


def test_context_messages_exact() -> None:
    m = multi()
    m.open_context("c1")
    m.send_text("c1", "Hi.")
    m.send_text("c1", "There", flush=True)
    m.flush_context("c1")
    m.keepalive("c1")
    m.close_context("c1")
    assert m.data_to_send() == [
        '{"text":" ","context_id":"c1"}',
        '{"text":"Hi. ","context_id":"c1"}',
        '{"text":"There ","context_id":"c1","flush":true}',
        '{"context_id":"c1","flush":true}',
        '{"text":"","context_id":"c1"}',
        '{"context_id":"c1","close_context":true}',
    ]
    assert m.live_contexts == frozenset()
    assert m.closing_contexts == frozenset({"c1"})


def test_close_context_with_flush() -> None:
    m = multi()
    m.open_context("c1")
    m.data_to_send()
    m.close_context("c1", flush=True)
    assert sent(m) == [{"context_id": "c1", "close_context": True, "flush": True}]


def test_close_socket() -> None:
    m = multi()
    m.open_context("a")
    m.open_context("b")
    m.data_to_send()
    m.close_socket()
    assert m.data_to_send() == ['{"close_socket":true}']
    assert m.live_contexts == frozenset() and m.closing_contexts == {"a", "b"}
    assert m.socket_closed
    for send in (lambda: m.open_context("c"), m.close_socket, lambda: m.send_text("a", "x")):
        with pytest.raises(ElevenLabsProtocolError):
            send()
    m2 = multi()
    m2.close_socket(flush=True)
    assert sent(m2) == [{"close_socket": True, "flush": True}]


def test_at_most_five_live_contexts() -> None:
    m = multi()
    for i in range(MAX_CONTEXTS):
        m.open_context(f"c{i}")
    assert MAX_CONTEXTS == 5 and len(m.live_contexts) == 5
    m.data_to_send()
    with pytest.raises(ElevenLabsProtocolError, match="at most 5"):
        m.open_context("c5")
    assert m.data_to_send() == [] and len(m.live_contexts) == 5
    # A closed context still counts (ElevenLabs goes on flushing it) until its final message.
    m.close_context("c0")
    assert m.active_contexts == 5
    with pytest.raises(ElevenLabsProtocolError, match="closed and not final yet"):
        m.open_context("c5")
    m.receive_text(j({"isFinal": True, "contextId": "c0"}))
    m.open_context("c5")
    assert m.live_contexts == {"c1", "c2", "c3", "c4", "c5"}
    # A final for a live context frees its slot too.
    m.receive_text(j({"isFinal": True, "contextId": "c1"}))
    m.open_context("c6")
    assert len(m.live_contexts) == 5


def test_a_forgotten_closing_context_frees_its_slot_and_its_tail_is_still_accepted() -> None:
    m = multi()
    for i in range(MAX_CONTEXTS):
        m.open_context(f"c{i}")
    m.close_context("c0")
    m.forget_context("c0")  # the shell's bounded wait for its final ran out
    assert m.active_contexts == 4 and m.closing_contexts == frozenset()
    m.open_context("c5")
    m.receive_text(j({"isFinal": True, "contextId": "c0"}))  # late: accepted, not an error
    assert [type(e).__name__ for e in m.events_received()] == ["TTSFinal"]
    m.forget_context("c9")  # unknown: nothing happens
    assert m.active_contexts == 5


def test_context_misuse() -> None:
    m = multi()
    for bad in ("", 5):
        with pytest.raises(ElevenLabsProtocolError):
            m.open_context(bad)  # type: ignore[arg-type]
    m.open_context("a")
    with pytest.raises(ElevenLabsProtocolError, match="already live"):
        m.open_context("a")
    for send in (
        lambda: m.send_text("zzz", "x"),
        lambda: m.flush_context("zzz"),
        lambda: m.close_context("zzz"),
        lambda: m.keepalive("zzz"),
    ):
        with pytest.raises(ElevenLabsProtocolError, match="not live"):
            send()
    with pytest.raises(ElevenLabsProtocolError, match="empty"):
        m.send_text("a", " ")
    assert m.data_to_send() == ['{"text":" ","context_id":"a"}']


def test_multi_receive_audio_and_final() -> None:
    m = multi()
    m.open_context("t1")
    m.receive_text(
        j({"audio": B64, "normalizedAlignment": ALIGN, "alignment": None, "contextId": "t1"})
    )
    m.receive_text(j({"isFinal": True, "contextId": "t1"}))
    a = Alignment(("H", "i", " "), (0, 70, 140), (70, 70, 30))
    assert m.events_received() == [TTSAudio(AUDIO, None, a, "t1"), TTSFinal("t1")]
    assert m.live_contexts == frozenset()


def test_multi_late_audio_for_closed_context_is_accepted_then_final_forgets_it() -> None:
    m = multi()
    m.open_context("old")
    m.close_context("old")
    m.open_context("new")
    m.receive_text(j({"audio": B64, "contextId": "old"}))
    m.receive_text(j({"audio": B64, "contextId": "new"}))
    m.receive_text(j({"isFinal": True, "contextId": "old"}))
    assert [(type(e).__name__, e.context_id) for e in m.events_received()] == [
        ("TTSAudio", "old"),
        ("TTSAudio", "new"),
        ("TTSFinal", "old"),
    ]
    assert m.closing_contexts == frozenset() and m.live_contexts == {"new"}
    with pytest.raises(ElevenLabsProtocolError, match="unknown context"):
        m.receive_text(j({"audio": B64, "contextId": "old"}))


def test_multi_reused_context_id() -> None:
    m = multi()
    m.open_context("x")
    m.close_context("x")
    m.open_context("x")
    assert m.live_contexts == {"x"} and m.closing_contexts == frozenset()


@pytest.mark.parametrize(
    "msg",
    [
        {"audio": B64},
        {"isFinal": True},
        {"audio": B64, "contextId": "nope"},
        {"audio": B64, "contextId": 5},
        {"audio": "!!", "contextId": "a"},
        {"contextId": "a"},
    ],
)
def test_multi_rejects(msg: dict[str, Any]) -> None:
    m = multi()
    m.open_context("a")
    with pytest.raises(ElevenLabsProtocolError):
        m.receive_text(j(msg))
    assert m.events_received() == [] and m.live_contexts == {"a"}
    m.receive_text(j({"audio": B64, "contextId": "a"}))
    assert m.events_received() == [TTSAudio(AUDIO, None, None, "a")]


def test_multi_non_audio_never_audio() -> None:
    m = multi()
    m.open_context("a")
    m.receive_text(j({"audio": None, "contextId": "a"}))
    m.receive_text(j({"audio": "", "isFinal": False, "contextId": "a"}))
    assert m.events_received() == []


def test_multi_context_error() -> None:
    m = multi()
    m.open_context("a")
    m.open_context("b")
    m.receive_text(
        j({"error": "input_timeout_exceeded", "message": "idle", "code": 1008, "contextId": "a"})
    )
    assert m.events_received() == [TTSFailure("input_timeout_exceeded", "idle", 1008, "a")]
    assert m.live_contexts == {"b"} and not m.socket_closed


def test_multi_socket_error() -> None:
    m = multi()
    m.open_context("a")
    m.receive_text(j({"error": "invalid_input_message", "message": "bad", "code": 1008}))
    assert m.events_received() == [TTSFailure("invalid_input_message", "bad", 1008, None)]
    assert m.socket_closed and m.live_contexts == frozenset() and m.closing_contexts == {"a"}


def test_multi_malformed_json() -> None:
    m = multi()
    for text in ("", "{", "[]", "null", "[" * 50_000):
        with pytest.raises(ElevenLabsProtocolError):
            m.receive_text(text)
    assert m.events_received() == []


def test_parse_message_copies_context_id() -> None:
    assert parse_message(j({"isFinal": True, "contextId": "z"})) == [TTSFinal("z")]
