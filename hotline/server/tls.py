"""One TLS client context for the process's outgoing WebSockets (ElevenLabs, STT, relay).

websockets' ``connect()`` builds ``ssl.create_default_context()`` for every ``wss://``
connection it is not handed one for, and that loads the system's CA store each time: about
10 ms of CPU per connection. A call opens several (its TTS socket, its STT stream) and a
failing service is retried with backoff, so at 100 calls the CA store loaded again and again
was most of the server's CPU. One context, built on first use, serves every connection
(``SSLContext`` is safe to share; certificates are still verified against the host name).
"""

from __future__ import annotations

import functools
import ssl

__all__ = ["client_context", "ssl_for"]


@functools.cache
def client_context() -> ssl.SSLContext:
    """The process's default TLS client context (built once)."""
    return ssl.create_default_context()


def ssl_for(url: str) -> ssl.SSLContext | None:
    """``ssl=`` for websockets' ``connect(url)``: the shared context for ``wss://``, else None."""
    return client_context() if url[:6].lower() == "wss://" else None
