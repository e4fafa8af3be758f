"""ConversationRelay messages, both directions, and malformed input from the app."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.brain import CallStarted, EndCall, PlayAudio, SayText, SendDigits, SetLanguage
from hotline.core.relay import MAX_MALFORMED, RelaySession, parse_app_message
from hotline.errors import RelayProtocolError

CALL = CallStarted(
    call_sid="CA" + "1" * 32,
    stream_sid="MZ" + "2" * 32,
    to="+15550001111",
    custom_parameters={"campaign": "spring"},
    account_sid="AC" + "3" * 32,
)


def opened() -> RelaySession:
    r = RelaySession()
    r.send_setup(CALL, session_id="VX" + "4" * 32, caller="+1555***0123")
    return r


def test_setup_has_every_documented_field() -> None:
    (frame,) = opened().data_to_send()
    msg = json.loads(frame)
    assert msg == {
        "type": "setup",
        "sessionId": "VX" + "4" * 32,
        "accountSid": "AC" + "3" * 32,
        "parentCallSid": "",
        "callSid": "CA" + "1" * 32,
        "from": "+1555***0123",
        "to": "+15550001111",
        "forwardedFrom": "",
        "callType": "PSTN",
        "callerName": "",
        "direction": "inbound",
        "callStatus": "IN-PROGRESS",
        "customParameters": {"campaign": "spring"},
    }


def test_messages_to_the_app() -> None:
    r = opened()
    r.data_to_send()
    r.send_prompt("When's the tour?", "en-US")
    r.send_prompt("partial", "en-GB", last=False)
    r.send_dtmf("5")
    r.send_interrupt("We play Port", 460)
    r.send_error("Invalid message received: x")
    assert [json.loads(f) for f in r.data_to_send()] == [
        {"type": "prompt", "voicePrompt": "When's the tour?", "lang": "en-US", "last": True},
        {"type": "prompt", "voicePrompt": "partial", "lang": "en-GB", "last": False},
        {"type": "dtmf", "digit": "5"},
        {
            "type": "interrupt",
            "utteranceUntilInterrupt": "We play Port",
            "durationUntilInterruptMs": 460,
        },
        {"type": "error", "description": "Invalid message received: x"},
    ]
    assert r.data_to_send() == []


def test_setup_first_and_once() -> None:
    with pytest.raises(RelayProtocolError, match="setup must be sent first"):
        RelaySession().send_prompt("x")
    with pytest.raises(RelayProtocolError, match="already"):
        opened().send_setup(CALL, session_id="VX0")


@pytest.mark.parametrize(
    ("msg", "out"),
    [
        ({"type": "text", "token": " world"}, SayText(" world")),
        ({"type": "text", "token": "", "last": True}, SayText("", last=True)),
        (
            {
                "type": "text",
                "token": "Hola",
                "lang": "es-ES",
                "interruptible": False,
                "preemptible": True,
            },
            SayText("Hola", interruptible=False, preemptible=True, lang="es-ES"),
        ),
        ({"type": "play", "source": "https://x.test/a.mp3"}, PlayAudio("https://x.test/a.mp3")),
        (
            {
                "type": "play",
                "source": "http://x.test/a.wav",
                "loop": 0,
                "preemptible": True,
                "interruptible": False,
            },
            PlayAudio("http://x.test/a.wav", loop=0, interruptible=False, preemptible=True),
        ),
        ({"type": "sendDigits", "digits": "9www4085551212#*"}, SendDigits("9www4085551212#*")),
        ({"type": "language", "ttsLanguage": "fr-FR"}, SetLanguage("fr-FR", None)),
        ({"type": "language", "transcriptionLanguage": "multi"}, SetLanguage(None, "multi")),
        ({"type": "end"}, EndCall("relay_end")),
        (
            {"type": "end", "handoffData": '{"reason":"sales"}'},
            EndCall("relay_end", '{"reason":"sales"}'),
        ),
        ({"type": "text", "token": "x", "futureField": 1}, SayText("x")),
    ],
)
def test_app_messages(msg: dict[str, object], out: object) -> None:
    assert parse_app_message(json.dumps(msg)) == out


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[]",
        b'{"type":"text","token":"x"}',
        json.dumps({"token": "x"}),
        json.dumps({"type": 3}),
        json.dumps({"type": "dance"}),
        json.dumps({"type": "text"}),
        json.dumps({"type": "text", "token": None}),
        json.dumps({"type": "text", "token": 5}),
        json.dumps({"type": "text", "token": "x", "last": "yes"}),
        json.dumps({"type": "text", "token": "x", "lang": "not a tag!"}),
        json.dumps({"type": "play"}),
        json.dumps({"type": "play", "source": "file:///etc/passwd"}),
        json.dumps({"type": "play", "source": "https://x/a.mp3", "loop": -1}),
        json.dumps({"type": "play", "source": "https://x/a.mp3", "loop": True}),
        json.dumps({"type": "sendDigits", "digits": "12a"}),
        json.dumps({"type": "sendDigits", "digits": ""}),
        json.dumps({"type": "language"}),
        json.dumps({"type": "end", "handoffData": {"x": 1}}),
    ],
)
def test_invalid_message_gets_an_error_back_and_is_dropped(frame: object) -> None:
    r = opened()
    r.data_to_send()
    with pytest.raises(RelayProtocolError):
        r.receive_text(frame)
    (err,) = [json.loads(f) for f in r.data_to_send()]
    assert err["type"] == "error" and err["description"].startswith("Invalid message received: ")
    assert r.events_received() == []
    r.receive_text(json.dumps({"type": "text", "token": "ok", "last": True}))
    assert r.events_received() == [SayText("ok", last=True)]
    assert r.close_code is None


def test_ten_consecutive_malformed_close_1007_and_a_good_one_resets() -> None:
    r = opened()
    for _ in range(MAX_MALFORMED - 1):
        with pytest.raises(RelayProtocolError):
            r.receive_text("{")
    r.receive_text(json.dumps({"type": "text", "token": "fine"}))
    assert r.malformed_in_a_row == 0 and r.close_code is None
    for _ in range(MAX_MALFORMED):
        with pytest.raises(RelayProtocolError):
            r.receive_text("{")
    assert r.close_code == (1007, "Too many consecutive malformed messages")
    r.receive_text(json.dumps({"type": "text", "token": "late"}))  # ignored once closing
    assert r.events_received() == [SayText("fine")]


def test_after_end_app_messages_are_ignored() -> None:
    r = opened()
    r.receive_text(json.dumps({"type": "end"}))
    r.receive_text(json.dumps({"type": "text", "token": "late"}))
    assert r.events_received() == [EndCall("relay_end")]
    assert r.ended


def test_error_text_never_echoes_the_app_content() -> None:
    r = opened()
    r.data_to_send()
    with pytest.raises(RelayProtocolError):
        r.receive_text(json.dumps({"type": "secret-4111111111111111"}))
    (err,) = r.data_to_send()
    assert "4111" not in err


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "token",
                    "last",
                    "lang",
                    "interruptible",
                    "preemptible",
                    "source",
                    "loop",
                    "digits",
                    "ttsLanguage",
                    "transcriptionLanguage",
                    "handoffData",
                ]
            )
            | st.text(max_size=4),
            inner,
            max_size=5,
        )
    ),
    max_leaves=15,
)
_typed = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "play", "sendDigits", "language", "end"])},
    optional={
        k: _json
        for k in [
            "token",
            "last",
            "lang",
            "interruptible",
            "preemptible",
            "source",
            "loop",
            "digits",
            "ttsLanguage",
            "transcriptionLanguage",
            "handoffData",
        ]
    },
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        _json.map(json.dumps), _typed.map(json.dumps), st.text(max_size=30), st.binary(max_size=10)
    )
)
def test_fuzz_only_protocol_errors(frame: object) -> None:
    r = opened()
    try:
        r.receive_text(frame)
    except RelayProtocolError:
        assert json.loads(r.data_to_send()[-1])["type"] == "error"
    else:
        assert len(r.events_received()) == 1
