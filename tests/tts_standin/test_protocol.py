"""The stand-in's protocol checks and fault choice alone (no sockets)."""

from __future__ import annotations

import pytest

from hotline.tts_standin.faults import FAULT_MODES, fault_for, frame_header
from hotline.tts_standin.protocol import (
    Invalid,
    check_fields,
    check_first,
    parse_message,
    parse_target,
    timeout_message,
)


def test_parse_target() -> None:
    assert parse_target("/v1/text-to-speech/v1/stream-input?model_id=m&auto_mode=") == (
        "v1",
        "stream-input",
        {"model_id": "m", "auto_mode": ""},
    )
    assert parse_target("/v1/text-to-speech/v/multi-stream-input")[1] == "multi-stream-input"  # type: ignore[index]
    assert parse_target("/v1/text-to-speech/v/stream") is None
    assert parse_target("/v1/text-to-speech//stream-input") is None


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"{}", "binary"),
        ("{", "not valid JSON"),
        ("[1]", "JSON object"),
    ],
)
def test_parse_message_refuses(raw: str | bytes, why: str) -> None:
    with pytest.raises(Invalid, match=why):
        parse_message(raw)


@pytest.mark.parametrize(
    "obj", [{"flush": 1}, {"close_context": "yes"}, {"close_socket": None}, {"text": 5}]
)
def test_check_fields_refuses_wrong_types(obj: dict[str, object]) -> None:
    with pytest.raises(Invalid):
        check_fields(obj)


def test_check_first() -> None:
    assert check_first({"text": " "}) is None
    assert check_first({"generation_config": {"chunk_length_schedule": [50, 120]}}) == (50, 120)
    bads: list[dict[str, object]] = [
        {"voice_settings": {"stability": 1.5}},
        {"voice_settings": {"speed": 2.0}},
        {"voice_settings": {"style": True}},
        {"voice_settings": []},
        {"generation_config": {"chunk_length_schedule": [10]}},
        {"generation_config": {"chunk_length_schedule": []}},
    ]
    for bad in bads:
        with pytest.raises(Invalid):
            check_first(bad)


def test_fault_choice_and_helpers() -> None:
    assert fault_for("v", {"hotline_fault": "no_final"}, "corrupt_audio") == "no_final"
    assert fault_for("fault-slow-first-chunk", {}, None) == "slow_first_chunk"
    assert fault_for("v", {}, "idle_close") == "idle_close" and fault_for("v", {}, None) is None
    assert "refuse_handshake" in FAULT_MODES
    assert frame_header(5) == b"\x81\x05"
    assert frame_header(300) == b"\x81\x7e\x01\x2c"
    assert frame_header(1 << 16) == b"\x81\x7f" + (1 << 16).to_bytes(8, "big")
    assert "20.0 seconds" in timeout_message(20)
