"""A bound socket on 127.0.0.1 to hand to a server the test starts in-process (no race for the
port). A port for a child process comes from :func:`hotline.loopback.free_port`."""

from __future__ import annotations

import socket


def bind_ephemeral(*, nodelay: bool = False) -> socket.socket:
    """A socket bound to 127.0.0.1 on a free port (handed to uvicorn, so no race for it).

    ``nodelay``: accepted sockets inherit ``TCP_NODELAY`` (Linux), so a streamed body's second
    small write does not wait ~40 ms for the peer's delayed ACK (Nagle).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def base_url(sock: socket.socket) -> str:
    """``http://127.0.0.1:<port>`` of a bound socket."""
    return f"http://127.0.0.1:{sock.getsockname()[1]}"
