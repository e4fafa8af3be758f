"""``hotline serve [--host HOST] [--port PORT] [--insecure-dev] [--workers N] [--ws IMPL]``.

``--workers N`` runs N server processes on one port (each binds it with ``SO_REUSEPORT``, so the
kernel spreads new connections across them): one per core. A call lives in the worker that took
its media stream; ``say``/``hangup`` posted to any worker reach it through Redis
(``HOTLINE_REDIS_URL``, :mod:`hotline.server.redis_backend`), so N > 1 is refused without it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

from hotline.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["add_arguments", "run", "uvicorn_config_kwargs"]

log = logging.getLogger("hotline.app")

LOOPBACK = "127.0.0.1"
#: uvicorn's WebSocket implementations ``--ws`` offers (``auto`` picks websockets-sansio).
WS_IMPLS = ("hotline", "auto", "websockets", "websockets-sansio", "wsproto")
#: A worker that dies within this many seconds of its start is not restarted (a crash loop).
_MIN_WORKER_LIFE_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default $PORT or 8000)")
    parser.add_argument(
        "--insecure-dev",
        action="store_true",
        help="local development: bind 127.0.0.1 only; without TWILIO_AUTH_TOKEN, "
        "Twilio signatures are not checked",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N server processes on one port, one per core (N > 1 needs HOTLINE_REDIS_URL)",
    )
    parser.add_argument(
        "--ws",
        default=None,
        choices=WS_IMPLS,
        help="WebSocket implementation: hotline (the default: uvicorn's websockets-sansio with "
        "a direct path for media streams, the cheapest measured on Twilio traffic) or one of "
        "uvicorn's own",
    )


def uvicorn_config_kwargs() -> dict[str, object]:
    """Settings every hotline uvicorn server uses (tests use them too)."""
    from hotline.server.media_ws import MediaWebSocketProtocol
    from hotline.server.session import MAX_MESSAGE

    return {
        "ws_max_size": MAX_MESSAGE,  # /media-stream caps inbound messages at 64 KiB
        "ws_ping_interval": None,  # Twilio does not answer pings reliably; TCP tells us
        # uvicorn's sans-I/O websockets protocol (its legacy one warns with websockets 13 and
        # imports the deprecated websockets.legacy from 14 on), with the direct path for media
        # streams (hotline.server.media_ws). A class, not a name: uvicorn < 0.36 takes only its
        # own names as strings.
        "ws": MediaWebSocketProtocol,
        # Twilio sends small JSON messages: compressing them costs more CPU than it saves, and a
        # client that offers permessage-deflate (websockets' does) would get it.
        "ws_per_message_deflate": False,
        "lifespan": "on",
        "server_header": False,
        # The client address is hotline's to work out (HOTLINE_TRUSTED_PROXIES): uvicorn's own
        # X-Forwarded-For handling (on by default, trusting 127.0.0.1) would be a second,
        # differently configured answer.
        "proxy_headers": False,
    }


def _configure_logging(level: str) -> None:
    from hotline.server import logs

    logs.install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(logs.RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())


def run(args: argparse.Namespace) -> int:
    from hotline.server.app import create_app
    from hotline.server.settings import Settings

    _configure_logging(args.log_level)
    try:
        settings = Settings.from_env().with_insecure_dev(bool(args.insecure_dev))
        settings.check_servable()
        host = args.host or LOOPBACK
        if settings.insecure_dev and host != LOOPBACK:
            raise ConfigError(
                f"--insecure-dev binds {LOOPBACK} only (asked for {host}); drop --insecure-dev "
                "and set TWILIO_AUTH_TOKEN to serve other hosts"
            )
        port = args.port if args.port is not None else settings.port
        app = create_app(settings)
    except ConfigError as exc:
        print(f"hotline serve: {exc}", file=sys.stderr)
        return 2
    workers = getattr(args, "workers", None)
    workers = 1 if workers is None else int(workers)
    if workers < 1:
        print("hotline serve: --workers must be >= 1", file=sys.stderr)
        return 2
    if workers > 1 and not settings.redis_url:
        print(
            f"hotline serve: --workers {workers} needs HOTLINE_REDIS_URL (say and hangup must "
            "reach whichever worker holds the call)",
            file=sys.stderr,
        )
        return 2
    if workers > 1 and not (
        settings.twilio_auth_token or getattr(settings, "call_token_secret", None)
    ):
        print(
            f"hotline serve: --workers {workers} needs TWILIO_AUTH_TOKEN (or "
            "HOTLINE_TOKEN_SECRET): every worker must check the per-call tokens the others issue",
            file=sys.stderr,
        )
        return 2
    if settings.insecure_dev:
        log.warning(
            "insecure-dev: listening on %s only%s",
            LOOPBACK,
            "; Twilio signatures are NOT checked (no TWILIO_AUTH_TOKEN)"
            if not settings.signatures_enforced
            else "",
        )
    log.info(
        "hotline serve on http://%s:%d (voice: %s, output_format %s%s)",
        host,
        port,
        settings.voice,
        settings.elevenlabs_output_format,
        f", {workers} workers" if workers > 1 else "",
    )
    kwargs = uvicorn_config_kwargs()
    ws = getattr(args, "ws", None)
    if ws is not None:
        if ws != "hotline":
            kwargs["ws"] = ws
    if workers == 1:
        return _serve(app, host, port, args.log_level, kwargs, None, settings.drain_timeout)
    return _supervise(workers, host, port, args.log_level, kwargs, settings)


def _serve(
    app: FastAPI,
    host: str,
    port: int,
    log_level: str,
    kwargs: dict[str, object],
    sock: socket.socket | None,
    drain_timeout: float,
) -> int:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # keep our handlers (and their redaction)
        **kwargs,  # type: ignore[arg-type]
    )
    from hotline.server.drain import DrainingServer

    # SIGTERM drains (live calls play on; /health says draining); see hotline.server.drain.
    server = DrainingServer(config, app.state.hub.registry, drain_timeout)
    try:
        server.run(sockets=[sock] if sock is not None else None)
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled after a clean shutdown
        pass
    return 0 if server.started else 1


def _reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` that other workers bind too (the kernel spreads
    connections across them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(host: str, port: int, log_level: str, kwargs: dict[str, object], settings: Any) -> int:
    """One worker process (forked): its own app, event loop, registry and Redis link."""
    from hotline.server.app import create_app

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        sock = _reuseport_socket(host, port)
    except OSError as exc:
        log.error("worker %d: cannot bind %s:%d: %s", os.getpid(), host, port, exc)
        return 1
    return _serve(create_app(settings), host, port, log_level, kwargs, sock, settings.drain_timeout)


def _supervise(
    workers: int, host: str, port: int, log_level: str, kwargs: dict[str, object], settings: Any
) -> int:
    """Fork ``workers`` workers, pass SIGTERM/SIGINT on to them, restart one that dies (unless
    it died at once), and return once all have exited."""
    # Bind once here first: a port in use fails now, with one line, not in N workers.
    try:
        _reuseport_socket(host, port).close()
    except OSError as exc:
        print(f"hotline serve: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    children: dict[int, float] = {}
    stopping = False

    def spawn() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                code = _worker(host, port, log_level, kwargs, settings)
            except BaseException:  # a worker must never return into the supervisor
                log.exception("worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = time.monotonic()
        log.info("worker %d started", pid)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)
            except ProcessLookupError:
                pass

    for _ in range(workers):
        spawn()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        started = children.pop(pid, None)
        if started is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            continue
        log.warning("worker %d exited (%d)", pid, code)
        if time.monotonic() - started < _MIN_WORKER_LIFE_S:
            log.error("worker %d died at start: stopping the other workers", pid)
            failed = True
            stop(signal.SIGTERM, None)
        else:
            spawn()
    return 1 if failed else 0
