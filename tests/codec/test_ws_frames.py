"""hotline.codec.ws_client_frames: the direct media path's frame splitter, against websockets'
own parser as the oracle (same bytes, same messages, and it stops where websockets must rule)."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.protocol import SERVER, Protocol, State

from hotline.codec import ws_client_frames

LIMIT = 70_000


def frame(opcode: Opcode, data: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    raw = Frame(opcode, data, fin=fin).serialize(mask=True, extensions=[])
    return bytes([raw[0] | 0x40]) + raw[1:] if rsv1 else raw  # RSV1: past websockets' check


def websockets_messages(stream: bytes) -> list[str | bytes]:
    """What websockets' server parser makes of plain frames (text decoded as uvicorn does)."""
    conn = Protocol(SERVER, state=State.OPEN, max_size=LIMIT)
    conn.receive_data(stream)
    assert conn.parser_exc is None
    return [
        f.data.decode() if f.opcode is Opcode.TEXT else bytes(f.data)
        for f in conn.events_received()
    ]


payloads = st.one_of(
    st.text(max_size=300).map(lambda t: (Opcode.TEXT, t.encode())),
    st.binary(max_size=300).map(lambda b: (Opcode.BINARY, b)),
    # around the 7/16/64-bit length encodings
    st.sampled_from([125, 126, 127, 65535, 65536]).map(lambda n: (Opcode.TEXT, b"x" * n)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(payloads, max_size=8), st.data())
def test_plain_frames_give_websockets_messages_at_any_cut(
    frames: list[tuple[Opcode, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(frame(op, body) for op, body in frames)
    want = websockets_messages(stream)
    got, used, stopped = ws_client_frames(stream, LIMIT)
    assert (got, used, stopped) == (want, len(stream), False)
    # fed in pieces, carrying the unconsumed tail as the protocol does
    cut = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    pieces = [stream[a:b] for a, b in zip([0, *cut], [*cut, len(stream)], strict=True)]
    carried, messages = b"", []
    for piece in pieces:
        out, used, stopped = ws_client_frames(carried + piece, LIMIT)
        assert not stopped
        messages += out
        carried = (carried + piece)[used:]
    assert messages == want and carried == b""


def test_the_payload_is_unmasked_at_every_length_and_alignment() -> None:
    for n in range(40):
        body = os.urandom(n)
        stream = frame(Opcode.BINARY, body)
        assert ws_client_frames(stream, LIMIT) == ([body], len(stream), False)


def test_it_stops_at_every_frame_that_is_websockets_business() -> None:
    good = frame(Opcode.TEXT, b"before")
    unmasked = Frame(Opcode.TEXT, b"hi").serialize(mask=False, extensions=[])
    huge_length = bytes([0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]) + b"mask"
    for other in (
        frame(Opcode.PING, b"p"),
        frame(Opcode.PONG, b"p"),
        frame(Opcode.CLOSE, b"\x03\xe8"),
        frame(Opcode.TEXT, b"frag", fin=False),
        frame(Opcode.CONT, b"x"),
        frame(Opcode.TEXT, b"deflated?", rsv1=True),
        frame(Opcode.TEXT, b"\xff\xfe"),  # not UTF-8
        frame(Opcode.TEXT, b"\xed\xa0\x80"),  # a surrogate: not UTF-8 either
        frame(Opcode.BINARY, b"x" * (LIMIT + 1)),  # over the limit (seen from the header)
        unmasked,
        huge_length,
        bytes([0x83, 0x80]) + b"mask",  # a reserved opcode
    ):
        stream = good + other + good
        assert ws_client_frames(stream, LIMIT) == (["before"], len(good), True), other[:12]


def test_an_incomplete_frame_waits_and_a_limit_of_its_size_takes_it() -> None:
    body = frame(Opcode.TEXT, b"y" * 300)
    for n in range(len(body)):
        assert ws_client_frames(body[:n], LIMIT) == ([], 0, False)
    assert ws_client_frames(body, 300) == (["y" * 300], len(body), False)
    assert ws_client_frames(body, 299) == ([], 0, True)
    assert ws_client_frames(b"", 0) == ([], 0, False)
