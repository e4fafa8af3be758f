"""hotline.core.stt, .scribe, .deepgram: every message in and out of Scribe realtime and Deepgram
live, no network."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.deepgram import DeepgramLive, DeepgramState
from hotline.core.scribe import SCRIBE_ERRORS, SCRIBE_PERMANENT, CommitStrategy, ScribeRealtime
from hotline.core.stt import (
    SttClosed,
    SttCommitted,
    SttFailure,
    SttPartial,
    SttSessionStarted,
    SttSpeechStarted,
    SttWord,
)
from hotline.errors import ConfigError, ProtocolError, SttProtocolError


def _sent(p: ScribeRealtime | DeepgramLive) -> str | bytes:
    """The one message queued since the last drain."""
    [message] = p.data_to_send()
    return message


def _q(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


# ---------------------------------------------------------------------------- Scribe out


def test_scribe_url_and_query() -> None:
    s = ScribeRealtime(
        keyterms=("tour dates", "merch"),
        language_code="en",
        vad_silence_threshold_secs=0.6,
        vad_threshold=0.5,
        min_speech_duration_ms=100,
        min_silence_duration_ms=200,
        include_timestamps=True,
    )
    url = s.url("wss://api.elevenlabs.io")
    assert url.startswith("wss://api.elevenlabs.io/v1/speech-to-text/realtime?")
    assert _q(url) == [
        ("model_id", "scribe_v2_realtime"),
        ("audio_format", "ulaw_8000"),
        ("commit_strategy", "vad"),
        ("vad_silence_threshold_secs", "0.6"),
        ("vad_threshold", "0.5"),
        ("min_speech_duration_ms", "100"),
        ("min_silence_duration_ms", "200"),
        ("language_code", "en"),
        ("include_timestamps", "true"),
        ("keyterms", "tour dates"),
        ("keyterms", "merch"),
    ]
    assert ScribeRealtime.headers("k") == {"xi-api-key": "k"}
    manual = ScribeRealtime(commit_strategy=CommitStrategy.MANUAL).url("ws://127.0.0.1:1/base/")
    assert manual.startswith("ws://127.0.0.1:1/base/v1/speech-to-text/realtime?")
    assert ("commit_strategy", "manual") in _q(manual)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vad_silence_threshold_secs": 0.1},
        {"vad_silence_threshold_secs": 3.5},
        {"vad_threshold": 0.95},
        {"min_speech_duration_ms": 10},
        {"min_silence_duration_ms": 5000},
        {"audio_format": "mp3_44100"},
        {"language_code": "english"},
        {"keyterms": "tour"},
        {"keyterms": ("",)},
        {"keyterms": ("x" * 51,)},
        {"model_id": ""},
    ],
)
def test_scribe_bad_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ScribeRealtime(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("base", ["http://x", "wss://x/?a=1", "nohost", "wss://"])
def test_scribe_bad_base(base: str) -> None:
    with pytest.raises(ConfigError):
        ScribeRealtime().url(base)


def test_scribe_send_audio_previous_text_first_only() -> None:
    s = ScribeRealtime(previous_text="hello")
    s.send_audio(b"\xff\x7f")
    first = json.loads(_sent(s))
    assert first == {
        "message_type": "input_audio_chunk",
        "audio_base_64": base64.b64encode(b"\xff\x7f").decode(),
        "commit": False,
        "sample_rate": 8000,
        "previous_text": "hello",
    }
    s.send_audio(bytearray(b"\x00"))
    second = json.loads(_sent(s))
    assert "previous_text" not in second and second["audio_base_64"] == "AA=="
    assert s.audio_bytes_sent == 3


def test_scribe_commit_is_sdk_wire_form() -> None:
    s = ScribeRealtime()
    s.commit()
    assert json.loads(_sent(s)) == {
        "message_type": "input_audio_chunk",
        "audio_base_64": "",
        "commit": True,
        "sample_rate": 8000,
    }


@pytest.mark.parametrize("bad", [b"", "text", None, 5])
def test_scribe_send_audio_rejects(bad: object) -> None:
    with pytest.raises(SttProtocolError):
        s = ScribeRealtime()
        s.send_audio(bad)  # type: ignore[arg-type]
    assert s.data_to_send() == []


# ----------------------------------------------------------------------------- Scribe in


def _feed(s: ScribeRealtime | DeepgramLive, *msgs: object) -> list[object]:
    for m in msgs:
        s.receive_text(m if isinstance(m, str) else json.dumps(m))
    return list(s.events_received())


def test_scribe_session_partial_commit() -> None:
    s = ScribeRealtime()
    events = _feed(
        s,
        {"message_type": "session_started", "session_id": "abc", "config": {"sample_rate": 8000}},
        {"message_type": "partial_transcript", "text": "what are"},
        {"message_type": "committed_transcript", "text": "what are the tour dates"},
        {"message_type": "committed_transcript_entities", "entities": []},
    )
    assert events == [
        SttSessionStarted("abc"),
        SttPartial("what are"),
        SttCommitted("what are the tour dates"),
    ]
    assert s.session_id == "abc"
    assert s.events_received() == []


def test_scribe_with_timestamps_commits_once_with_words() -> None:
    s = ScribeRealtime(include_timestamps=True)
    events = _feed(
        s,
        {"message_type": "committed_transcript", "text": "hi there"},
        {
            "message_type": "committed_transcript_with_timestamps",
            "text": "hi there",
            "language_code": "en",
            "words": [
                {"text": "hi", "start": 0.1, "end": 0.3, "type": "word"},
                {"text": " ", "start": 0.3, "end": 0.3, "type": "spacing"},
                {"text": "there", "start": 0.3, "end": 0.7, "type": "word", "speaker_id": "s0"},
            ],
        },
    )
    assert events == [
        SttCommitted("hi there", (SttWord("hi", 0.1, 0.3), SttWord("there", 0.3, 0.7)), "en")
    ]
    # a plain commit whose timed copy never came is released by the next one, or at close
    assert _feed(s, {"message_type": "committed_transcript", "text": "a"}) == []
    assert _feed(s, {"message_type": "committed_transcript", "text": "b"}) == [SttCommitted("a")]
    s.flush_pending()
    assert s.events_received() == [SttCommitted("b")]


@pytest.mark.parametrize("kind", sorted(SCRIBE_ERRORS))
def test_scribe_every_error_type(kind: str) -> None:
    s = ScribeRealtime()
    assert _feed(s, {"message_type": kind, "error": "detail"}) == [
        SttFailure(kind, "detail", SCRIBE_ERRORS[kind], kind in SCRIBE_PERMANENT)
    ]


def test_scribe_error_fatality() -> None:
    assert SCRIBE_ERRORS["auth_error"] and SCRIBE_ERRORS["quota_exceeded"]
    assert not SCRIBE_ERRORS["commit_throttled"] and not SCRIBE_ERRORS["chunk_size_exceeded"]
    assert not SCRIBE_ERRORS["input_error"]
    # permanent (the client stops reconnecting): only what a new session would meet again
    assert SCRIBE_PERMANENT == {
        "auth_error",
        "quota_exceeded",
        "unaccepted_terms_error",
        "unaccepted_terms",
    }
    assert all(SCRIBE_ERRORS[kind] for kind in SCRIBE_PERMANENT)  # permanent implies fatal


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[]",
        "{}",
        '{"message_type": 5}',
        '{"message_type": "nope"}',
        '{"message_type": "partial_transcript"}',
        '{"message_type": "partial_transcript", "text": 3}',
        '{"message_type": "session_started"}',
        '{"message_type": "session_started", "session_id": "a", "config": []}',
        '{"message_type": "committed_transcript_with_timestamps", "text": "a", "words": {}}',
        '{"message_type": "committed_transcript_with_timestamps", "text": "a", "words": [1]}',
        '{"message_type": "committed_transcript_with_timestamps", "text": "a",'
        ' "words": [{"text": "a", "start": "0", "end": 1}]}',
        '{"message_type": "committed_transcript_with_timestamps", "text": "a",'
        ' "words": [{"text": "a", "start": 0, "end": NaN}]}',
        '{"message_type": "committed_transcript_with_timestamps", "text": "a", "language_code": 1}',
        '{"message_type": "auth_error", "error": 7}',
        "[" * 100_000,
    ],
)
def test_scribe_malformed(frame: str) -> None:
    s = ScribeRealtime()
    with pytest.raises(SttProtocolError):
        s.receive_text(frame)
    assert s.events_received() == []
    # still usable
    assert _feed(s, {"message_type": "partial_transcript", "text": "ok"}) == [SttPartial("ok")]


def test_scribe_binary_and_non_str() -> None:
    s = ScribeRealtime()
    with pytest.raises(SttProtocolError):
        s.receive_bytes(b"\x00")
    with pytest.raises(SttProtocolError):
        s.receive_text(b"{}")  # type: ignore[arg-type]
    assert issubclass(SttProtocolError, ProtocolError)


# --------------------------------------------------------------------------- Deepgram out


def test_deepgram_url_and_headers() -> None:
    d = DeepgramLive(keyterms=("tour", "merch"), language="en-US", model="nova-3")
    url = d.url("wss://api.deepgram.com")
    assert url.startswith("wss://api.deepgram.com/v1/listen?")
    assert _q(url) == [
        ("encoding", "mulaw"),
        ("sample_rate", "8000"),
        ("channels", "1"),
        ("interim_results", "true"),
        ("endpointing", "300"),
        ("utterance_end_ms", "1000"),
        ("vad_events", "true"),
        ("model", "nova-3"),
        ("language", "en-US"),
        ("keyterm", "tour"),
        ("keyterm", "merch"),
    ]
    old = DeepgramLive(
        keyterms=("tour",), keywords=True, endpointing_ms=None, utterance_end_ms=None
    )
    q = _q(old.url("ws://127.0.0.1:9"))
    assert ("keywords", "tour") in q and ("endpointing", "false") in q
    assert not any(k == "utterance_end_ms" for k, _ in q)
    assert DeepgramLive.headers("k") == {"Authorization": "Token k"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpointing_ms": 5},
        {"utterance_end_ms": 500},
        {"utterance_end_ms": 1000, "interim_results": False},
        {"endpointing_ms": True},
    ],
)
def test_deepgram_bad_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        DeepgramLive(**kwargs)  # type: ignore[arg-type]


def test_deepgram_sending() -> None:
    d = DeepgramLive()
    d.send_audio(bytearray(b"\x01\x02"))
    d.keep_alive()
    d.finalize()
    d.commit()
    assert d.state is DeepgramState.OPEN
    d.close_stream()
    assert d.data_to_send() == [
        b"\x01\x02",
        '{"type":"KeepAlive"}',
        '{"type":"Finalize"}',
        '{"type":"Finalize"}',  # commit() is Finalize
        '{"type":"CloseStream"}',
    ]
    assert d.state is DeepgramState.CLOSING
    for send in (lambda: d.send_audio(b"\x01"), d.keep_alive, d.finalize, d.close_stream):
        with pytest.raises(SttProtocolError):
            send()
    assert d.data_to_send() == []  # nothing queued after CloseStream
    fresh = DeepgramLive()
    with pytest.raises(SttProtocolError):
        fresh.send_audio(b"")
    assert fresh.data_to_send() == []


# ---------------------------------------------------------------------------- Deepgram in


def _results(
    text: str,
    *,
    is_final: bool = False,
    speech_final: bool = False,
    from_finalize: bool = False,
    words: list[dict[str, object]] | None = None,
    confidence: float | None = None,
) -> dict[str, object]:
    # confidence is carried into the commit (tests/core/test_confidence.py); left out here
    best: dict[str, object] = {"transcript": text, "words": words or []}
    if confidence is not None:
        best["confidence"] = confidence
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": 1.0,
        "start": 0.0,
        "is_final": is_final,
        "speech_final": speech_final,
        "from_finalize": from_finalize,
        "channel": {"alternatives": [best]},
    }


def test_deepgram_interim_final_speech_final() -> None:
    d = DeepgramLive()
    d.connection_opened("req-1")
    w = [{"word": "tour", "start": 0.5, "end": 0.8, "confidence": 0.9, "punctuated_word": "Tour"}]
    events = _feed(
        d,
        _results("what"),
        _results("what are the", is_final=True),
        _results("tour"),
        _results("tour dates", is_final=True, speech_final=True, words=w),
        {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.2},
    )
    assert events == [
        SttSessionStarted("req-1"),
        SttPartial("what"),
        SttPartial("what are the"),
        SttPartial("what are the tour"),
        SttCommitted("what are the tour dates", (SttWord("Tour", 0.5, 0.8, 0.9),), None),
    ]


def test_deepgram_utterance_end_commits_when_no_speech_final() -> None:
    d = DeepgramLive(language="en-US")
    events = _feed(
        d,
        _results("goodbye", is_final=True),
        {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 0.9},
        {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 0.9},
    )
    assert events == [SttPartial("goodbye"), SttCommitted("goodbye", (), "en-US")]


def test_deepgram_finalize_and_metadata() -> None:
    d = DeepgramLive()
    events = _feed(
        d,
        {"type": "SpeechStarted", "channel": [0], "timestamp": 0.42},
        _results("repeat that", is_final=True, from_finalize=True),
        _results("", is_final=True, speech_final=True),
        {"type": "Metadata", "request_id": "r", "duration": 3.5, "channels": 1},
    )
    assert events == [
        SttSpeechStarted(0.42),
        SttCommitted("repeat that"),
        SttClosed("r", 3.5),
    ]
    assert d.state is DeepgramState.CLOSED


def test_deepgram_finalize_with_nothing_new_still_answers() -> None:
    """Our Finalize with nothing buffered: an empty commit, so the turn that asked ends now
    instead of at the final-transcript timeout."""
    d = DeepgramLive()
    events = _feed(
        d,
        _results("where can i", is_final=True, speech_final=True),
        _results("", is_final=True, from_finalize=True),
    )
    assert events == [SttCommitted("where can i"), SttCommitted("")]


def test_deepgram_errors_and_close() -> None:
    d = DeepgramLive()
    assert _feed(d, {"type": "Error", "variant": "DATA-0000", "description": "bad audio"}) == [
        SttFailure("DATA-0000", "bad audio", True)
    ]
    d.receive_text(json.dumps(_results("half", is_final=True)))
    d.receive_close(1011, "NET-0001")
    events = d.events_received()
    assert events[-2:] == [
        SttCommitted("half"),
        SttFailure("NET-0001", "no audio or KeepAlive within 10 seconds", True),
    ]
    clean = DeepgramLive()
    clean.receive_close(1000, "")
    assert clean.events_received() == []
    lost = DeepgramLive()
    lost.receive_close(None, "")
    assert lost.events_received() == [
        SttFailure("close_None", "connection closed (code None)", True)
    ]


@pytest.mark.parametrize(
    "frame",
    [
        "nope",
        "1",
        '{"type": 1}',
        '{"type": "Whatever"}',
        '{"type": "Results"}',
        '{"type": "Results", "channel": {"alternatives": {}}}',
        '{"type": "Results", "channel": {"alternatives": [5]}}',
        '{"type": "Results", "channel": {"alternatives": [{"transcript": 1}]}}',
        '{"type": "Results", "is_final": "yes", "channel": {"alternatives": []}}',
        '{"type": "Results", "start": "0", "channel": {"alternatives": []}}',
        '{"type": "Results", "channel": {"alternatives": [{"transcript": "a", "words": [1]}]}}',
        '{"type": "Results", "channel": {"alternatives": [{"transcript": "a",'
        ' "words": [{"word": "a", "start": 0}]}]}}',
        '{"type": "SpeechStarted", "timestamp": "x"}',
        '{"type": "UtteranceEnd", "last_word_end": []}',
        '{"type": "Metadata", "duration": "long"}',
        '{"type": "Error", "description": 1}',
    ],
)
def test_deepgram_malformed(frame: str) -> None:
    d = DeepgramLive()
    with pytest.raises(SttProtocolError):
        d.receive_text(frame)
    assert d.events_received() == []
    with pytest.raises(SttProtocolError):
        d.receive_bytes(b"\x00")
    assert _feed(d, _results("ok", is_final=True, speech_final=True)) == [SttCommitted("ok")]


# --------------------------------------------------------------------------------- fuzz

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=5),
    max_leaves=20,
)
_scribe_kinds = st.sampled_from(
    [
        "session_started",
        "partial_transcript",
        "committed_transcript",
        "committed_transcript_with_timestamps",
        "committed_transcript_entities",
        *SCRIBE_ERRORS,
    ]
)
_dg_kinds = st.sampled_from(["Results", "UtteranceEnd", "SpeechStarted", "Metadata", "Error"])
_keys = st.sampled_from(
    [
        "text",
        "session_id",
        "config",
        "words",
        "language_code",
        "error",
        "channel",
        "is_final",
        "speech_final",
        "from_finalize",
        "start",
        "duration",
        "timestamp",
        "last_word_end",
        "request_id",
        "description",
        "variant",
    ]
)


def _messages(kind_key: str, kinds: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    shaped = st.builds(
        lambda k, extra: json.dumps({kind_key: k, **extra}),
        kinds,
        st.dictionaries(_keys, _json, max_size=5),
    )
    return shaped | st.text(max_size=40) | _json.map(json.dumps)


@settings(max_examples=400, deadline=None)
@given(st.lists(_messages("message_type", _scribe_kinds), max_size=8), st.booleans())
def test_fuzz_scribe_only_protocol_errors(frames: list[str], timestamps: bool) -> None:
    s = ScribeRealtime(include_timestamps=timestamps)
    for frame in frames:
        try:
            s.receive_text(frame)
        except SttProtocolError:
            pass
    s.flush_pending()
    for ev in s.events_received():
        assert isinstance(ev, SttSessionStarted | SttPartial | SttCommitted | SttFailure)


@settings(max_examples=400, deadline=None)
@given(st.lists(_messages("type", _dg_kinds), max_size=8))
def test_fuzz_deepgram_only_protocol_errors(frames: list[str]) -> None:
    d = DeepgramLive()
    for frame in frames:
        try:
            d.receive_text(frame)
        except SttProtocolError:
            pass
    d.receive_close(1011, "NET-0000")
    assert d.events_received()[-1] == SttFailure("NET-0000", "the service did not respond", True)
